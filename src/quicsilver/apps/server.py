"""One server for every quicsilver application: hq-interop, perf and echo, chosen by ALPN.

The TLS handshake settles the application (RFC 9001 §8.1: the server picks one of the client's
ALPN protocols); :func:`serve_connection` then hands the connection to that application.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import QuicError
from .echo import ECHO_ALPN, serve_echo_connection
from .hq import HQ_ALPN, serve_hq_connection
from .perf import PERF_ALPN, serve_perf_connection

if TYPE_CHECKING:
    from ..api_connection import Connection
    from ..listener import Listener

__all__ = ["SERVED_ALPNS", "serve_connection", "serve_listener"]

SERVED_ALPNS = (HQ_ALPN, PERF_ALPN, ECHO_ALPN)


async def serve_connection(conn: Connection, root: str) -> None:
    """Run the application the handshake negotiated on ``conn`` until the connection ends."""
    alpn = conn.connection_state().alpn
    if alpn is None:  # an early (0-RTT) connection accepted before its handshake completed
        await conn.wait_handshake()
        alpn = conn.connection_state().alpn
    if alpn == HQ_ALPN:
        await serve_hq_connection(conn, root)
    elif alpn == PERF_ALPN:
        await serve_perf_connection(conn)
    elif alpn == ECHO_ALPN:
        await serve_echo_connection(conn)
    else:  # the TLS layer only accepts our ALPNs; a different one means a configuration mistake
        conn.close(0x1, f"no application for ALPN {alpn!r}")


async def serve_listener(
    listener: Listener,
    root: str,
    *,
    on_connection: Callable[[Connection], None] | None = None,
) -> None:
    """Accept connections forever (until the listener closes), serving each in its own task."""
    tasks: set[asyncio.Task[None]] = set()
    try:
        async for conn in listener:
            if on_connection is not None:
                on_connection(conn)
            task = asyncio.ensure_future(_serve_quietly(conn, root))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()


async def _serve_quietly(conn: Connection, root: str) -> None:
    with contextlib.suppress(QuicError):
        await serve_connection(conn, root)
