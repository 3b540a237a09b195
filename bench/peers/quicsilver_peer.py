"""Perf-protocol server and client on quicsilver's public API (bench peer).

Uses the same perf implementation as ``quicsilver perf`` (:mod:`quicsilver.apps.perf`), with
quicsilver's default Config. ``--no-gso`` is applied by the orchestrator through the
``QUICSILVER_DISABLE_GSO`` / ``QUICSILVER_DISABLE_GRO`` environment variables.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from scenarios import ALPN, announce_listening, install_loop, peer_arguments, run_client

import quicsilver as quic
from quicsilver.apps.perf import perf_request, serve_perf_connection


class _Client:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def request(self, download: int, upload: int) -> int:
        result = await perf_request(self.conn, download, upload)
        return result.downloaded


async def serve(args: argparse.Namespace) -> None:
    tls = quic.TLSConfig(certfile=args.cert, keyfile=args.key, alpn=[ALPN])
    listener = await quic.listen_addr((args.host, args.port), tls, quic.Config())
    announce_listening(listener.local_addr[1])
    tasks: set[asyncio.Task[None]] = set()
    async for conn in listener:
        task = asyncio.ensure_future(serve_perf_connection(conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def client(args: argparse.Namespace) -> None:
    tls = quic.TLSConfig(alpn=[ALPN], verify=False)
    config = quic.Config()

    @asynccontextmanager
    async def dial() -> AsyncIterator[_Client]:
        conn = await quic.dial_addr((args.host, args.port), tls, config)
        async with conn:
            yield _Client(conn)

    await run_client(args, dial)


def main() -> None:
    args = peer_arguments("perf peer on quicsilver").parse_args()
    install_loop(args)
    asyncio.run(serve(args) if args.role == "server" else client(args))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
