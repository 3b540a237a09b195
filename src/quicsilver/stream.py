"""asyncio streams over QUIC: ReceiveStream, SendStream, Stream, and a StreamReader/Writer adapter.

RFC 9000 §2-§3 streams as quic-go shows them to applications. ``SendStream.write`` waits while the
stream's send buffer is full (backpressure: unlike aioquic a fast writer cannot grow memory without
bound); ``close`` sends the FIN; ``cancel_write(code)`` is RESET_STREAM (§19.4),
``ReceiveStream.cancel_read(code)`` is STOP_SENDING (§19.5). ``read(n)`` returns b"" at the FIN and
raises :class:`~quicsilver.errors.StreamError` after a reset.

Reads and writes wait on futures that carry no data, so cancelling a pending ``read`` loses nothing:
the bytes stay in the core until the next ``read``.

:func:`open_asyncio_streams` wraps a bidirectional stream in real ``asyncio.StreamReader`` /
``asyncio.StreamWriter`` objects (write + drain) for code written against asyncio streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

from .errors import StreamError, raisable_copy

if TYPE_CHECKING:
    from .api_connection import Connection

__all__ = ["ReceiveStream", "SendStream", "Stream", "open_asyncio_streams"]

_DEFAULT_CHUNK = 65536


class _StreamBase:
    __slots__ = (
        "_conn",
        "_eof",
        "_read_error",
        "_read_waiter",
        "_write_done",
        "_write_error",
        "_write_waiter",
        "stream_id",
    )

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        # Sticky outcomes: the core forgets a stream once both sides are complete (RFC 9000 §3.5).
        self._eof = False
        self._read_error: StreamError | None = None
        self._write_error: StreamError | None = None
        self._write_done = False  # FIN requested or reset: nothing more will be written

    def _finished(self) -> bool:
        """True when the application is done with every side of the stream it has (both here;
        the one-sided classes override it)."""
        return self._write_done and self._read_finished()

    def _read_finished(self) -> bool:
        return self._eof or self._read_error is not None

    def _side_done(self) -> None:
        if self._finished():
            self._conn._forget_stream(self.stream_id, self)

    @property
    def connection(self) -> Connection:
        return self._conn

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.stream_id}>"

    def _wake_reader(self) -> bool:
        """Resolve a pending read; whether there was one."""
        fut = self._read_waiter
        if fut is not None and not fut.done():
            fut.set_result(None)
            return True
        return False

    def _wake_writer(self) -> None:
        fut = self._write_waiter
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _wake_all(self) -> None:
        self._wake_reader()
        self._wake_writer()

    async def _wait_reader(self) -> None:
        self._conn._raise_if_closed()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._read_waiter = fut
        try:
            await fut
        finally:
            if self._read_waiter is fut:  # a cancelled waiter must not clear its successor's future
                self._read_waiter = None

    async def _wait_writer(self) -> None:
        self._conn._raise_if_closed()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._write_waiter = fut
        try:
            await fut
        finally:
            if self._write_waiter is fut:
                self._write_waiter = None


class ReceiveStream(_StreamBase):
    """The receiving side of a stream (a peer's unidirectional stream, or half of a :class:`Stream`)."""

    __slots__ = ()

    def _finished(self) -> bool:
        return self._read_finished()

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes, waiting for at least one; b"" at the end of the stream (FIN).

        ``n < 0`` reads everything up to the FIN. Raises StreamError after RESET_STREAM or
        ``cancel_read``, the connection's error if it ended.
        """
        if n < 0:
            parts = []
            while chunk := await self.read(_DEFAULT_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        if n == 0:
            return b""
        conn = self._conn
        sid = self.stream_id
        while True:
            if self._read_error is not None:
                raise raisable_copy(self._read_error)
            if self._eof:
                return b""
            if conn._error is None:
                try:
                    data, fin = conn._stream_read(sid, n)
                    if fin:
                        # this read took the last byte before the FIN: the next read ends here
                        self._eof = True
                        self._side_done()
                    if data or fin:
                        return data
                except StreamError as exc:
                    self._read_error = exc
                    self._side_done()
                    raise
                except ValueError:
                    # The core forgot the stream: everything up to the FIN was read.
                    self._eof = True
                    self._side_done()
                    return b""
            await self._wait_reader()

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; asyncio.IncompleteReadError if the stream ends first."""
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        parts: list[bytes] = []
        got = 0
        while got < n:
            chunk = await self.read(n - got)
            if not chunk:
                partial = b"".join(parts)
                raise asyncio.IncompleteReadError(partial, n)
            parts.append(chunk)
            got += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def cancel_read(self, code: int = 0) -> None:
        """Stop reading: discard buffered data and ask the peer to stop sending (STOP_SENDING)."""
        if self._read_error is None and not self._eof:
            self._read_error = StreamError(self.stream_id, code, remote=False)
            if self._conn._error is None:
                with contextlib.suppress(ValueError):
                    self._conn._stream_stop_sending(self.stream_id, code)
            self._side_done()
        self._wake_reader()

    def __aiter__(self) -> ReceiveStream:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read(_DEFAULT_CHUNK)
        if not chunk:
            raise StopAsyncIteration
        return chunk


class SendStream(_StreamBase):
    """The sending side of a stream (our unidirectional stream, or half of a :class:`Stream`)."""

    __slots__ = ()

    def _finished(self) -> bool:
        return self._write_done

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending, waiting while the send buffer is full (backpressure).

        Raises StreamError if the stream was reset (``cancel_write``, or STOP_SENDING from the
        peer), ValueError after ``close``, the connection's error if it ended. If cancelled, the
        part already accepted into the send buffer is still sent.
        """
        conn = self._conn
        sid = self.stream_id
        with memoryview(data) as view:
            total = len(view)
            sent = 0
            while True:
                if self._write_error is not None:
                    raise raisable_copy(self._write_error)
                conn._raise_if_closed()
                if sent < total:
                    try:
                        sent += conn._stream_write(sid, view[sent:])
                    except StreamError as exc:
                        self._write_error = exc
                        self._write_done = True
                        self._side_done()
                        raise
                if sent >= total:
                    return
                await self._wait_writer()

    async def drain(self) -> None:
        """Compatibility with asyncio.StreamWriter: ``write`` already waits for buffer space."""
        self._conn._raise_if_closed()

    async def close(self) -> None:
        """Send the FIN after the buffered data (does not wait for it to be acknowledged)."""
        if self._conn._error is None and self._write_error is None and not self._write_done:
            with contextlib.suppress(ValueError):  # already complete and forgotten by the core
                self._conn._stream_close(self.stream_id)
            self._write_done = True
            self._side_done()

    def cancel_write(self, code: int = 0) -> None:
        """Abandon sending: RESET_STREAM with ``code``; buffered data is discarded."""
        if self._write_error is None:
            self._write_error = StreamError(self.stream_id, code, remote=False)
            if self._conn._error is None:
                with contextlib.suppress(ValueError):
                    self._conn._stream_reset(self.stream_id, code)
            self._write_done = True
            self._side_done()
        self._wake_writer()


class Stream(SendStream, ReceiveStream):
    """A bidirectional stream: ``read`` / ``readexactly`` / ``write`` / ``close`` (FIN) / cancel both ways."""

    __slots__ = ()

    def _finished(self) -> bool:
        return self._write_done and self._read_finished()

    def cancel(self, code: int = 0) -> None:
        """Reset the send side and stop the receive side with the same code."""
        self.cancel_write(code)
        self.cancel_read(code)


class _QuicStreamTransport(asyncio.Transport):
    """An asyncio.Transport over a QUIC stream, so StreamReaderProtocol / StreamWriter work on it."""

    def __init__(self, stream: Stream, protocol: asyncio.StreamReaderProtocol, limit: int) -> None:
        super().__init__({"stream_id": stream.stream_id})
        self._stream = stream
        self._protocol = protocol
        self._pending: deque[bytes] = deque()
        self._pending_size = 0
        self._high = 4 * limit
        self._low = limit
        self._paused_writing = False
        self._eof_requested = False
        self._closing = False
        self._lost = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._new_data = asyncio.Event()
        self._reader_task = asyncio.get_running_loop().create_task(self._pump_reads())
        self._writer_task = asyncio.get_running_loop().create_task(self._pump_writes())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._stream.connection
        if name == "peername":
            return conn.remote_addr
        if name == "sockname":
            return conn.local_addr
        if name == "connection":
            return conn
        return super().get_extra_info(name, default)

    async def _pump_reads(self) -> None:
        try:
            while True:
                await self._reading.wait()
                chunk = await self._stream.read(_DEFAULT_CHUNK)
                if not chunk:
                    self._protocol.eof_received()
                    return
                self._protocol.data_received(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._connection_lost(exc)

    def _connection_lost(self, exc: Exception | None) -> None:
        if not self._lost:
            self._lost = True
            self._protocol.connection_lost(exc)

    async def _pump_writes(self) -> None:
        try:
            while True:
                while self._pending:
                    data = self._pending.popleft()
                    await self._stream.write(data)
                    self._pending_size -= len(data)
                    if self._paused_writing and self._pending_size <= self._low:
                        self._paused_writing = False
                        self._protocol.resume_writing()
                if self._eof_requested:
                    await self._stream.close()
                    return
                self._new_data.clear()
                await self._new_data.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._connection_lost(exc)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_requested:
            raise RuntimeError("write after write_eof / close")
        if not data:
            return
        chunk = bytes(data)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self._new_data.set()
        if not self._paused_writing and self._pending_size > self._high:
            self._paused_writing = True
            self._protocol.pause_writing()

    def write_eof(self) -> None:
        self._eof_requested = True
        self._new_data.set()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return self._pending_size

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """FIN after the pending data; stop reading (STOP_SENDING 0) if the peer has not finished."""
        if self._closing:
            return
        self._closing = True
        self.write_eof()
        if not self._reader_task.done():
            self._reader_task.cancel()
            self._stream.cancel_read(0)
        # asyncio semantics: buffered data is flushed first, then connection_lost(None)
        if self._writer_task.done():
            self._connection_lost(None)
        else:
            self._writer_task.add_done_callback(lambda _task: self._connection_lost(None))

    def abort(self) -> None:
        """Drop pending data; RESET_STREAM and STOP_SENDING with code 0."""
        self._closing = True
        self._reader_task.cancel()
        self._writer_task.cancel()
        self._stream.cancel(0)
        self._connection_lost(None)


async def open_asyncio_streams(
    stream: Stream, *, limit: int = 2**16
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wrap a bidirectional QUIC stream in an ``asyncio.StreamReader`` and ``asyncio.StreamWriter``.

    ``writer.write`` buffers, ``await writer.drain()`` waits while more than ``4 * limit`` bytes are
    pending; ``writer.write_eof()`` sends the FIN; ``reader`` sees EOF at the peer's FIN.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = _QuicStreamTransport(stream, protocol, limit)
    protocol.connection_made(transport)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
