"""Shared by the tests against aioquic-API peers (aioquic and qh3): a session ticket store for their
servers, an echo over one of their client streams, and our echo server for their clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import quicsilver as quic


class PeerTicketStore:
    def __init__(self) -> None:
        self.tickets: dict[bytes, Any] = {}

    def add(self, ticket: Any) -> None:
        self.tickets[ticket.ticket] = ticket

    def pop(self, label: bytes) -> Any | None:
        return self.tickets.pop(label, None)


async def stream_echo(client: Any, payload: bytes) -> bytes:
    """``payload`` sent on a new stream of an aioquic-API client, the stream read to its end."""
    reader, writer = await client.create_stream()
    writer.write(payload)
    writer.write_eof()
    return await reader.read()


@contextlib.asynccontextmanager
async def our_echo_server(
    tls: quic.TLSConfig, config: quic.Config | None = None, *, early: bool = False, **options: Any
) -> AsyncIterator[tuple[quic.Listener, list[quic.Connection]]]:
    """Our echo server on a free loopback port (``options`` go to ``listen_addr``); yields the
    listener and the connections it accepted."""
    listen = quic.listen_addr_early if early else quic.listen_addr
    listener = await listen("127.0.0.1:0", tls, config, **options)
    accepted: list[quic.Connection] = []
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Any) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def echo(stream: quic.Stream) -> None:
        with contextlib.suppress(quic.QuicError):
            async for chunk in stream:
                await stream.write(chunk)
            await stream.close()

    async def serve_conn(conn: quic.Connection) -> None:
        with contextlib.suppress(quic.QuicError):
            while True:
                spawn(echo(await conn.accept_stream()))

    async def accept_loop() -> None:
        async for conn in listener:
            accepted.append(conn)
            spawn(serve_conn(conn))

    loop_task = asyncio.create_task(accept_loop())
    try:
        yield listener, accepted
    finally:
        listener.close()
        await asyncio.wait_for(loop_task, 5)
        for task in list(tasks):
            task.cancel()
