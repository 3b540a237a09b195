"""The sending part of a stream (RFC 9000 §3.1, §2.2, §4.1, §13.3, §19.4, §19.5, §19.8).

A :class:`SendStream` owns a bounded send buffer, hands out STREAM frames sized for the packet
being built, keeps every byte until the peer acknowledges it, retransmits lost ranges before new
data, and runs the RFC 9000 §3.1 state machine as a transition table.

Buffer layout: a deque of read-only chunks (``memoryview`` of ``bytes``) holding the stream bytes
from ``_chunks_start``, then a small ``bytearray`` tail that collects short writes until data is
cut from it. A ``bytes`` write of ``_CHUNK_MIN`` bytes or more becomes a chunk without a copy; new
data is cut by a cursor (the chunk holding ``_send_offset``) as ``memoryview`` slices that go straight
into the packet (a copy only where a frame spans two chunks); chunks below the acknowledged prefix
``_buf_base`` are dropped from the front, so no byte is ever moved inside the buffer. Acknowledged
ranges above the first hole and ranges declared lost are kept in :class:`RangeSet` objects.

``write()`` accepts at most ``send_buffer_size - unsent`` bytes and returns how many it took: this is
how the asyncio layer applies backpressure. Sent-but-unacknowledged bytes are bounded by the peer's
flow-control credit, so the memory of a stream is bounded by ``send_buffer_size`` plus that credit.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator
from enum import Enum
from typing import TYPE_CHECKING, Final

from quicsilver.core.flowcontrol import SendFlowController
from quicsilver.errors import StreamError
from quicsilver.wire.frames import (
    DataBlockedFrame,
    ResetStreamFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    stream_frame_header_length,
    stream_frame_max_data_len,
)
from quicsilver.wire.varint import MAX_VARINT

if TYPE_CHECKING:
    from quicsilver.core.streams_map import StreamEventSink, StreamSender

__all__ = ["DEFAULT_SEND_BUFFER_SIZE", "RangeSet", "SendStream", "SendStreamState"]

DEFAULT_SEND_BUFFER_SIZE: Final = 1 << 20
"""Bytes: how much unsent data ``SendStream.write`` buffers before it refuses more (1 MiB)."""
_CHUNK_MIN: Final = 4096  # shorter writes are copied into the tail, longer ones become chunks


class RangeSet:
    """Sorted, non-overlapping, non-adjacent half-open integer ranges ``[start, end)``."""

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __len__(self) -> int:
        return len(self._starts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self._starts, self._ends, strict=True)

    def first(self) -> tuple[int, int]:
        """The lowest range (IndexError when empty)."""
        return self._starts[0], self._ends[0]

    def add(self, start: int, end: int) -> None:
        """Add ``[start, end)``, merging with overlapping or touching ranges."""
        if start >= end:
            return
        starts, ends = self._starts, self._ends
        i = bisect_left(ends, start)  # first range ending at or after start
        j = bisect_right(starts, end)  # ranges from i to j-1 overlap or touch
        if i < j:
            start = min(start, starts[i])
            end = max(end, ends[j - 1])
        starts[i:j] = [start]
        ends[i:j] = [end]

    def subtract(self, start: int, end: int) -> None:
        """Remove ``[start, end)``."""
        if start >= end:
            return
        starts, ends = self._starts, self._ends
        i = bisect_right(ends, start)  # first range ending after start
        j = bisect_left(starts, end)  # ranges from i to j-1 overlap
        if i >= j:
            return
        keep_starts: list[int] = []
        keep_ends: list[int] = []
        if starts[i] < start:
            keep_starts.append(starts[i])
            keep_ends.append(start)
        if ends[j - 1] > end:
            keep_starts.append(end)
            keep_ends.append(ends[j - 1])
        starts[i:j] = keep_starts
        ends[i:j] = keep_ends

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` not covered by this set, in order."""
        out: list[tuple[int, int]] = []
        starts, ends = self._starts, self._ends
        pos = start
        k = bisect_right(ends, start)
        while pos < end and k < len(starts) and starts[k] < end:
            if starts[k] > pos:
                out.append((pos, starts[k]))
            pos = max(pos, ends[k])
            k += 1
        if pos < end:
            out.append((pos, end))
        return out


