# ruff: noqa: E402  (sys.path is fixed before the imports below)
"""Measure (and optionally profile) one quicsilver transfer between two processes over loopback.

The parent process is the client; it starts this script again as the server (``--role server``).
Both use the public API and the perf protocol (:mod:`quicsilver.apps.perf`) with the default
Config, so the figure is the one ``bench/run.py`` reports, without the cross-stack orchestration.

    python bench/profile_transfer.py                          # 50 MB download, MB/s only
    python bench/profile_transfer.py --direction upload --size 20000000
    python bench/profile_transfer.py --profile server --top 25  # cProfile of the sender
    python bench/profile_transfer.py --profile both --sort tottime
    python bench/profile_transfer.py --sample server           # py-spy sampling: no profiler overhead
    python bench/profile_transfer.py --handshakes 200          # handshakes/s (+ one small request)
    python bench/profile_transfer.py --repeat 3                # several transfers, median printed
    python bench/profile_transfer.py --compiled --sample client  # the mypyc-compiled wheel

Prints the load average next to each figure: on a shared machine, compare runs made under similar
load only. With ``--profile``, the CPU time of each side (user + system) is printed too: a side
using little CPU while throughput is low is waiting (a stall), not computing.
"""

from __future__ import annotations

import os
import sys

# bench/profile.py would shadow the standard library's profile module that cProfile imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse
import asyncio
import cProfile
import io
import pstats
import re
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
# --compiled: the wheel pip builds (hot path compiled with mypyc, bench/compiled.py) instead of src/.
COMPILED = "--compiled" in sys.argv
if COMPILED:
    sys.path.insert(0, HERE)
    import compiled as compiled_build

    sys.path.insert(0, compiled_build.build())
else:
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, os.path.join(HERE, "peers"))

from scenarios import make_certificate  # type: ignore[import-not-found,unused-ignore]

import quicsilver as quic
import quicsilver.core.connection  # the first connection imports it lazily: keep that out of the figures
from quicsilver.apps.perf import PERF_ALPN, perf_request, serve_perf_connection

_STAT_KEYS = (
    "datagrams_sent",
    "datagrams_received",
    "packets_lost",
    "congestion_window",
    "smoothed_rtt",
    "min_rtt",
)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _install_loop(args: argparse.Namespace) -> None:
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _profiler(clock: str) -> cProfile.Profile:
    # CPU time keeps the other processes of a loaded machine out of the figures: a syscall during
    # which we were preempted costs its own CPU time, not the wall time until we ran again.
    return cProfile.Profile(time.process_time) if clock == "cpu" else cProfile.Profile()


def _start_sampler(pid: int, out: str) -> subprocess.Popen[bytes] | None:
    """py-spy (if installed) sampling ``pid`` at 1 kHz into a raw (collapsed-stack) file."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed (pip install py-spy): no sampling", file=sys.stderr)
        return None
    command = [spy, "record", "--pid", str(pid), "--rate", "1000", "--format", "raw", "--output", out]
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches before the transfer starts
    return sampler


def _print_samples(title: str, path: str, count: int) -> None:
    """Top functions of a py-spy raw file by own and by inclusive samples (percent of all samples)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
            samples = int(count_text)
            total += samples
            own[frames[-1]] += samples
            for frame in set(frames):
                inclusive[frame] += samples
    for kind, counter in (("own", own), ("inclusive", inclusive)):
        print(f"\n## {title}, py-spy samples by {kind} time ({total} samples)\n")
        for frame, n in counter.most_common(count):
            print(f"{n / total * 100:5.1f}%  {frame}")


