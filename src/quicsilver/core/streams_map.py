"""All streams of a connection: IDs, limits, dispatch, scheduling (RFC 9000 §2.1, §3, §4, §13.3).

The :class:`StreamsMap` is what the connection talks to about streams:

- stream IDs (§2.1): the low bit says who initiated the stream, the second bit its direction;
  local streams are opened within the peer's MAX_STREAMS (else ``StreamLimitReachedError`` and a
  STREAMS_BLOCKED frame), peer streams are opened implicitly together with every lower-numbered
  stream of the same type (§3.2) and checked against our limit (STREAM_LIMIT_ERROR, §4.6);
- the frames a peer sends about streams are dispatched to the right stream part, with the
  direction and existence rules of §19 (STREAM_STATE_ERROR);
- our stream limits are re-granted with MAX_STREAMS as peer streams are fully closed;
- for the packet packer: pending control frames (window updates and MAX_STREAMS computed when
  packed, then RESET_STREAM, STOP_SENDING and the BLOCKED frames) and STREAM frames in round-robin
  order over a deque of the streams that can send, never a scan of every stream;
- acknowledgement and loss of those frames: STREAM data and RESET_STREAM are handed back to their
  stream, a lost control frame is queued again only if it is still current (§13.3).

The map and its streams are sans-IO. The application-facing notifications go through a
:class:`StreamEventSink` the connection provides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from quicsilver.config import Config
from quicsilver.core.flowcontrol import (
    ConnectionReceiveFlowController,
    RTTProvider,
    SendFlowController,
    StreamReceiveFlowController,
)
from quicsilver.core.receive_stream import ReceiveStream
from quicsilver.core.send_stream import DEFAULT_SEND_BUFFER_SIZE, SendStream
from quicsilver.errors import StreamLimitReachedError, TransportError, TransportErrorCode
from quicsilver.protocol import MAX_STREAM_COUNT, Perspective
from quicsilver.wire.frames import (
    DataBlockedFrame,
    Frame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    ResetStreamFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
)
from quicsilver.wire.varint import varint_len

__all__ = ["NullStreamEventSink", "StreamEventSink", "StreamSender", "StreamsMap", "stream_id_for"]

_STREAM_STATE_ERROR: Final = TransportErrorCode.STREAM_STATE_ERROR
# index of per-direction state: (stream_id >> 1) & 1
_BIDI: Final = 0
_UNI: Final = 1
_MAX_DATA_FRAME_LEN: Final = 9  # type + 8-byte varint
_MAX_STREAMS_FRAME_LEN: Final = 9


class StreamSender(Protocol):
    """What a stream part asks of its owner (implemented by :class:`StreamsMap`)."""

    def queue_control_frame(self, frame: Frame) -> None: ...

    def on_has_stream_data(self, stream_id: int) -> None: ...

    def on_window_update_due(self, stream_id: int) -> None: ...

    def on_send_side_completed(self, stream_id: int) -> None: ...

    def on_receive_side_completed(self, stream_id: int) -> None: ...


class StreamEventSink(Protocol):
    """Notifications for the application, implemented by the connection (see core/events.py)."""

    def on_stream_opened(self, stream_id: int) -> None:
        """The peer opened a stream (one call per stream, in stream ID order)."""

    def on_stream_readable(self, stream_id: int) -> None:
        """Edge-triggered: data became readable on an empty stream, or the FIN became readable."""

    def on_stream_writable(self, stream_id: int) -> None:
        """Buffer space freed after ``write`` had refused data."""

    def on_stream_reset(self, stream_id: int, error_code: int) -> None:
        """The peer reset the stream (RESET_STREAM)."""

    def on_stop_sending(self, stream_id: int, error_code: int) -> None:
        """The peer sent STOP_SENDING; the stream was reset with that code."""

    def on_streams_available(self, bidi: bool) -> None:
        """The peer raised MAX_STREAMS: ``open_stream`` may succeed again."""


class NullStreamEventSink:
    """An event sink that ignores everything."""

    def on_stream_opened(self, stream_id: int) -> None:
        pass

    def on_stream_readable(self, stream_id: int) -> None:
        pass

    def on_stream_writable(self, stream_id: int) -> None:
        pass

    def on_stream_reset(self, stream_id: int, error_code: int) -> None:
        pass

    def on_stop_sending(self, stream_id: int, error_code: int) -> None:
        pass

    def on_streams_available(self, bidi: bool) -> None:
        pass


def stream_id_for(num: int, *, bidi: bool, initiator: Perspective) -> int:
    """The ID of the ``num``-th stream (0-based) of a type (RFC 9000 §2.1, Table 1)."""
    return (num << 2) | (0 if bidi else 2) | (1 if initiator == Perspective.SERVER else 0)


class StreamsMap:
    """The streams of one connection and their shared connection-level flow control.

    ``max_incoming_streams`` / ``max_incoming_uni_streams``: how many peer streams may be open at
    once (our initial_max_streams_bidi / _uni transport parameters). Windows are in bytes: each
    stream receive window starts at ``initial_stream_receive_window`` and auto-tunes up to
    ``max_stream_receive_window``; the connection window likewise. Send limits are 0 until
    ``apply_peer_transport_parameters`` is called.
    """

    def __init__(
        self,
        perspective: Perspective,
        *,
        rtt: RTTProvider,
        events: StreamEventSink | None = None,
        max_incoming_streams: int = 100,
        max_incoming_uni_streams: int = 100,
        initial_stream_receive_window: int = 512 * 1024,
        max_stream_receive_window: int = 6 * 1024 * 1024,
        initial_connection_receive_window: int = 768 * 1024,
        max_connection_receive_window: int = 15 * 1024 * 1024,
        send_buffer_size: int = DEFAULT_SEND_BUFFER_SIZE,
    ) -> None:
        self.perspective = perspective
        self._rtt = rtt
        self._events: StreamEventSink = events if events is not None else NullStreamEventSink()
        self._local_bit = 1 if perspective == Perspective.SERVER else 0
        self._stream_window = initial_stream_receive_window
        self._max_stream_window = max_stream_receive_window
        self._send_buffer_size = send_buffer_size
        self.connection_receive_flow = ConnectionReceiveFlowController(
            initial_connection_receive_window, max_connection_receive_window, rtt
        )
        self.connection_send_flow = SendFlowController(0)
        self._send: dict[int, SendStream] = {}
        self._recv: dict[int, ReceiveStream] = {}
        # Local streams, per direction: next number to open, the peer's limit, blocked reported at.
        self._next_local = [0, 0]
        self._peer_max_streams = [0, 0]
        self._streams_blocked_at = [-1, -1]
        # Peer streams, per direction: next number not yet opened, our limit, how many closed.
        self._max_incoming = [max_incoming_streams, max_incoming_uni_streams]
        self._next_remote = [0, 0]
        self._local_max_streams = [max_incoming_streams, max_incoming_uni_streams]
        self._closed_remote = [0, 0]
        self._max_streams_due = [False, False]
        # Peer's initial per-stream limits: bidi we open, bidi it opens, uni we open.
        self._peer_window_bidi_local_open = 0
        self._peer_window_bidi_remote_open = 0
        self._peer_window_uni = 0
        # Scheduling state for the packer.
        self._control: deque[Frame] = deque()
        self._window_updates: dict[int, None] = {}  # ordered set of stream IDs
        self._active: deque[int] = deque()
        self._active_set: set[int] = set()
        self._conn_blocked: set[int] = set()
        self._handlers: dict[type, Callable[[StreamsMap, Any], None]] = _HANDLERS
        self._acked: dict[type, Callable[[StreamsMap, Any], None]] = _ACKED
        self._lost: dict[type, Callable[[StreamsMap, Any], None]] = _LOST

    @classmethod
    def from_config(
        cls, config: Config, perspective: Perspective, rtt: RTTProvider, events: StreamEventSink | None = None
    ) -> StreamsMap:
        """A map with the limits and windows of ``config`` (quic-go's defaults when unset)."""
        return cls(
            perspective,
            rtt=rtt,
            events=events,
            max_incoming_streams=config.max_incoming_streams,
            max_incoming_uni_streams=config.max_incoming_uni_streams,
            initial_stream_receive_window=config.initial_stream_receive_window,
            max_stream_receive_window=config.max_stream_receive_window,
            initial_connection_receive_window=config.initial_connection_receive_window,
            max_connection_receive_window=config.max_connection_receive_window,
        )

    # -- stream ID rules --------------------------------------------------------------------------

    def is_local(self, stream_id: int) -> bool:
        """True if we initiated ``stream_id`` (RFC 9000 §2.1: the least significant bit)."""
        return stream_id & 1 == self._local_bit

    def _new_receive_stream(self, stream_id: int) -> ReceiveStream:
        stream_flow = StreamReceiveFlowController(
            stream_id, self.connection_receive_flow, self._stream_window, self._max_stream_window, self._rtt
        )
        return ReceiveStream(stream_id, sender=self, events=self._events, flow=stream_flow)

    def _new_send_stream(self, stream_id: int, window: int) -> SendStream:
        return SendStream(
            stream_id,
            sender=self,
            events=self._events,
            connection_flow=self.connection_send_flow,
            send_window=window,
            send_buffer_size=self._send_buffer_size,
        )

    def open_stream(self, bidi: bool = True) -> int:
        """Open a local stream and return its ID.

        Raises StreamLimitReachedError when the peer's MAX_STREAMS does not allow another one; a
        STREAMS_BLOCKED frame is then queued once per limit (RFC 9000 §4.6, §19.14).
        """
        d = _BIDI if bidi else _UNI
        num = self._next_local[d]
        limit = self._peer_max_streams[d]
        if num >= limit:
            if self._streams_blocked_at[d] != limit:
                self._streams_blocked_at[d] = limit
                self._control.append(StreamsBlockedFrame(bidi, limit))
            kind = "bidirectional" if bidi else "unidirectional"
            raise StreamLimitReachedError(f"the peer allows {limit} {kind} streams")
        self._next_local[d] = num + 1
        stream_id = stream_id_for(num, bidi=bidi, initiator=self.perspective)
        if bidi:
            # RFC 9000 §18.2: the peer's initial_max_stream_data_bidi_remote applies to streams we open.
            self._send[stream_id] = self._new_send_stream(stream_id, self._peer_window_bidi_local_open)
            self._recv[stream_id] = self._new_receive_stream(stream_id)
        else:
            self._send[stream_id] = self._new_send_stream(stream_id, self._peer_window_uni)
        return stream_id

    def can_open_stream(self, bidi: bool = True) -> bool:
        d = _BIDI if bidi else _UNI
        return self._next_local[d] < self._peer_max_streams[d]

    def _open_remote_up_to(self, stream_id: int) -> None:
        d = (stream_id >> 1) & 1
        num = stream_id >> 2
        next_num = self._next_remote[d]
        if num < next_num:
            return
        # RFC 9000 §4.6: "An endpoint that receives a frame with a stream ID exceeding the limit it
        # has sent MUST treat this as a connection error of type STREAM_LIMIT_ERROR".
        if num >= self._local_max_streams[d]:
            raise TransportError(
                TransportErrorCode.STREAM_LIMIT_ERROR,
                f"stream {stream_id} exceeds the limit of {self._local_max_streams[d]} streams",
            )
        # RFC 9000 §3.2: "Before a stream is created, all streams of the same type with
        # lower-numbered stream IDs MUST be created."
        type_bits = stream_id & 3
        bidi = d == _BIDI
        for n in range(next_num, num + 1):
            sid = (n << 2) | type_bits
            self._recv[sid] = self._new_receive_stream(sid)
            if bidi:
                self._send[sid] = self._new_send_stream(sid, self._peer_window_bidi_remote_open)
            self._events.on_stream_opened(sid)
        self._next_remote[d] = num + 1

    def _receive_side(self, stream_id: int, frame_type: int) -> ReceiveStream | None:
        """The receiving part addressed by a peer's frame; None if the stream is already closed."""
        stream = self._recv.get(stream_id)
        if stream is not None:
            return stream  # only valid receiving parts are ever created
        if self.is_local(stream_id):
            # RFC 9000 §19.8: "An endpoint MUST terminate the connection with error
            # STREAM_STATE_ERROR if it receives a STREAM frame for a locally initiated stream that
            # has not yet been created, or for a send-only stream." (likewise §19.4, §19.13)
            if stream_id & 2:
                raise TransportError(
                    _STREAM_STATE_ERROR, f"stream {stream_id} is send-only", frame_type=frame_type
                )
            if stream_id >> 2 >= self._next_local[_BIDI]:
                raise TransportError(
                    _STREAM_STATE_ERROR, f"stream {stream_id} was not opened", frame_type=frame_type
                )
        else:
            self._open_remote_up_to(stream_id)
        return self._recv.get(stream_id)

    def _send_side(self, stream_id: int, frame_type: int) -> SendStream | None:
        """The sending part addressed by a peer's frame; None if the stream is already closed."""
        stream = self._send.get(stream_id)
        if stream is not None:
            return stream  # only valid sending parts are ever created
        if self.is_local(stream_id):
            # RFC 9000 §19.5, §19.10: a frame for a locally initiated stream that has not yet been
            # created is a STREAM_STATE_ERROR.
            if stream_id >> 2 >= self._next_local[(stream_id >> 1) & 1]:
                raise TransportError(
                    _STREAM_STATE_ERROR, f"stream {stream_id} was not opened", frame_type=frame_type
                )
        else:
            # RFC 9000 §19.5, §19.10: ... or for a receive-only stream.
            if stream_id & 2:
                raise TransportError(
                    _STREAM_STATE_ERROR, f"stream {stream_id} is receive-only", frame_type=frame_type
                )
            self._open_remote_up_to(stream_id)
        return self._send.get(stream_id)

    # -- application access -----------------------------------------------------------------------

    def get_send_stream(self, stream_id: int) -> SendStream | None:
        return self._send.get(stream_id)

    def get_receive_stream(self, stream_id: int) -> ReceiveStream | None:
        return self._recv.get(stream_id)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._send or stream_id in self._recv

    def __len__(self) -> int:
        """Streams not yet fully closed."""
        return len(self._send.keys() | self._recv.keys())

    # -- peer limits ------------------------------------------------------------------------------

    def apply_peer_transport_parameters(
        self,
        *,
        initial_max_data: int,
        initial_max_stream_data_bidi_local: int,
        initial_max_stream_data_bidi_remote: int,
        initial_max_stream_data_uni: int,
        initial_max_streams_bidi: int,
        initial_max_streams_uni: int,
    ) -> None:
        """The peer's flow-control and stream limits (RFC 9000 §18.2, §7.4).

        "local"/"remote" are from the peer's point of view: its bidi_remote limit applies to the
        streams we open. Streams already open (0-RTT) get the new limits too.
        """
        for value in (initial_max_streams_bidi, initial_max_streams_uni):
            if value > MAX_STREAM_COUNT:
                raise TransportError(
                    TransportErrorCode.TRANSPORT_PARAMETER_ERROR, "initial_max_streams above 2^60"
                )
        self._peer_window_bidi_local_open = initial_max_stream_data_bidi_remote
        self._peer_window_bidi_remote_open = initial_max_stream_data_bidi_local
        self._peer_window_uni = initial_max_stream_data_uni
        self.connection_send_flow.update_limit(initial_max_data)
        for stream_id, stream in self._send.items():
            if not self.is_local(stream_id):
                window = initial_max_stream_data_bidi_local
            elif stream_id & 2:
                window = initial_max_stream_data_uni
            else:
                window = initial_max_stream_data_bidi_remote
            stream.update_send_window(window)
        for d, value in ((_BIDI, initial_max_streams_bidi), (_UNI, initial_max_streams_uni)):
            if value > self._peer_max_streams[d]:
                self._peer_max_streams[d] = value
                self._events.on_streams_available(d == _BIDI)
        self._wake_connection_blocked()

    # -- frames from the peer ---------------------------------------------------------------------

    def handle_frame(self, frame: Frame) -> None:
        """Dispatch any stream-related frame (STREAM, RESET_STREAM, STOP_SENDING, MAX_DATA,
        MAX_STREAM_DATA, MAX_STREAMS, DATA_BLOCKED, STREAM_DATA_BLOCKED, STREAMS_BLOCKED).

        Raises TransportError for protocol violations; KeyError for any other frame type.
        """
        self._handlers[type(frame)](self, frame)

    def handle_stream_frame(self, frame: StreamFrame) -> None:
        stream = self._recv.get(frame.stream_id)  # the common case: an open stream
        if stream is None:
            stream = self._receive_side(frame.stream_id, frame.wire_type)
        if stream is not None:
            stream.handle_stream_frame(frame)

    def handle_reset_stream_frame(self, frame: ResetStreamFrame) -> None:
        stream = self._receive_side(frame.stream_id, frame.wire_type)
        if stream is not None:
            stream.handle_reset_stream(frame)

    def handle_stream_data_blocked_frame(self, frame: StreamDataBlockedFrame) -> None:
        # Informational (RFC 9000 §19.13); the checks still apply and may open the stream.
        self._receive_side(frame.stream_id, frame.wire_type)

    def handle_stop_sending_frame(self, frame: StopSendingFrame) -> None:
        stream = self._send_side(frame.stream_id, frame.wire_type)
        if stream is not None:
            stream.handle_stop_sending(frame.error_code)

    def handle_max_stream_data_frame(self, frame: MaxStreamDataFrame) -> None:
        stream = self._send_side(frame.stream_id, frame.wire_type)
        if stream is not None:
            stream.update_send_window(frame.maximum)

    def handle_max_data_frame(self, frame: MaxDataFrame) -> None:
        if self.connection_send_flow.update_limit(frame.maximum):
            self._wake_connection_blocked()

    def handle_max_streams_frame(self, frame: MaxStreamsFrame) -> None:
        # RFC 9000 §19.11: a value above 2^60 is a FRAME_ENCODING_ERROR (the parser checks too).
        if frame.maximum > MAX_STREAM_COUNT:
            raise TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, "MAX_STREAMS above 2^60")
        d = _BIDI if frame.bidi else _UNI
        # §4.6: "MAX_STREAMS frames that do not increase the stream limit MUST be ignored."
        if frame.maximum > self._peer_max_streams[d]:
            self._peer_max_streams[d] = frame.maximum
            self._events.on_streams_available(frame.bidi)

    def handle_data_blocked_frame(self, frame: DataBlockedFrame) -> None:
        """Informational (RFC 9000 §19.12): our MAX_DATA goes out as the application reads."""

    def handle_streams_blocked_frame(self, frame: StreamsBlockedFrame) -> None:
        # RFC 9000 §19.14: a limit above 2^60 is a FRAME_ENCODING_ERROR (or STREAM_LIMIT_ERROR).
        if frame.limit > MAX_STREAM_COUNT:
            raise TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, "STREAMS_BLOCKED above 2^60")

    # -- StreamSender: called by the stream parts ------------------------------------------------

    def queue_control_frame(self, frame: Frame) -> None:
        self._control.append(frame)

    def on_has_stream_data(self, stream_id: int) -> None:
        stream = self._send.get(stream_id)
        if stream is None or stream_id in self._active_set:
            return
        if stream.can_send_now():
            self._active.append(stream_id)
            self._active_set.add(stream_id)
            return
        if stream.blocked_by_connection():
            self._conn_blocked.add(stream_id)
        stream.report_blocked()

    def on_window_update_due(self, stream_id: int) -> None:
        self._window_updates[stream_id] = None

    def on_send_side_completed(self, stream_id: int) -> None:
        self._maybe_forget(stream_id)

    def on_receive_side_completed(self, stream_id: int) -> None:
        self._window_updates.pop(stream_id, None)
        self._maybe_forget(stream_id)

    def forget_all(self) -> None:
        """The connection is over (closed, its draining period ended): drop every stream (each one
        refers back to this map, its sender and event sink)."""
        self._send.clear()
        self._recv.clear()
        self._window_updates.clear()
        self._active.clear()
        self._active_set.clear()
        self._conn_blocked.clear()

    def _maybe_forget(self, stream_id: int) -> None:
        send = self._send.get(stream_id)
        recv = self._recv.get(stream_id)
        if (send is not None and not send.completed) or (recv is not None and not recv.completed):
            return
        self._send.pop(stream_id, None)
        self._recv.pop(stream_id, None)
        self._conn_blocked.discard(stream_id)
        if self.is_local(stream_id):
            return
        # quic-go: every fully closed peer stream lets the peer open another one. The frame is
        # built when packed, so several closings in a row produce one MAX_STREAMS.
        d = (stream_id >> 1) & 1
        self._closed_remote[d] += 1
        new_limit = min(self._closed_remote[d] + self._max_incoming[d], MAX_STREAM_COUNT)
        if new_limit > self._local_max_streams[d]:
            self._local_max_streams[d] = new_limit
            self._max_streams_due[d] = True

    def _wake_connection_blocked(self) -> None:
        blocked = self._conn_blocked
        self._conn_blocked = set()
        for stream_id in blocked:
            self.on_has_stream_data(stream_id)

    # -- for the packet packer --------------------------------------------------------------------

    def has_data(self) -> bool:
        """True if a control frame or STREAM data is waiting to be sent."""
        if self._has_sendable_stream():
            return True
        return bool(
            self._control  # after the check above, which may have queued a BLOCKED frame
            or self._window_updates
            or self._max_streams_due[0]
            or self._max_streams_due[1]
            or self.connection_receive_flow.has_window_update()
        )

    def sole_sending_stream(self) -> SendStream | None:
        """For a burst of packets: the one stream with something to send, if it has only new data
        within its credit and no control frame is waiting (round robin is then moot); else None."""
        active = self._active
        if len(active) != 1 or self._control or self._window_updates:
            return None
        due = self._max_streams_due
        if due[0] or due[1] or self.connection_receive_flow.has_window_update():
            return None
        stream = self._send.get(active[0])
        if stream is None or not stream.sends_new_data_only():
            return None
        return stream

    def after_burst(self, stream: SendStream) -> None:
        """A burst cut frames from ``stream`` (the sole sending stream): what ``pop_stream_frame``
        does after each frame, once — out of the round robin if it cannot send more now."""
        if stream.can_send_now():
            return
        stream_id = stream.stream_id
        self._active.remove(stream_id)
        self._active_set.discard(stream_id)
        if stream.blocked_by_connection():
            self._conn_blocked.add(stream_id)

    def _has_sendable_stream(self) -> bool:
        """True if a stream can send; drops stale entries from the front of the active deque."""
        active = self._active
        while active:
            stream_id = active[0]
            stream = self._send.get(stream_id)
            if stream is not None and stream.can_send_now():
                return True
            active.popleft()
            self._active_set.discard(stream_id)
            if stream is not None:
                if stream.blocked_by_connection():
                    self._conn_blocked.add(stream_id)
                stream.report_blocked()
        return False

    def pop_control_frame(self, max_size: int) -> Frame | None:
        """The next control frame of at most ``max_size`` bytes, or None.

        Window updates first (MAX_STREAM_DATA, then MAX_DATA, whose values are computed now, so a
        stream window grown by auto-tuning can raise the connection window in the same packet),
        then MAX_STREAMS, then queued frames in order.
        """
        updates = self._window_updates
        while updates:
            stream_id = next(iter(updates))
            if 1 + varint_len(stream_id) + 8 > max_size:
                break
            del updates[stream_id]
            recv = self._recv.get(stream_id)
            maximum = recv.window_update_frame_maximum() if recv is not None else 0
            if maximum:
                return MaxStreamDataFrame(stream_id, maximum)
        conn_flow = self.connection_receive_flow
        if max_size >= _MAX_DATA_FRAME_LEN and conn_flow.has_window_update():
            return MaxDataFrame(conn_flow.get_window_update())
        if max_size >= _MAX_STREAMS_FRAME_LEN:
            for d in (_BIDI, _UNI):
                if self._max_streams_due[d]:
                    self._max_streams_due[d] = False
                    return MaxStreamsFrame(d == _BIDI, self._local_max_streams[d])
        control = self._control
        while control:
            frame = control[0]
            if frame.length() > max_size:
                return None
            control.popleft()
            if self._still_current(frame):
                return frame
        return None

    def _still_current(self, frame: Frame) -> bool:
        """BLOCKED frames queued earlier are dropped if the block is already over."""
        if isinstance(frame, StreamDataBlockedFrame):
            send = self._send.get(frame.stream_id)
            return send is not None and send.is_blocked_at(frame.limit)
        if isinstance(frame, DataBlockedFrame):
            flow = self.connection_send_flow
            return flow.limit == frame.limit and flow.is_blocked()
        if isinstance(frame, StreamsBlockedFrame):
            d = _BIDI if frame.bidi else _UNI
            return self._peer_max_streams[d] == frame.limit and self._next_local[d] >= frame.limit
        return True

    def pop_stream_frame(self, max_size: int) -> StreamFrame | None:
        """The next STREAM frame of at most ``max_size`` bytes, round robin over sending streams."""
        active = self._active
        for _ in range(len(active)):
            stream_id = active.popleft()
            stream = self._send.get(stream_id)
            if stream is None:
                self._active_set.discard(stream_id)
                continue
            frame = stream.pop_stream_frame(max_size)
            if stream.can_send_now():
                active.append(stream_id)
            else:
                self._active_set.discard(stream_id)
                if stream.blocked_by_connection():
                    self._conn_blocked.add(stream_id)
            if frame is not None:
                return frame
        return None

    # -- acknowledgement and loss of frames we sent -----------------------------------------------

    def on_frame_acked(self, frame: Frame) -> None:
        """A packet with ``frame`` (one this map produced) was acknowledged."""
        handler = self._acked.get(type(frame))
        if handler is not None:
            handler(self, frame)

    def on_frame_lost(self, frame: Frame) -> None:
        """A packet with ``frame`` was lost: resend what is still needed (RFC 9000 §13.3)."""
        handler = self._lost.get(type(frame))
        if handler is not None:
            handler(self, frame)

    def on_stream_frame_acked(self, frame: StreamFrame) -> None:
        """``on_frame_acked`` for a STREAM frame, the common case (the connection calls it directly)."""
        send = self._send.get(frame.stream_id)
        if send is not None:
            send.on_frame_acked(frame)

    def _reset_stream_acked(self, frame: ResetStreamFrame) -> None:
        send = self._send.get(frame.stream_id)
        if send is not None:
            send.on_reset_acked()

    def _stream_frame_lost(self, frame: StreamFrame) -> None:
        send = self._send.get(frame.stream_id)
        if send is not None:
            send.on_frame_lost(frame)

    def _reset_stream_lost(self, frame: ResetStreamFrame) -> None:
        send = self._send.get(frame.stream_id)
        if send is not None and send.reset_frame_if_current(frame) is not None:
            self._control.append(frame)

    def _stop_sending_lost(self, frame: StopSendingFrame) -> None:
        recv = self._recv.get(frame.stream_id)
        if recv is not None and recv.stop_sending_frame_if_current(frame) is not None:
            self._control.append(frame)

    def _max_stream_data_lost(self, frame: MaxStreamDataFrame) -> None:
        recv = self._recv.get(frame.stream_id)
        if recv is not None and recv.max_stream_data_is_current(frame.maximum):
            self._control.append(frame)

    def _max_data_lost(self, frame: MaxDataFrame) -> None:
        if frame.maximum == self.connection_receive_flow.receive_window:
            self._control.append(frame)

    def _max_streams_lost(self, frame: MaxStreamsFrame) -> None:
        d = _BIDI if frame.bidi else _UNI
        if frame.maximum == self._local_max_streams[d]:
            self._max_streams_due[d] = True

    def _blocked_lost(self, frame: Frame) -> None:
        if self._still_current(frame):
            self._control.append(frame)