class SendStreamState(Enum):
    """Sending-part states, RFC 9000 §3.1 Figure 2."""

    # Members are singletons compared by identity: a C-level identity hash keeps the state
    # checks of the hot path cheap (Enum's own __hash__ is Python code).
    __hash__ = object.__hash__

    READY = "Ready"
    SEND = "Send"
    DATA_SENT = "Data Sent"
    DATA_RECVD = "Data Recvd"
    RESET_SENT = "Reset Sent"
    RESET_RECVD = "Reset Recvd"


class _SendEvent(Enum):
    # Members are singletons compared by identity: a C-level identity hash keeps the state
    # checks of the hot path cheap (Enum's own __hash__ is Python code).
    __hash__ = object.__hash__

    SEND_DATA = "send STREAM / STREAM_DATA_BLOCKED"
    SEND_FIN = "send STREAM + FIN"
    SEND_RESET = "send RESET_STREAM"
    ALL_ACKED = "recv all ACKs"
    RESET_ACKED = "recv ACK of RESET_STREAM"


# Each member as a module constant (Final: the compiled build reads a C static, not the class's
# attribute; the interpreter a module global instead of a global and an attribute).
_S_DATA_RECVD: Final = SendStreamState.DATA_RECVD
_S_DATA_SENT: Final = SendStreamState.DATA_SENT
_S_READY: Final = SendStreamState.READY
_S_RESET_RECVD: Final = SendStreamState.RESET_RECVD
_S_RESET_SENT: Final = SendStreamState.RESET_SENT
_S_SEND: Final = SendStreamState.SEND
_E_ALL_ACKED: Final = _SendEvent.ALL_ACKED
_E_RESET_ACKED: Final = _SendEvent.RESET_ACKED
_E_SEND_DATA: Final = _SendEvent.SEND_DATA
_E_SEND_FIN: Final = _SendEvent.SEND_FIN
_E_SEND_RESET: Final = _SendEvent.SEND_RESET
# RFC 9000 §3.1 Figure 2. A pair missing here is an event that does not change the state.
_TRANSITIONS: Final[dict[tuple[SendStreamState, _SendEvent], SendStreamState]] = {
    (_S_READY, _E_SEND_DATA): _S_SEND,
    (_S_READY, _E_SEND_FIN): _S_DATA_SENT,  # the first frame may already carry the FIN
    (_S_READY, _E_SEND_RESET): _S_RESET_SENT,
    (_S_SEND, _E_SEND_DATA): _S_SEND,
    (_S_SEND, _E_SEND_FIN): _S_DATA_SENT,
    (_S_SEND, _E_SEND_RESET): _S_RESET_SENT,
    (_S_DATA_SENT, _E_ALL_ACKED): _S_DATA_RECVD,
    (_S_DATA_SENT, _E_SEND_RESET): _S_RESET_SENT,
    (_S_RESET_SENT, _E_RESET_ACKED): _S_RESET_RECVD,
}
_TERMINAL: Final = frozenset((_S_DATA_RECVD, _S_RESET_RECVD))
_RESETTING: Final = frozenset((_S_RESET_SENT, _S_RESET_RECVD))
_CAN_RESET: Final = frozenset((_S_READY, _S_SEND, _S_DATA_SENT))


