"""CPU per handshake step in the sans-IO core, client and server in one process, no sockets.

    python bench/profile_handshake.py [--count 400] [--repeat 3]

A handshake of the handshakes scenario (full handshake, ECDSA P-256 certificate, the client's
default X25519MLKEM768 + X25519 shares) is five steps that run one after the other, each on one
side: the client's first flight (ClientHello), the server's flight, the client's Finished, the
server's answer (HANDSHAKE_DONE, NEW_TOKEN, NEW_CONNECTION_IDs), the client's ACK. After each step
the side that sent does what the I/O layer does once its datagrams are out, while the peer answers:
the next handshake's ephemeral keys (``replenish_key_spares``) and the keys it needs next
(``work_ahead``). That is the line "work ahead", off the path; "on the path" is the total without it.
The two-process benchmark (``bench/run.py --scenarios handshakes``) adds the sockets, asyncio and
the application to each step; this script shows what the core alone costs per step, so a change to
the handshake path can be measured without the noise of two processes sharing two cores. It prints
the median microseconds per step over ``--repeat`` runs of ``--count`` handshakes.

Run it against the compiled build with ``PYTHONPATH=$(python bench/compiled.py)``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

from scenarios import make_certificate

from quicsilver.config import Config
from quicsilver.core.connection import QuicConnection
from quicsilver.handshake.tls import TLSConfig
from quicsilver.handshake.tls.groups import replenish_key_spares

STEPS = ("client hello", "server flight", "client finished", "server done", "client ack", "work ahead")
CLIENT_ADDR = ("10.0.0.1", 50000)
SERVER_ADDR = ("10.0.0.2", 443)


def answer(
    conn: QuicConnection, flight: list[tuple[bytes, object, int]], source: object, now: float
) -> list[tuple[bytes, object, int]]:
    """One step: ``conn`` takes the peer's datagrams, says what it sends back, drops its events."""
    for data, _, _ in flight:
        conn.receive_datagram(data, source, now)
    reply = conn.datagrams_to_send_ecn(now)
    if conn.flight_pending:  # as the I/O layer: the ServerHello's datagram first, then the rest
        conn.finish_flight(now)
        reply += conn.datagrams_to_send_ecn(now)
    while conn.next_event() is not None:
        pass
    return reply


def work_ahead(conn: QuicConnection, now: float) -> float:
    """What the I/O layer runs once a flight is out: the next handshake's ephemeral keys
    (``replenish_key_spares``) and, a loop turn after the flush, ``QuicConnection.work_ahead``."""
    t0 = time.perf_counter()
    replenish_key_spares(now)
    if conn.wants_work_ahead:
        conn.work_ahead()
    return time.perf_counter() - t0


def one_handshake(config: Config, client_tls: TLSConfig, server_tls: TLSConfig, totals: list[float]) -> None:
    clock = time.perf_counter
    now = 1000.0
    t0 = clock()
    client = QuicConnection(config, client_tls, is_client=True, server_name="localhost")
    client.connect(SERVER_ADDR, now)
    flight = client.datagrams_to_send_ecn(now)
    t1 = clock()
    ahead = work_ahead(client, now)
    t1b = clock()
    server = QuicConnection(config, server_tls, is_client=False)
    flight = answer(server, flight, CLIENT_ADDR, now)
    t2 = clock()
    ahead += work_ahead(server, now)
    t2b = clock()
    flight = answer(client, flight, SERVER_ADDR, now)
    t3 = clock()
    ahead += work_ahead(client, now)
    t3b = clock()
    flight = answer(server, flight, CLIENT_ADDR, now)
    t4 = clock()
    ahead += work_ahead(server, now)
    t4b = clock()
    answer(client, flight, SERVER_ADDR, now)
    t5 = clock()
    ahead += work_ahead(client, now)
    for i, step in enumerate((t1 - t0, t2 - t1b, t3 - t2b, t4 - t3b, t5 - t4b, ahead)):
        totals[i] += step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="handshakes per repetition")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        cert, key = make_certificate(directory)
        server_tls = TLSConfig(certfile=cert, keyfile=key, alpn=["perf"])
    client_tls = TLSConfig(alpn=["perf"], verify=False)
    config = Config()
    warm = [0.0] * len(STEPS)
    for _ in range(30):
        one_handshake(config, client_tls, server_tls, warm)
    runs: list[list[float]] = []
    for _ in range(args.repeat):
        totals = [0.0] * len(STEPS)
        for _ in range(args.count):
            one_handshake(config, client_tls, server_tls, totals)
        runs.append([t / args.count * 1e6 for t in totals])
    import quicsilver.core.connection as core_module

    build = "compiled" if str(core_module.__file__).endswith((".so", ".pyd")) else "pure"
    print(f"core CPU per handshake step, median of {args.repeat} x {args.count} ({build} build)")
    for i, step in enumerate(STEPS):
        print(f"  {step:<16} {statistics.median(run[i] for run in runs):7.0f} us")
    print(f"  {'total':<16} {statistics.median(sum(run) for run in runs):7.0f} us")
    print(f"  {'on the path':<16} {statistics.median(sum(run[:-1]) for run in runs):7.0f} us")


if __name__ == "__main__":
    main()
