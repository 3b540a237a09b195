# ruff: noqa: E402  (sys.path is fixed before the imports below)
"""The receiving side's CPU per MB, in one process, without sockets or asyncio.

Two sans-IO cores (``QuicConnection``) on a virtual clock: the client writes ``--size`` bytes on one
stream, the server receives them in batches of up to 64 datagrams (as the Transport hands them over),
reads the stream after each batch and sends its ACKs back. Only the server's calls are timed
(``time.process_time``): receive, events, stream reads and its ACK datagrams — the per-datagram cost
of the receive path in the core, free of the scheduling noise of two processes on a loaded machine.

    python bench/profile_receive.py                      # 50 MB, CPU ms per MB of the receiver
    python bench/profile_receive.py --repeat 5           # median of five runs
    python bench/profile_receive.py --profile --top 30   # cProfile of the receiver's calls only
"""

from __future__ import annotations

import os
import sys

# bench/profile.py would shadow the standard library's profile module that cProfile imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse
import cProfile
import io
import pstats
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from quicsilver.config import Config
from quicsilver.core.connection import QuicConnection
from quicsilver.core.events import StreamReadable
from quicsilver.handshake.tls import TLSConfig

CLIENT = ("127.0.0.1", 50000)
SERVER = ("127.0.0.1", 4433)
BATCH = 64  # datagrams per receive batch, as PacketConn.read_batch hands them over
TICK = 0.0005  # virtual seconds per round


def _run(size: int, server_tls: TLSConfig, profiler: cProfile.Profile | None) -> tuple[float, int]:
    """One transfer; returns (receiver CPU seconds, datagrams received by the server)."""
    client = QuicConnection(
        Config(), TLSConfig(alpn=["perf"], verify=False), is_client=True, server_name="localhost"
    )
    server = QuicConnection(Config(), server_tls, is_client=False)
    now = 0.0
    client.connect(SERVER, now)
    chunk = bytes(65536)
    stream_id: int | None = None
    written = 0
    received = 0
    datagrams = 0
    cpu = 0.0
    clock = time.process_time
    while received < size:
        if stream_id is None and client.can_open_stream(True) and client.stats()["handshake_confirmed"]:
            stream_id = client.open_stream()
        if stream_id is not None and written < size:
            while written < size:
                accepted = client.stream_write(
                    stream_id, memoryview(chunk)[: min(len(chunk), size - written)]
                )
                if not accepted:
                    break
                written += accepted
            if written >= size:
                client.stream_close(stream_id)
        outgoing = client.datagrams_to_send_ecn(now)
        while client.next_event() is not None:
            pass
        begin = clock()
        if profiler is not None:
            profiler.enable()
        for start in range(0, max(len(outgoing), 1), BATCH):
            for data, _, ecn in outgoing[start : start + BATCH]:
                server.receive_datagram(data, CLIENT, now, ecn)
            datagrams += len(outgoing[start : start + BATCH])
            while (event := server.next_event()) is not None:
                if isinstance(event, StreamReadable):
                    while data := server.stream_read(event.stream_id, 65536):
                        received += len(data)
            replies = server.datagrams_to_send_ecn(now)
        timer = server.get_timer()
        if timer is not None and timer <= now:
            server.handle_timer(now)
            replies += server.datagrams_to_send_ecn(now)
        if profiler is not None:
            profiler.disable()
        cpu += clock() - begin
        # The replies arrive a tick later: a zero RTT gives no RTT sample at all (RFC 9002 §5.1 samples
        # are positive), and the pacer would run at its initial-RTT rate forever.
        now += TICK
        for data, _, ecn in replies:
            client.receive_datagram(data, SERVER, now, ecn)
        timer = client.get_timer()
        if timer is not None and timer <= now:
            client.handle_timer(now)
        if now > 600:
            raise RuntimeError("the transfer did not finish")
    return cpu, datagrams


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=50_000_000, help="bytes per transfer (default 50 MB)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile the receiver's calls")
    parser.add_argument("--sort", choices=["cumulative", "tottime"], default="tottime")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    server_tls = TLSConfig.self_signed(alpn=["perf"])
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    figures = []
    for _ in range(args.repeat):
        cpu, datagrams = _run(args.size, server_tls, profiler)
        ms_per_mb = cpu / (args.size / 1e6) * 1e3
        figures.append(ms_per_mb)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"receiver: {ms_per_mb:.1f} ms CPU per MB, {cpu / datagrams * 1e6:.1f} us per datagram"
            f" ({datagrams} datagrams, {args.size / 1e6:.0f} MB)  (load {load})",
            flush=True,
        )
    if len(figures) > 1:
        print(f"median {statistics.median(figures):.1f} ms per MB")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(args.sort).print_stats(args.top)
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        print("\n".join(lines[start:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
