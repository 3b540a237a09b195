"""The perf protocol (ALPN ``perf``) on quicsilver streams, for throughput and latency tests.

After draft-banks-quic-performance: on a new bidirectional stream the client sends the number of
bytes N it wants back as an 8-byte big-endian integer, then uploads any number of bytes and ends
its side (FIN); once the server has seen the FIN it replies with N bytes and ends its side. A
stream that ends before the 8-byte header is reset with :data:`PERF_ERROR_BAD_REQUEST`.

Server: :func:`serve_perf_connection` (every stream of one connection) or
:func:`serve_perf_stream` (one stream). Client: :func:`perf_request` returns a :class:`PerfResult`.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import QuicError

if TYPE_CHECKING:
    from ..api_connection import Connection
    from ..stream import ReceiveStream, SendStream, Stream

__all__ = [
    "PERF_ALPN",
    "PERF_ERROR_BAD_REQUEST",
    "PerfResult",
    "discard",
    "perf_request",
    "serve_perf_connection",
    "serve_perf_stream",
    "write_zeros",
]

PERF_ALPN = "perf"
PERF_ERROR_BAD_REQUEST = 0x1
_HEADER = struct.Struct("!Q")
_CHUNK = 64 * 1024
_ZEROS = bytes(_CHUNK)
_ZEROS_VIEW = memoryview(_ZEROS)


@dataclass(frozen=True, slots=True)
class PerfResult:
    """One perf request: bytes each way and the time from opening the stream to the server's FIN."""

    downloaded: int
    uploaded: int
    seconds: float

    @property
    def mbps(self) -> float:
        """Payload bytes moved (both directions) per second, in MB/s (10^6 bytes)."""
        return (self.downloaded + self.uploaded) / self.seconds / 1e6 if self.seconds > 0 else 0.0


async def write_zeros(stream: SendStream, size: int) -> None:
    """Write ``size`` zero bytes in 64 KiB chunks (``write`` applies the backpressure)."""
    while size >= _CHUNK:
        await stream.write(_ZEROS)
        size -= _CHUNK
    if size:
        await stream.write(_ZEROS_VIEW[:size])


async def discard(stream: ReceiveStream) -> int:
    """Read a stream to its FIN, keeping nothing; returns the number of bytes read."""
    total = 0
    while chunk := await stream.read(_CHUNK):
        total += len(chunk)
    return total


async def serve_perf_stream(stream: Stream) -> int:
    """Answer one perf request on ``stream``; returns the number of bytes sent (0 if refused)."""
    try:
        header = await stream.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError:
        stream.cancel_write(PERF_ERROR_BAD_REQUEST)
        return 0
    (size,) = _HEADER.unpack(header)
    await discard(stream)
    await write_zeros(stream, size)
    await stream.close()
    return int(size)


async def serve_perf_connection(conn: Connection) -> None:
    """Serve every bidirectional stream the peer opens until the connection ends."""
    tasks: set[asyncio.Task[int]] = set()

    async def one(stream: Stream) -> int:
        try:
            return await serve_perf_stream(stream)
        except QuicError:  # the stream or the connection was reset: nothing left to answer
            return 0

    try:
        while True:
            stream = await conn.accept_stream()
            task = asyncio.ensure_future(one(stream))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except QuicError:
        pass
    finally:
        for task in tasks:
            task.cancel()


async def perf_request(conn: Connection, download: int, upload: int = 0) -> PerfResult:
    """Ask for ``download`` bytes after uploading ``upload`` bytes, on a new stream.

    Waits for stream credit (``open_stream_sync``). Raises the connection's or stream's error, and
    :class:`ValueError` if the server's reply is not ``download`` bytes long.
    """
    if not 0 <= download < 1 << 64:
        raise ValueError(f"download size out of range: {download}")
    start = time.perf_counter()
    stream = await conn.open_stream_sync()
    await stream.write(_HEADER.pack(download))
    await write_zeros(stream, upload)
    await stream.close()
    received = await discard(stream)
    elapsed = time.perf_counter() - start
    if received != download:
        raise ValueError(f"perf server sent {received} bytes, expected {download}")
    return PerfResult(received, upload, elapsed)