def _print_profile(title: str, path: str, sort: str, count: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(count)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    print(f"\n## {title}, by {sort}\n")
    print("\n".join(lines[start:]))


async def _serve(args: argparse.Namespace) -> None:
    tls = quic.TLSConfig(certfile=args.cert, keyfile=args.key, alpn=[PERF_ALPN])
    listener = await quic.listen_addr(("127.0.0.1", 0), tls, quic.Config())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"listening {listener.local_addr[1]}", flush=True)
    tasks: set[asyncio.Task[None]] = set()
    started = _cpu_seconds()  # start-up (imports, certificate, listener) is not counted

    conns = []

    async def accept() -> None:
        async for conn in listener:
            conns.append(conn)
            task = asyncio.ensure_future(serve_perf_connection(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    acceptor = asyncio.ensure_future(accept())
    await stop.wait()
    acceptor.cancel()
    listener.close()
    for conn in conns[:3]:
        stats = conn.stats()
        print("server stats:", {k: v for k, v in stats.items() if k in _STAT_KEYS}, flush=True)
    print(f"server cpu {_cpu_seconds() - started:.2f} s", flush=True)


def server_main(args: argparse.Namespace) -> None:
    profiler = _profiler(args.clock) if args.profile_out else None
    if profiler is not None:
        profiler.enable()
    _install_loop(args)
    asyncio.run(_serve(args))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile_out)


async def _client(args: argparse.Namespace, port: int) -> list[float]:
    tls = quic.TLSConfig(alpn=[PERF_ALPN], verify=False)
    config = quic.Config()
    addr = ("127.0.0.1", port)
    figures: list[float] = []
    if args.handshakes:
        latencies = []
        start = time.perf_counter()
        for _ in range(args.handshakes):
            begin = time.perf_counter()
            conn = await quic.dial_addr(addr, tls, config)
            async with conn:
                await perf_request(conn, 16, 0)
            latencies.append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - start
        rate = args.handshakes / elapsed
        print(
            f"handshakes {args.handshakes}: {rate:.1f}/s, median {statistics.median(latencies) * 1e3:.1f} ms"
            f"  (load {_load()})",
            flush=True,
        )
        return [rate]
    conn = await quic.dial_addr(addr, tls, config)
    async with conn:
        for _ in range(args.repeat):
            download, upload = (args.size, 0) if args.direction == "download" else (0, args.size)
            result = await perf_request(conn, download, upload)
            mbps = args.size / result.seconds / 1e6
            figures.append(mbps)
            print(
                f"{args.direction} {args.size / 1e6:.0f} MB: {mbps:.2f} MB/s in {result.seconds:.2f} s"
                f"  (load {_load()})",
                flush=True,
            )
        stats = conn.stats()
        print("client stats:", {k: v for k, v in stats.items() if k in _STAT_KEYS})
    return figures


def client_main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="quicsilver-transfer-") as work:
        cert, key = make_certificate(work)
        server_prof = os.path.join(work, "server.prof")
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--role",
            "server",
            "--cert",
            cert,
            "--key",
            key,
        ]
        if args.compiled:
            command.append("--compiled")
        if args.profile in ("server", "both"):
            command += ["--profile-out", server_prof, "--clock", args.clock]
        if args.uvloop:
            command.append("--uvloop")
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
            assert server.stdout is not None
            port = int(server.stdout.readline().split()[1])
            profiler = _profiler(args.clock) if args.profile in ("client", "both") else None
            samples = os.path.join(work, "samples.txt")
            sampled = {"server": server.pid, "client": os.getpid()}.get(args.sample)
            sampler = _start_sampler(sampled, samples) if sampled is not None else None
            cpu_before = _cpu_seconds()
            if profiler is not None:
                profiler.enable()
            try:
                _install_loop(args)
                figures = asyncio.run(_client(args, port))
            finally:
                if profiler is not None:
                    profiler.disable()
                if sampler is not None:
                    sampler.send_signal(signal.SIGINT)  # py-spy writes its file on the way out
                    sampler.wait(60)
                server.send_signal(signal.SIGTERM)
                server_tail = server.stdout.read()
                server.wait(60)
        client_cpu = _cpu_seconds() - cpu_before
        print(f"client cpu {client_cpu:.2f} s; {server_tail.strip()}")
        server_cpu = float(server_tail.split()[-2]) if "server cpu" in server_tail else 0.0
        if args.handshakes:
            print(
                f"cpu per handshake: client {client_cpu / args.handshakes * 1e3:.2f} ms,"
                f" server {server_cpu / args.handshakes * 1e3:.2f} ms"
            )
        else:
            megabytes = args.size * args.repeat / 1e6
            print(
                f"cpu per MB: client {client_cpu / megabytes * 1e3:.1f} ms,"
                f" server {server_cpu / megabytes * 1e3:.1f} ms"
            )
        if len(figures) > 1:
            print(f"median {statistics.median(figures):.2f}")
        if profiler is not None:
            client_prof = os.path.join(work, "client.prof")
            profiler.dump_stats(client_prof)
            _print_profile("client", client_prof, args.sort, args.top)
        if os.path.exists(server_prof):
            _print_profile("server", server_prof, args.sort, args.top)
        if os.path.exists(samples):
            _print_samples(args.sample, samples, args.top)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--direction", choices=["download", "upload"], default="download")
    parser.add_argument("--size", type=int, default=50_000_000, help="bytes per transfer (default 50 MB)")
    parser.add_argument("--repeat", type=int, default=1, help="transfers on the connection (default 1)")
    parser.add_argument("--handshakes", type=int, default=0, help="measure N sequential handshakes instead")
    parser.add_argument("--uvloop", action="store_true", help="run both sides on uvloop")
    parser.add_argument(
        "--compiled", action="store_true", help="the compiled wheel (bench/compiled.py) instead of src/"
    )
    parser.add_argument("--profile", choices=["none", "server", "client", "both"], default="none")
    parser.add_argument(
        "--sample", choices=["server", "client"], help="sample one side with py-spy (no profiler overhead)"
    )
    parser.add_argument("--sort", choices=["cumulative", "tottime"], default="tottime")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu", help="profile CPU time (default) or wall time"
    )
    parser.add_argument("--role", choices=["client", "server"], default="client", help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        server_main(args)
        return 0
    return client_main(args)


if __name__ == "__main__":
    sys.exit(main())