class SendStream:
    """The sending part of one stream: buffer, framing, retransmission, reset, flow control."""

    __slots__ = (
        "_acked",
        "_buf_base",
        "_chunks",
        "_chunks_start",
        "_conn_flow",
        "_cursor",
        "_cursor_start",
        "_events",
        "_fin_acked",
        "_fin_lost",
        "_fin_requested",
        "_fin_sent",
        "_lost",
        "_reset_code",
        "_reset_remote",
        "_reset_unseen",
        "_send_buffer_size",
        "_send_offset",
        "_sender",
        "_tail",
        "_want_writable",
        "_write_offset",
        "flow",
        "state",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: int,
        *,
        sender: StreamSender,
        events: StreamEventSink,
        connection_flow: SendFlowController,
        send_window: int = 0,
        send_buffer_size: int = DEFAULT_SEND_BUFFER_SIZE,
    ) -> None:
        if send_buffer_size <= 0:
            raise ValueError(f"send_buffer_size must be positive, got {send_buffer_size}")
        self.stream_id = stream_id
        self.state = SendStreamState.READY
        self.flow = SendFlowController(send_window)
        self._conn_flow = connection_flow
        self._sender = sender
        self._events = events
        self._send_buffer_size = send_buffer_size
        self._chunks: deque[memoryview] = deque()
        self._chunks_start = 0  # stream offset of _chunks[0]
        self._tail = bytearray()  # stream bytes [_write_offset - len(_tail), _write_offset)
        self._cursor = 0  # index of the chunk holding _send_offset (len(_chunks) past the last)
        self._cursor_start = 0  # stream offset of that chunk
        self._buf_base = 0  # everything below is acknowledged
        self._write_offset = 0  # end of the data the application wrote
        self._send_offset = 0  # next byte never sent before
        self._acked = RangeSet()  # acknowledged ranges above _buf_base
        self._lost = RangeSet()  # ranges to retransmit
        self._fin_requested = False
        self._fin_sent = False
        self._fin_acked = False
        self._fin_lost = False
        self._want_writable = False
        self._reset_code: int | None = None
        self._reset_remote = False
        # A reset caused by the peer's STOP_SENDING that the application has not yet run into
        # (quic-go: the stream is not completed before the application knows of its cancellation).
        self._reset_unseen = False

    def _transition(self, event: _SendEvent) -> None:
        self.state = _TRANSITIONS.get((self.state, event), self.state)

    # -- application side -------------------------------------------------------------------------

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in memory: written but not yet acknowledged."""
        return self._write_offset - self._buf_base

    @property
    def unsent_bytes(self) -> int:
        return self._write_offset - self._send_offset

    def writable(self) -> int:
        """How many bytes ``write`` would accept now."""
        if self._fin_requested or self.state in _RESETTING:
            return 0
        return max(0, self._send_buffer_size - (self._write_offset - self._send_offset))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer as much of ``data`` as fits and return how many bytes were taken.

        Raises StreamError if the stream was reset (by us, or because the peer sent STOP_SENDING),
        ValueError after ``close()``.
        """
        if self._reset_code is not None:
            self._reset_seen()
            raise StreamError(self.stream_id, self._reset_code, remote=self._reset_remote)
        if self._fin_requested:
            raise ValueError(f"stream {self.stream_id}: write after close")
        n = min(len(data), self._send_buffer_size - (self._write_offset - self._send_offset))
        if n < len(data):
            self._want_writable = True
        if n <= 0:
            return 0
        # RFC 9000 §19.8: an offset plus length cannot exceed 2^62-1.
        if self._write_offset + n > MAX_VARINT:
            raise ValueError(f"stream {self.stream_id}: stream data beyond 2^62-1 bytes")
        if n < _CHUNK_MIN:
            with memoryview(data) as view:
                self._tail += view[:n] if n < len(view) else view
        else:
            if self._tail:
                self._seal_tail()
            if type(data) is bytes:  # immutable: kept as it is, without a copy
                chunk = memoryview(data)
                self._chunks.append(chunk[:n] if n < len(chunk) else chunk)
            else:
                with memoryview(data) as view:
                    self._chunks.append(memoryview(view[:n].tobytes()))
        self._write_offset += n
        self._sender.on_has_stream_data(self.stream_id)
        return n

    def _seal_tail(self) -> None:
        """Make the tail a chunk (before data is cut from it or a long write follows it)."""
        self._chunks.append(memoryview(bytes(self._tail)))
        self._tail = bytearray()

    def _release(self) -> None:
        """Drop the chunks below the acknowledged prefix."""
        chunks = self._chunks
        base = self._buf_base
        start = self._chunks_start
        while chunks and start + len(chunks[0]) <= base:
            start += len(chunks.popleft())
            self._cursor -= 1  # a released chunk lies below _send_offset, so below the cursor
        self._chunks_start = start

    def close(self) -> None:
        """Send a FIN after the buffered data (no-op if already closed or reset)."""
        if self.state in _RESETTING:
            self._reset_seen()
            return
        if self._fin_requested:
            return
        self._fin_requested = True
        self._sender.on_has_stream_data(self.stream_id)

    def reset(self, error_code: int) -> None:
        """Abandon the stream with RESET_STREAM (RFC 9000 §3.1, §19.4); no-op if already reset or done."""
        if not self._reset(error_code, remote=False):
            self._reset_seen()

    def _reset_seen(self) -> None:
        """The application has met the peer-caused reset (write raised, or close/reset was called)."""
        if self._reset_unseen:
            self._reset_unseen = False
            if self.state is _S_RESET_RECVD:
                self._sender.on_send_side_completed(self.stream_id)

    def _reset(self, error_code: int, remote: bool) -> bool:
        if self.state not in _CAN_RESET:
            return False
        self._reset_code = error_code
        self._reset_remote = remote
        self._reset_unseen = remote
        self._transition(_E_SEND_RESET)
        # RFC 9000 §4.5: the final size is the amount of flow-control credit consumed.
        self._sender.queue_control_frame(ResetStreamFrame(self.stream_id, error_code, self._send_offset))
        # §3.1: once RESET_STREAM is sent nothing is retransmitted, so the buffer can go.
        self._chunks = deque()
        self._tail = bytearray()
        self._chunks_start = self._cursor_start = self._buf_base = self._write_offset
        self._cursor = 0
        self._lost = RangeSet()
        self._acked = RangeSet()
        self._fin_lost = False
        return True

    @property
    def reset_code(self) -> int | None:
        """The error code this stream was reset with, if it was."""
        return self._reset_code

    # -- frames from the peer ---------------------------------------------------------------------

    def handle_stop_sending(self, error_code: int) -> None:
        """The peer sent STOP_SENDING: reset with its code and tell the application.

        RFC 9000 §3.5: "An endpoint that receives a STOP_SENDING frame MUST send a RESET_STREAM
        frame if the stream is in the Ready or Send state" and "SHOULD copy the error code".
        """
        if self._reset(error_code, remote=True):
            self._events.on_stop_sending(self.stream_id, error_code)

    def update_send_window(self, maximum: int) -> None:
        """Apply MAX_STREAM_DATA (RFC 9000 §19.10); a smaller value is ignored."""
        if self.flow.update_limit(maximum) and self._write_offset > self._send_offset:
            self._sender.on_has_stream_data(self.stream_id)

    # -- packing ----------------------------------------------------------------------------------

    def has_data(self) -> bool:
        """True if anything is waiting to be sent: retransmissions, new data or the FIN."""
        if self.state in _RESETTING or self.state is _S_DATA_RECVD:
            return False
        return (
            bool(self._lost)
            or self._fin_lost
            or self._write_offset > self._send_offset
            or (self._fin_requested and not self._fin_sent)
        )

    def can_send_now(self) -> bool:
        """True if ``pop_stream_frame`` would produce a frame given enough room."""
        if self.state in _RESETTING or self.state is _S_DATA_RECVD:
            return False
        if self._lost or self._fin_lost:
            return True
        if self._write_offset > self._send_offset:
            return self.flow.available() > 0 and self._conn_flow.available() > 0
        return self._fin_requested and not self._fin_sent

    def blocked_by_connection(self) -> bool:
        """True if new data waits only for connection-level credit (MAX_DATA)."""
        return (
            self.state not in _RESETTING
            and self._write_offset > self._send_offset
            and self.flow.available() > 0
            and self._conn_flow.available() <= 0
        )

    def pop_stream_frame(self, max_size: int) -> StreamFrame | None:
        """The next STREAM frame of at most ``max_size`` encoded bytes (with Length), or None.

        Lost ranges go first (RFC 9000 §13.3: "the data is sent in new STREAM frames"), then new
        data within the stream's and the connection's flow-control credit.
        """
        if self.state in _RESETTING or self.state is _S_DATA_RECVD:
            return None
        if self._lost or self._fin_lost:
            return self._pop_retransmission(max_size)
        return self.pop_new_data(max_size)

    def _slice(self, start: int, end: int) -> bytes:
        """A copy of stream bytes [start, end) (retransmissions: rare, so a walk from the front)."""
        if self._tail and end > self._write_offset - len(self._tail):
            self._seal_tail()
        parts: list[memoryview] = []
        pos = self._chunks_start
        for chunk in self._chunks:
            chunk_end = pos + len(chunk)
            if chunk_end > start:
                parts.append(chunk[max(start - pos, 0) : min(end, chunk_end) - pos])
                if chunk_end >= end:
                    break
            pos = chunk_end
        return b"".join(parts)

    def _cut(self, offset: int, n: int) -> memoryview | bytes:
        """New stream bytes [offset, offset + n), n > 0, from the cursor on; advances the cursor."""
        if self._tail and offset + n > self._write_offset - len(self._tail):
            self._seal_tail()
        chunks = self._chunks
        index = self._cursor
        start = self._cursor_start
        chunk = chunks[index]
        size = len(chunk)
        rel = offset - start
        if rel + n < size:  # inside one chunk: the common case
            return chunk[rel : rel + n]
        self._cursor = index + 1
        self._cursor_start = start + size
        if rel + n == size:
            return chunk[rel:]
        parts = [chunk[rel:]]
        got = size - rel
        while got < n:
            index += 1
            chunk = chunks[index]
            size = len(chunk)
            take = n - got
            if take < size:
                parts.append(chunk[:take])
                break
            parts.append(chunk)
            got += size
            self._cursor = index + 1
            self._cursor_start += size
        return b"".join(parts)

    def _pop_retransmission(self, max_size: int) -> StreamFrame | None:
        final = self._write_offset
        if not self._lost:
            # Only the FIN was lost: an empty frame at the final size carries it again.
            if stream_frame_header_length(self.stream_id, final, 0) > max_size:
                return None
            self._fin_lost = False
            return StreamFrame(self.stream_id, final, b"", True)
        start, end = self._lost.first()
        n = stream_frame_max_data_len(max_size, self.stream_id, start)
        if n <= 0:
            return None
        end = min(end, start + n)
        self._lost.subtract(start, end)
        fin = self._fin_lost and end == final and self._fin_sent
        if fin:
            self._fin_lost = False
        return StreamFrame(self.stream_id, start, self._slice(start, end), fin)

    def sends_new_data_only(self) -> bool:
        """True if new data within the flow-control credit is all there is to send (no retransmission):
        what a burst of packets cuts with ``pop_new_data`` alone."""
        state = self.state
        return (
            (state is _S_READY or state is _S_SEND)
            and not self._lost
            and not self._fin_lost
            and self._write_offset > self._send_offset
            and self.flow.available() > 0
            and self._conn_flow.available() > 0
        )

    def pop_new_data(self, max_size: int) -> StreamFrame | None:
        """A STREAM frame of new data (and the FIN once all is sent), of at most ``max_size`` bytes."""
        offset = self._send_offset
        pending = self._write_offset - offset
        fin_pending = self._fin_requested and not self._fin_sent
        if pending == 0 and not fin_pending:
            return None
        flow = self.flow
        conn = self._conn_flow
        credit = min(flow.limit - flow.bytes_sent, conn.limit - conn.bytes_sent)
        if pending > 0 and credit <= 0:
            self.report_blocked()
            return None
        stream_id = self.stream_id
        n = min(pending, credit, stream_frame_max_data_len(max_size, stream_id, offset))
        fin = fin_pending and n == pending
        if n <= 0 and not (fin and stream_frame_header_length(stream_id, offset, 0) <= max_size):
            return None
        data = self._cut(offset, n) if n else b""
        self._send_offset = offset + n
        flow.bytes_sent += n
        conn.bytes_sent += n
        if fin:
            self._fin_sent = True
            self._transition(_E_SEND_FIN)
        else:
            if self.state is not _S_SEND:
                self._transition(_E_SEND_DATA)
            if n == credit and n < pending:
                self.report_blocked()  # this frame used the last of the credit
        if self._want_writable and n:
            self._want_writable = False
            self._events.on_stream_writable(stream_id)
        return StreamFrame(stream_id, offset, data, fin)

    def report_blocked(self) -> None:
        """Queue STREAM_DATA_BLOCKED / DATA_BLOCKED once per limit if new data is held back (RFC 9000 §4.1).

        "A sender SHOULD send a STREAM_DATA_BLOCKED or DATA_BLOCKED frame to indicate to the receiver
        that it has data to write but is blocked by flow control limits."
        """
        if self.state in _RESETTING or self._write_offset <= self._send_offset:
            return
        limit = self.flow.newly_blocked_at()
        if limit is not None:
            self._transition(_E_SEND_DATA)  # §3.1: sending STREAM_DATA_BLOCKED enters Send
            self._sender.queue_control_frame(StreamDataBlockedFrame(self.stream_id, limit))
        conn_limit = self._conn_flow.newly_blocked_at()
        if conn_limit is not None:
            self._sender.queue_control_frame(DataBlockedFrame(conn_limit))

    def is_blocked_at(self, limit: int) -> bool:
        """True while new data is still held back at this stream limit (for STREAM_DATA_BLOCKED)."""
        return (
            self.state not in _RESETTING
            and self.flow.limit == limit
            and self.flow.bytes_sent >= limit
            and self._write_offset > self._send_offset
        )

    # -- acknowledgements and loss ----------------------------------------------------------------

    def on_frame_acked(self, frame: StreamFrame) -> None:
        """A packet carrying ``frame`` was acknowledged: release the acknowledged prefix."""
        state = self.state
        if state is _S_RESET_SENT or state is _S_RESET_RECVD or state is _S_DATA_RECVD:
            return
        offset = frame.offset
        end = offset + len(frame.data)
        base = self._buf_base
        if frame.fin:
            self._fin_acked = True
            self._fin_lost = False
        if end > base:
            if self._lost:
                self._lost.subtract(max(offset, base), end)
            acked = self._acked
            if offset <= base and not acked:
                # In-order acknowledgement, the common case: release it directly.
                self._buf_base = end
                self._release()
            else:
                acked.add(max(offset, base), end)
                first_start, first_end = acked.first()
                if first_start == base:
                    self._buf_base = first_end
                    self._release()
                    acked.subtract(first_start, first_end)
        if self._fin_acked and self._buf_base == self._write_offset and state is _S_DATA_SENT:
            self._transition(_E_ALL_ACKED)
            self._sender.on_send_side_completed(self.stream_id)

    def on_frame_lost(self, frame: StreamFrame) -> None:
        """A packet carrying ``frame`` was declared lost: queue its unacknowledged bytes again."""
        if self.state in _RESETTING or self.state is _S_DATA_RECVD:
            return  # §3.1: no retransmission after RESET_STREAM
        start = max(frame.offset, self._buf_base)
        end = frame.offset + len(frame.data)
        queued = False
        if start < end:
            for gap_start, gap_end in self._acked.gaps(start, end):
                self._lost.add(gap_start, gap_end)
                queued = True
        if frame.fin and not self._fin_acked:
            self._fin_lost = True
            queued = True
        if queued:
            self._sender.on_has_stream_data(self.stream_id)

    def on_reset_acked(self) -> None:
        """The RESET_STREAM frame was acknowledged: Reset Recvd, a terminal state.

        After a STOP_SENDING the part is reported completed only once the application has met the
        reset too, so a StreamError with the peer's code is never replaced by "unknown stream".
        """
        if self.state is _S_RESET_SENT:
            self._transition(_E_RESET_ACKED)
            if not self._reset_unseen:
                self._sender.on_send_side_completed(self.stream_id)

    def reset_frame_if_current(self, frame: ResetStreamFrame) -> ResetStreamFrame | None:
        """A lost RESET_STREAM is sent again until acknowledged (RFC 9000 §13.3)."""
        return frame if self.state is _S_RESET_SENT else None

    @property
    def completed(self) -> bool:
        return self.state in _TERMINAL and not self._reset_unseen