_HANDLERS: Final[dict[type, Callable[[StreamsMap, Any], None]]] = {
    StreamFrame: StreamsMap.handle_stream_frame,
    ResetStreamFrame: StreamsMap.handle_reset_stream_frame,
    StopSendingFrame: StreamsMap.handle_stop_sending_frame,
    MaxDataFrame: StreamsMap.handle_max_data_frame,
    MaxStreamDataFrame: StreamsMap.handle_max_stream_data_frame,
    MaxStreamsFrame: StreamsMap.handle_max_streams_frame,
    DataBlockedFrame: StreamsMap.handle_data_blocked_frame,
    StreamDataBlockedFrame: StreamsMap.handle_stream_data_blocked_frame,
    StreamsBlockedFrame: StreamsMap.handle_streams_blocked_frame,
}
_ACKED: Final[dict[type, Callable[[StreamsMap, Any], None]]] = {
    StreamFrame: StreamsMap.on_stream_frame_acked,
    ResetStreamFrame: StreamsMap._reset_stream_acked,
}
_LOST: Final[dict[type, Callable[[StreamsMap, Any], None]]] = {
    StreamFrame: StreamsMap._stream_frame_lost,
    ResetStreamFrame: StreamsMap._reset_stream_lost,
    StopSendingFrame: StreamsMap._stop_sending_lost,
    MaxStreamDataFrame: StreamsMap._max_stream_data_lost,
    MaxDataFrame: StreamsMap._max_data_lost,
    MaxStreamsFrame: StreamsMap._max_streams_lost,
    DataBlockedFrame: StreamsMap._blocked_lost,
    StreamDataBlockedFrame: StreamsMap._blocked_lost,
    StreamsBlockedFrame: StreamsMap._blocked_lost,
}
