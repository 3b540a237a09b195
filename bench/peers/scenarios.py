"""The perf-protocol benchmark scenarios, shared by every Python peer.

The perf protocol (ALPN ``perf``): on a new bidirectional stream the client sends the response size
N as an 8-byte big-endian integer, then uploads any number of bytes and closes its side (FIN); the
server, once it has seen the FIN, replies with N bytes and closes its side.

A peer script supplies a :class:`PerfClient` (dial + request) and a server; this module turns them
into the five measured scenarios and prints one JSON object per run on stdout:

``download`` / ``upload``  one connection, one stream, ``--size`` bytes -> ``mbps``;
``handshakes``             ``--count`` sequential connections, each a full handshake and one small
                           request -> ``per_second`` and ``median_ms``;
``requests``               one connection, ``--count`` streams of ``--small`` bytes, ``--concurrency``
                           at a time -> ``per_second``;
``idle``                   ``--count`` connections left open; prints ``ready`` with the client's RSS,
                           then waits for a line on stdin before closing them (the orchestrator reads
                           the server's RSS meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import struct
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

HEADER = struct.Struct("!Q")
CHUNK = 64 * 1024
ZEROS = bytes(CHUNK)
ALPN = "perf"


class PerfConnection(Protocol):
    async def request(self, download: int, upload: int) -> int:
        """Run one perf request; returns the number of bytes received."""
        ...


Dialer = Callable[[], AbstractAsyncContextManager[PerfConnection]]


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def make_certificate(directory: str) -> tuple[str, str]:
    """Write an ECDSA P-256 self-signed certificate for "localhost"; returns (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile = os.path.join(directory, "cert.pem")
    keyfile = os.path.join(directory, "key.pem")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return certfile, keyfile


def peer_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=0)
    server.add_argument("--cert", required=True)
    server.add_argument("--key", required=True)
    client = sub.add_parser("client")
    client.add_argument("--host", default="127.0.0.1")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("scenario", choices=["download", "upload", "handshakes", "requests", "idle"])
    client.add_argument("--size", type=int, default=100_000_000)
    client.add_argument("--count", type=int, default=200)
    client.add_argument("--concurrency", type=int, default=100)
    client.add_argument("--small", type=int, default=100, help="response size of a small request")
    for p in (server, client):
        p.add_argument("--uvloop", action="store_true")
        p.add_argument("--no-gso", action="store_true")
    return parser


def install_loop(args: argparse.Namespace) -> None:
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def announce_listening(port: int) -> None:
    """The orchestrator waits for this line before starting the client."""
    print(f"listening {port}", flush=True)


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


async def _transfer(dial: Dialer, download: int, upload: int) -> dict[str, Any]:
    async with dial() as conn:
        start = time.perf_counter()
        received = await conn.request(download, upload)
        elapsed = time.perf_counter() - start
    if received != download:
        raise RuntimeError(f"received {received} bytes, expected {download}")
    moved = download + upload
    return {"bytes": moved, "seconds": elapsed, "mbps": moved / elapsed / 1e6}


async def _handshakes(dial: Dialer, count: int, small: int) -> dict[str, Any]:
    """Sequential connections. Closing runs in the background: a closed connection's draining
    period (RFC 9000 §10.2) is a timer, not work, and would otherwise dominate the figure."""
    latencies: list[float] = []
    closing: list[asyncio.Task[Any]] = []
    start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        ctx = dial()
        conn = await ctx.__aenter__()
        received = await conn.request(small, 0)
        latencies.append(time.perf_counter() - t0)
        closing.append(asyncio.ensure_future(ctx.__aexit__(None, None, None)))
        if received != small:
            raise RuntimeError(f"received {received} bytes, expected {small}")
    elapsed = time.perf_counter() - start
    await asyncio.gather(*closing)
    return {
        "count": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "median_ms": statistics.median(latencies) * 1e3,
    }


async def _requests(dial: Dialer, count: int, concurrency: int, small: int) -> dict[str, Any]:
    async with dial() as conn:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                received = await conn.request(small, 0)
                if received != small:
                    raise RuntimeError(f"received {received} bytes, expected {small}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"count": count, "seconds": elapsed, "per_second": count / elapsed}


async def _idle(dial: Dialer, count: int) -> dict[str, Any]:
    before = rss_bytes()
    contexts: list[AbstractAsyncContextManager[PerfConnection]] = []
    conns: list[PerfConnection] = []
    sem = asyncio.Semaphore(16)

    async def open_one() -> None:
        async with sem:
            ctx = dial()
            conns.append(await ctx.__aenter__())
            contexts.append(ctx)

    await asyncio.gather(*(open_one() for _ in range(count)))
    await asyncio.sleep(0.5)  # let the last handshakes settle (HANDSHAKE_DONE, tickets, ACKs)
    client_per_conn = (rss_bytes() - before) / count
    emit({"ready": True, "count": count, "client_rss_per_conn": client_per_conn})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(ctx.__aexit__(None, None, None) for ctx in contexts))
    return {"count": count, "client_rss_per_conn": client_per_conn}


async def run_client(args: argparse.Namespace, dial: Dialer) -> None:
    if args.scenario == "download":
        result = await _transfer(dial, args.size, 0)
    elif args.scenario == "upload":
        result = await _transfer(dial, 0, args.size)
    elif args.scenario == "handshakes":
        result = await _handshakes(dial, args.count, args.small)
    elif args.scenario == "requests":
        result = await _requests(dial, args.count, args.concurrency, args.small)
    else:
        result = await _idle(dial, args.count)
    emit(result)
