"""The seed program: a QUIC echo server on 127.0.0.1:9000, ported from the quic-go article.

quic-go's version calls ``quic.ListenAddr`` with a self-signed TLS config (ALPN "TEST") and a Config
raising the flow-control windows, accepts connections in a loop, and runs a goroutine per connection
that accepts streams and echoes each one back (``io.Copy(stream, stream)``). Here: one asyncio task
per connection and per stream.

Run it, then ``python examples/seed_client.py`` (or any QUIC client with ALPN "TEST").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import quicsilver as quic

ADDR = "127.0.0.1:9000"

logger = logging.getLogger("seed_server")


def generate_tls_config() -> quic.TLSConfig:
    """A key and self-signed certificate made in memory, offering ALPN "TEST" (generateTLSConfig)."""
    return quic.TLSConfig.self_signed(alpn=["TEST"])


QUIC_CONFIG = quic.Config(
    initial_stream_receive_window=1 << 20,  # 1 MB
    max_stream_receive_window=6 << 20,  # 6 MB
    initial_connection_receive_window=2 << 20,  # 2 MB
    max_connection_receive_window=12 << 20,  # 12 MB
)


async def handle_stream(stream: quic.Stream) -> None:
    """Echo everything back, then send the FIN when the client sent its own."""
    try:
        async for chunk in stream:
            await stream.write(chunk)
        await stream.close()
    except quic.QuicError as exc:
        logger.info("stream %d ended: %s", stream.stream_id, exc)


async def handle_connection(conn: quic.Connection) -> None:
    logger.info("new connection from %s", conn.remote_addr)
    tasks: set[asyncio.Task[None]] = set()
    try:
        while True:
            stream = await conn.accept_stream()
            task = asyncio.create_task(handle_stream(stream))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except quic.QuicError as exc:
        logger.info("connection from %s ended: %s", conn.remote_addr, exc)


async def main(addr: str = ADDR) -> None:
    listener = await quic.listen_addr(addr, generate_tls_config(), QUIC_CONFIG)
    logger.info("listening on %s", addr)
    connections: set[asyncio.Task[None]] = set()
    async with listener:
        async for conn in listener:
            task = asyncio.create_task(handle_connection(conn))
            connections.add(task)
            task.add_done_callback(connections.discard)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default=ADDR, help=f"address to listen on (default {ADDR})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.addr))
