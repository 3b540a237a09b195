"""The receiving part of a stream (RFC 9000 §3.2, §2.2, §4.5, §19.4, §19.5, §19.8).

A :class:`ReceiveStream` reassembles STREAM frames that arrive out of order, duplicated or
overlapping, enforces the final-size rules of §4.5 and stream flow control (§4.1), delivers
contiguous bytes through ``read()`` (crediting flow control), handles RESET_STREAM and lets the
application abandon reading with STOP_SENDING (``cancel_read``).

Reassembly without quadratic copies: contiguous data waits in a deque of chunks (a partial read
slices the first chunk); data beyond a hole lives in two parallel sorted lists (start offsets and
chunks) whose chunks never overlap: an arriving frame only fills the holes between what is already
stored. When a hole is filled, the run of chunks that became contiguous moves to the deque in one
slice deletion. Small pieces are copied and coalesced into a growing ``bytearray`` so that a peer
sending tiny frames cannot make us keep one object (and one packet buffer) per byte; the number of
out-of-order chunks is bounded as well.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Final

from quicsilver.core.flowcontrol import StreamReceiveFlowController
from quicsilver.errors import StreamError, TransportError, TransportErrorCode
from quicsilver.wire.frames import ResetStreamFrame, StopSendingFrame, StreamFrame

if TYPE_CHECKING:
    from quicsilver.core.streams_map import StreamEventSink, StreamSender

__all__ = ["MAX_OUT_OF_ORDER_CHUNKS", "ReceiveStream", "ReceiveStreamState"]

MAX_OUT_OF_ORDER_CHUNKS: Final = 1024
"""Out-of-order chunks a stream keeps beyond one per 512 buffered bytes before the peer is
considered abusive (INTERNAL_ERROR); quic-go allows 1000 gaps."""

_SMALL_PIECE: Final = 512  # pieces below this size are copied and coalesced
_MAX_COALESCED: Final = 64 * 1024  # a coalescing bytearray stops growing at this size
_MAX_MERGE_COPY: Final = 4096 + _SMALL_PIECE  # most bytes one merge may copy

_FINAL_SIZE_ERROR: Final = TransportErrorCode.FINAL_SIZE_ERROR

Chunk = bytes | bytearray | memoryview


class ReceiveStreamState(Enum):
    """Receiving-part states, RFC 9000 §3.2 Figure 3."""

    # Members are singletons compared by identity: a C-level identity hash keeps the state
    # checks of the hot path cheap (Enum's own __hash__ is Python code).
    __hash__ = object.__hash__

    RECV = "Recv"
    SIZE_KNOWN = "Size Known"
    DATA_RECVD = "Data Recvd"
    DATA_READ = "Data Read"
    RESET_RECVD = "Reset Recvd"
    RESET_READ = "Reset Read"


class _RecvEvent(Enum):
    # Members are singletons compared by identity: a C-level identity hash keeps the state
    # checks of the hot path cheap (Enum's own __hash__ is Python code).
    __hash__ = object.__hash__

    RECV_FIN = "recv STREAM + FIN"
    ALL_DATA_RECVD = "recv all data"
    APP_READ_ALL = "app read all data"
    RECV_RESET = "recv RESET_STREAM"
    APP_READ_RESET = "app read reset"
    APP_ABANDON = "app cancelled reading, final size known"


# Each member as a module constant (Final: the compiled build reads a C static, not the class's
# attribute; the interpreter a module global instead of a global and an attribute).
_S_DATA_READ: Final = ReceiveStreamState.DATA_READ
_S_DATA_RECVD: Final = ReceiveStreamState.DATA_RECVD
_S_RECV: Final = ReceiveStreamState.RECV
_S_RESET_READ: Final = ReceiveStreamState.RESET_READ
_S_RESET_RECVD: Final = ReceiveStreamState.RESET_RECVD
_S_SIZE_KNOWN: Final = ReceiveStreamState.SIZE_KNOWN
_E_ALL_DATA_RECVD: Final = _RecvEvent.ALL_DATA_RECVD
_E_APP_ABANDON: Final = _RecvEvent.APP_ABANDON
_E_APP_READ_ALL: Final = _RecvEvent.APP_READ_ALL
_E_APP_READ_RESET: Final = _RecvEvent.APP_READ_RESET
_E_RECV_FIN: Final = _RecvEvent.RECV_FIN
_E_RECV_RESET: Final = _RecvEvent.RECV_RESET
# RFC 9000 §3.2 Figure 3. A pair missing here is an event that does not change the state.
# APP_ABANDON is ours: a stream whose reading was cancelled ends once its final size is known
# (the figure's "app read all data" for data the application declined to read).
_TRANSITIONS: Final[dict[tuple[ReceiveStreamState, _RecvEvent], ReceiveStreamState]] = {
    (_S_RECV, _E_RECV_FIN): _S_SIZE_KNOWN,
    (_S_RECV, _E_RECV_RESET): _S_RESET_RECVD,
    (_S_SIZE_KNOWN, _E_ALL_DATA_RECVD): _S_DATA_RECVD,
    (_S_SIZE_KNOWN, _E_RECV_RESET): _S_RESET_RECVD,
    (_S_SIZE_KNOWN, _E_APP_ABANDON): _S_DATA_READ,
    (_S_DATA_RECVD, _E_APP_READ_ALL): _S_DATA_READ,
    (_S_DATA_RECVD, _E_APP_ABANDON): _S_DATA_READ,
    (_S_RESET_RECVD, _E_APP_READ_RESET): _S_RESET_READ,
}
_RECEIVING: Final = frozenset((_S_RECV, _S_SIZE_KNOWN))
_TERMINAL: Final = frozenset((_S_DATA_READ, _S_RESET_READ))


def _own(data: Chunk) -> Chunk:
    """Data we may keep: bytes or views of bytes are immutable; anything else is copied."""
    if isinstance(data, bytes):
        return memoryview(data)
    if isinstance(data, memoryview) and isinstance(data.obj, bytes):
        return data
    return memoryview(bytes(data))


def _stored(piece: memoryview) -> Chunk:
    """What we keep of a piece of a frame: small pieces are copied so they can be coalesced."""
    return bytearray(piece) if len(piece) < _SMALL_PIECE else _own(piece)


def _append_coalescing(starts: list[int], chunks: list[Chunk], offset: int, chunk: Chunk) -> None:
    """Append a chunk, merging it into the previous one when they touch and one of them is small.

    A merge copies at most ``_MAX_MERGE_COPY`` bytes, so a hostile peer cannot make one byte of
    input cost more than a few kilobytes of copying, and merged chunks stay below _MAX_COALESCED.
    """
    if chunks:
        prev = chunks[-1]
        if (
            starts[-1] + len(prev) == offset
            and (len(prev) < _SMALL_PIECE or len(chunk) < _SMALL_PIECE)
            and len(prev) + len(chunk) <= _MAX_COALESCED
        ):
            if isinstance(prev, bytearray):
                if len(chunk) <= _MAX_MERGE_COPY:
                    prev += chunk
                    return
            elif len(prev) + len(chunk) <= _MAX_MERGE_COPY:
                merged = bytearray(prev)
                merged += chunk
                chunks[-1] = merged
                return
    starts.append(offset)
    chunks.append(chunk)


class ReceiveStream:
    """The receiving part of one stream: reassembly, final size, reset, flow-control credit."""

    __slots__ = (
        "_contiguous_end",
        "_events",
        "_final_size",
        "_ooo_bytes",
        "_ooo_chunks",
        "_ooo_starts",
        "_read_offset",
        "_ready",
        "_reset_code",
        "_sender",
        "_stop_code",
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
        flow: StreamReceiveFlowController,
    ) -> None:
        self.stream_id = stream_id
        self.state = ReceiveStreamState.RECV
        self.flow = flow
        self._sender = sender
        self._events = events
        self._ready: deque[Chunk] = deque()  # contiguous data [_read_offset, _contiguous_end)
        self._read_offset = 0
        self._contiguous_end = 0
        self._ooo_starts: list[int] = []  # sorted; every start > _contiguous_end
        self._ooo_chunks: list[Chunk] = []
        self._ooo_bytes = 0
        self._final_size: int | None = None
        self._reset_code: int | None = None
        self._stop_code: int | None = None

    def _transition(self, event: _RecvEvent) -> None:
        self.state = _TRANSITIONS.get((self.state, event), self.state)

    # -- what the application sees ----------------------------------------------------------------

    def readable(self) -> int:
        """Contiguous bytes ``read`` can return now."""
        return self._contiguous_end - self._read_offset

    @property
    def at_eof(self) -> bool:
        """True once every byte up to the FIN has been read (never for a reset stream)."""
        if self._reset_code is not None:
            return False
        return self._final_size is not None and self._read_offset == self._final_size

    @property
    def final_size(self) -> int | None:
        return self._final_size

    @property
    def reset_code(self) -> int | None:
        """The error code of the peer's RESET_STREAM, if one was received."""
        return self._reset_code

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in memory (contiguous and out of order)."""
        return self.readable() + self._ooo_bytes

    @property
    def fragments(self) -> int:
        """How many separate out-of-order chunks are buffered (holes make them)."""
        return len(self._ooo_starts)

    @property
    def completed(self) -> bool:
        return self.state in _TERMINAL

    def read(self, n: int, now: float) -> bytes:
        """Up to ``n`` contiguous bytes (all available if ``n < 0``); b"" at the end of the stream.

        Returns b"" too when nothing is available yet (check ``at_eof``). Credits flow control,
        which may make a MAX_STREAM_DATA / MAX_DATA update due. Raises StreamError if the peer
        reset the stream or ``cancel_read`` was called.
        """
        if self._reset_code is not None:
            if self.state is _S_RESET_RECVD:
                # RFC 9000 §3.2: the application has now read the reset: Reset Read.
                self._transition(_E_APP_READ_RESET)
                self._sender.on_receive_side_completed(self.stream_id)
            raise StreamError(self.stream_id, self._reset_code, remote=True)
        if self._stop_code is not None:
            raise StreamError(self.stream_id, self._stop_code, remote=False)
        available = self._contiguous_end - self._read_offset
        if n < 0 or n > available:
            n = available
        if n > 0:
            data = self._take(n)
            self._read_offset += n
            self.flow.add_bytes_read(n, now)
            # RFC 9000 §13.3: MAX_STREAM_DATA is only useful until the final size is known.
            if self.state is _S_RECV and self.flow.has_window_update():
                self._sender.on_window_update_due(self.stream_id)
        else:
            data = b""
        if self.state is _S_DATA_RECVD and self._read_offset == self._final_size:
            self._transition(_E_APP_READ_ALL)
            self._sender.on_receive_side_completed(self.stream_id)
        return data

    def _take(self, n: int) -> bytes:
        ready = self._ready
        parts: list[Chunk] = []
        while n > 0:
            chunk = ready[0]
            size = len(chunk)
            if size <= n:
                parts.append(ready.popleft())
                n -= size
            elif isinstance(chunk, bytearray):
                with memoryview(chunk) as view:
                    parts.append(view[:n].tobytes())
                del chunk[:n]  # O(1) in CPython: moves the array's start
                n = 0
            else:
                view = memoryview(chunk)
                parts.append(view[:n])
                ready[0] = view[n:]
                n = 0
        if len(parts) == 1:
            part = parts[0]
            return part if isinstance(part, bytes) else bytes(part)
        return b"".join(parts)

    def cancel_read(self, error_code: int) -> None:
        """The application stops reading: discard data and ask the peer to stop (STOP_SENDING).

        RFC 9000 §3.5: STOP_SENDING is useful only while the peer may still send, i.e. in the
        Recv or Size Known states. Buffered and future data still count for flow control.
        """
        if self.state is _S_RESET_RECVD:
            # The application gives up on a stream the peer already reset: that reads the reset.
            self._transition(_E_APP_READ_RESET)
            self._sender.on_receive_side_completed(self.stream_id)
            return
        if self.state not in (_S_RECV, _S_SIZE_KNOWN, _S_DATA_RECVD) or self._stop_code is not None:
            return
        self._stop_code = error_code
        if self.state in _RECEIVING:
            self._sender.queue_control_frame(StopSendingFrame(self.stream_id, error_code))
        self._discard()
        if self._final_size is not None:
            self._transition(_E_APP_ABANDON)
            self._sender.on_receive_side_completed(self.stream_id)

    def stop_sending_frame_if_current(self, frame: StopSendingFrame) -> StopSendingFrame | None:
        """A lost STOP_SENDING is resent while the peer may still be sending (RFC 9000 §13.3)."""
        return frame if self.state in _RECEIVING and self._stop_code is not None else None

    def _discard(self) -> None:
        self._ready.clear()
        self._ooo_starts.clear()
        self._ooo_chunks.clear()
        self._ooo_bytes = 0
        self._read_offset = self._contiguous_end
        self.flow.abandon(self._final_size)

    # -- frames from the peer ---------------------------------------------------------------------

    def _check_final_size(self, end: int, fin: bool) -> None:
        final = self._final_size
        if fin:
            # RFC 9000 §4.5: "If a RESET_STREAM or STREAM frame is received indicating a change in
            # the final size for the stream, an endpoint SHOULD respond with an error of type
            # FINAL_SIZE_ERROR" and "a receiver SHOULD treat receipt of data at or beyond the final
            # size as an error of type FINAL_SIZE_ERROR" (also a final size below data received).
            if final is not None and end != final:
                raise TransportError(
                    _FINAL_SIZE_ERROR, f"stream {self.stream_id}: final size changed from {final} to {end}"
                )
            if end < self.flow.highest_received:
                raise TransportError(
                    _FINAL_SIZE_ERROR,
                    f"stream {self.stream_id}: final size {end} below received data "
                    f"{self.flow.highest_received}",
                )
        elif final is not None and end > final:
            raise TransportError(
                _FINAL_SIZE_ERROR, f"stream {self.stream_id}: data up to {end} beyond final size {final}"
            )

    def handle_stream_frame(self, frame: StreamFrame) -> None:
        """Process a STREAM frame; raises TransportError (FINAL_SIZE_ERROR, FLOW_CONTROL_ERROR)."""
        start = frame.offset
        data = frame.data
        end = start + len(data)
        if frame.fin or self._final_size is not None:
            self._check_final_size(end, frame.fin)
        # RFC 9000 §4.1: data beyond the advertised limit is a FLOW_CONTROL_ERROR.
        self.flow.update_highest_received(end)
        if frame.fin and self._final_size is None:
            self._final_size = end
            self._transition(_E_RECV_FIN)
            if self._stop_code is not None:
                self.flow.abandon(end)
                self._transition(_E_APP_ABANDON)
                self._sender.on_receive_side_completed(self.stream_id)
                return
        if self._stop_code is not None:
            self.flow.abandon(None)  # the application gave up: credit what arrives right away
            return
        if self.state not in _RECEIVING:
            return  # reset, or every byte already here: nothing to store
        was_readable = self._contiguous_end > self._read_offset
        if end > self._contiguous_end:
            if start <= self._contiguous_end:
                self._append_contiguous(data, start, end)
            else:
                self._insert_out_of_order(data, start, end)
        if self._final_size is not None and self._contiguous_end == self._final_size:
            self._transition(_E_ALL_DATA_RECVD)
            self._events.on_stream_readable(self.stream_id)  # the FIN is readable
        elif not was_readable and self._contiguous_end > self._read_offset:
            self._events.on_stream_readable(self.stream_id)

    def _push_ready(self, piece: Chunk) -> None:
        """Queue contiguous data; a bytearray passed here is already ours (never the caller's)."""
        ready = self._ready
        if len(piece) < _SMALL_PIECE:
            if ready:
                tail = ready[-1]
                if isinstance(tail, bytearray) and len(tail) < _MAX_COALESCED:
                    tail += piece
                    return
            ready.append(bytearray(piece))
            return
        ready.append(piece if isinstance(piece, bytearray) else _own(piece))

    def _append_contiguous(self, data: Chunk, start: int, end: int) -> None:
        contiguous = self._contiguous_end
        view = memoryview(data)
        self._push_ready(view[contiguous - start :] if start < contiguous else view)
        contiguous = end
        starts, chunks = self._ooo_starts, self._ooo_chunks
        k = 0
        count = len(starts)
        moved = 0
        while k < count and starts[k] <= contiguous:
            chunk_start = starts[k]
            chunk = chunks[k]
            chunk_end = chunk_start + len(chunk)
            moved += len(chunk)
            if chunk_end > contiguous:
                # A whole bytearray chunk is ours already and moves as is; anything else is sliced.
                whole = chunk_start == contiguous and isinstance(chunk, bytearray)
                self._push_ready(chunk if whole else memoryview(chunk)[contiguous - chunk_start :])
                contiguous = chunk_end
            k += 1
        if k:
            del starts[:k]  # one slice deletion for the whole run that became contiguous
            del chunks[:k]
            self._ooo_bytes -= moved
        self._contiguous_end = contiguous

    def _insert_out_of_order(self, data: Chunk, start: int, end: int) -> None:
        """Store the parts of [start, end) not stored yet, then coalesce around them."""
        starts, chunks = self._ooo_starts, self._ooo_chunks
        lo = bisect_right(starts, start) - 1
        if lo < 0 or starts[lo] + len(chunks[lo]) < start:
            lo += 1  # lo: the first chunk that overlaps or touches [start, end)
        hi = bisect_left(starts, end)  # chunks lo .. hi-1 start before end
        # Take one neighbour on each side into the region so new pieces can merge with them.
        left = lo - 1 if lo > 0 else lo
        right = hi + 1 if hi < len(starts) else hi
        view = memoryview(data)
        region_starts: list[int] = starts[left:lo]
        region_chunks: list[Chunk] = chunks[left:lo]
        added = 0
        pos = start
        for k in range(lo, hi):
            chunk_start = starts[k]
            chunk = chunks[k]
            if chunk_start > pos:
                piece = view[pos - start : chunk_start - start]
                added += len(piece)
                _append_coalescing(region_starts, region_chunks, pos, _stored(piece))
            _append_coalescing(region_starts, region_chunks, chunk_start, chunk)
            pos = max(pos, chunk_start + len(chunk))
        if pos < end:
            piece = view[pos - start :]
            added += len(piece)
            _append_coalescing(region_starts, region_chunks, pos, _stored(piece))
        for k in range(hi, right):
            _append_coalescing(region_starts, region_chunks, starts[k], chunks[k])
        starts[left:right] = region_starts
        chunks[left:right] = region_chunks
        self._ooo_bytes += added
        # Holes cannot be coalesced: a peer scattering tiny frames would make us keep one object per
        # few bytes. Honest reordering stays far below this bound (chunks of a full packet each).
        if len(starts) > MAX_OUT_OF_ORDER_CHUNKS + self._ooo_bytes // _SMALL_PIECE:
            raise TransportError(
                TransportErrorCode.INTERNAL_ERROR,
                f"stream {self.stream_id}: too many out-of-order fragments ({len(starts)})",
            )

    def handle_reset_stream(self, frame: ResetStreamFrame) -> None:
        """Process RESET_STREAM: check the final size, drop the data, report the code once.

        RFC 9000 §3.2: in Data Recvd all data is already here and the reset may be ignored. The
        application is told through ``StreamEventSink.on_stream_reset``; the stream stays in Reset
        Recvd (and in the streams map) until the application reads the reset (``read`` raises
        StreamError) or calls ``cancel_read``, so the code cannot be lost. If the application had
        already cancelled reading, it is not told again and the stream ends at once.
        """
        self._check_final_size(frame.final_size, True)
        self.flow.update_highest_received(frame.final_size)
        self._final_size = frame.final_size
        if self.state not in _RECEIVING:
            return
        self._reset_code = frame.error_code
        self._transition(_E_RECV_RESET)
        self._discard()
        if self._stop_code is None:
            self._events.on_stream_reset(self.stream_id, frame.error_code)
            return
        self._transition(_E_APP_READ_RESET)
        self._sender.on_receive_side_completed(self.stream_id)

    def window_update_frame_maximum(self) -> int:
        """The MAX_STREAM_DATA value to send now, or 0 if none is due (RFC 9000 §4.2)."""
        if self.state is not _S_RECV or self._stop_code is not None:
            return 0
        return self.flow.get_window_update()

    def max_stream_data_is_current(self, maximum: int) -> bool:
        """A lost MAX_STREAM_DATA is resent only if it is still the latest limit (RFC 9000 §13.3)."""
        return self.state is _S_RECV and self._stop_code is None and self.flow.receive_window == maximum
