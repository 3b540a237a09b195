"""Echo over QUIC, ALPN ``echo``: every byte received on a bidirectional stream is sent back.

The server writes back what it reads, as it reads it, and ends its side when the client does (FIN).
Datagrams (RFC 9221), when the connection negotiated them, are echoed too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..errors import QuicError

if TYPE_CHECKING:
    from ..api_connection import Connection
    from ..stream import Stream

__all__ = ["ECHO_ALPN", "echo", "serve_echo_connection", "serve_echo_stream"]

ECHO_ALPN = "echo"
_CHUNK = 64 * 1024


async def serve_echo_stream(stream: Stream) -> int:
    """Echo one stream until its FIN; returns the bytes echoed."""
    total = 0
    while chunk := await stream.read(_CHUNK):
        await stream.write(chunk)
        total += len(chunk)
    await stream.close()
    return total


async def serve_echo_connection(conn: Connection) -> None:
    """Echo every stream (and datagram) of ``conn`` until the connection ends."""
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def one(stream: Stream) -> None:
        with contextlib.suppress(QuicError):
            await serve_echo_stream(stream)

    async def datagrams() -> None:
        try:
            while True:
                conn.send_datagram(await conn.receive_datagram())
        except QuicError:
            pass

    state = conn.connection_state()
    if getattr(state, "supports_datagrams", False) or state.extra.get("supports_datagrams"):
        spawn(datagrams())
    try:
        while True:
            spawn(one(await conn.accept_stream()))
    except QuicError:
        pass
    finally:
        for task in tasks:
            task.cancel()


async def echo(conn: Connection, data: bytes) -> bytes:
    """Send ``data`` on a new stream and return what comes back (writes and reads concurrently)."""
    stream = await conn.open_stream_sync()

    async def send() -> None:
        await stream.write(data)
        await stream.close()

    sender = asyncio.ensure_future(send())
    parts: list[bytes] = []
    try:
        while chunk := await stream.read(_CHUNK):
            parts.append(chunk)
        await sender
    finally:
        sender.cancel()
    return b"".join(parts)
