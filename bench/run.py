"""One command to benchmark quicsilver against aioquic, qh3 and quic-go on this machine.

Every implementation runs the perf protocol (ALPN "perf", see bench/peers/scenarios.py) with its own
server and client in separate processes over loopback, with an ECDSA P-256 certificate generated
for the run. Scenarios: download and upload throughput, sequential handshakes (full handshake and
one small request: rate and median latency), requests/s over many small streams on one connection,
and the server's resident memory per idle connection. Each is repeated ``--reps`` times and the
median reported, next to quicsilver's ratio against each peer.

    python bench/run.py                      # everything, 3 repetitions, 100 MB transfers
    python bench/run.py --only qh3,aioquic --reps 1 --size 10000000
    python bench/run.py --uvloop --no-gso

Results go to bench/results/bench-<time>.json (and .png when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
RESULTS = os.path.join(HERE, "results")
GO_SOURCE = os.path.join(HERE, "go", "perf.go")
GOPATH = "/usr/share/gocode"
QUIC_GO_SOURCE = os.path.join(GOPATH, "src", "github.com", "lucas-clemente", "quic-go")

sys.path.insert(0, PEERS)
from scenarios import make_certificate, rss_bytes  # noqa: E402

sys.path.insert(0, HERE)
import compiled as compiled_build  # noqa: E402

# "quicsilver" is the wheel users install (hot path compiled with mypyc, bench/compiled.py);
# "quicsilver-pure" the same sources interpreted (an editable install, or no C compiler).
IMPLEMENTATIONS = ["quicsilver", "quicsilver-pure", "aioquic", "qh3", "quic-go"]
SRC = os.path.join(os.path.dirname(HERE), "src")
SCENARIOS = ["download", "upload", "handshakes", "requests", "idle"]


@dataclass(frozen=True, slots=True)
class Metric:
    scenario: str
    key: str
    label: str
    unit: str
    higher_is_better: bool


METRICS = [
    Metric("download", "mbps", "download", "MB/s", True),
    Metric("upload", "mbps", "upload", "MB/s", True),
    Metric("handshakes", "per_second", "handshakes", "/s", True),
    Metric("handshakes", "median_ms", "handshake latency (median)", "ms", False),
    Metric("requests", "per_second", "requests (small streams)", "/s", True),
    Metric("idle", "server_rss_per_conn", "server RSS per idle connection", "KiB", False),
    Metric("idle", "client_rss_per_conn", "client RSS per idle connection", "KiB", False),
]


@dataclass
class Peer:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


class Unavailable(Exception):
    """This implementation cannot run here; the message says why."""


def python_peer(script: str, *prefix: str) -> list[str]:
    return [sys.executable, os.path.join(PEERS, script), *prefix]


def quicsilver_unavailable_reason(env: dict[str, str], compiled: bool) -> str | None:
    flavour = "compiled" if compiled else "pure"
    probe = (
        "import quicsilver as q, quicsilver.core.connection as c\n"
        "missing = [n for n in ('listen_addr', 'dial_addr', 'TLSConfig') if not hasattr(q, n)]\n"
        f"if c.__file__.endswith('.py') == {compiled}:\n"
        f"    missing.append('the {flavour} build: found ' + c.__file__)\n"
        "print(', '.join(missing))\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=dict(os.environ, **env),
        )
    except subprocess.TimeoutExpired:
        return "importing quicsilver timed out"
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return f"import failed: {lines[-1] if lines else out.returncode}"
    if out.stdout.strip():
        return f"public API not there yet (missing {out.stdout.strip()})"
    return None


def build_go_peer(workdir: str) -> str:
    if shutil.which("go") is None:
        raise Unavailable("quic-go skipped: `go` not installed (apt-get install golang-go)")
    if not os.path.isdir(QUIC_GO_SOURCE):
        raise Unavailable(
            "quic-go skipped: Debian's golang-github-lucas-clemente-quic-go-dev is not installed"
        )
    binary = os.path.join(workdir, "perf-go")
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOFLAGS="-mod=mod")
    env.pop("GOFLAGS")
    env.setdefault("GOCACHE", os.path.join(tempfile.gettempdir(), "quicsilver-bench-gocache"))
    out = subprocess.run(
        ["go", "build", "-o", binary, GO_SOURCE], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        raise Unavailable(f"quic-go skipped: build failed: {out.stderr.strip().splitlines()[-1:]}")
    return binary


def make_peer(name: str, workdir: str, no_gso: bool) -> Peer:
    if name in ("quicsilver", "quicsilver-pure"):
        compiled = name == "quicsilver"
        if compiled:
            try:
                path = compiled_build.build()
            except compiled_build.BuildError as exc:
                raise Unavailable(f"quicsilver (compiled) unavailable: {exc}") from None
        else:
            path = SRC
        env = {"PYTHONPATH": path}
        if no_gso:
            env.update(QUICSILVER_DISABLE_GSO="1", QUICSILVER_DISABLE_GRO="1")
        reason = quicsilver_unavailable_reason(env, compiled)
        if reason:
            raise Unavailable(f"{name} unavailable: {reason}")
        return Peer(name, python_peer("quicsilver_peer.py"), env)
    if name in ("aioquic", "qh3"):
        return Peer(name, python_peer("aioquic_peer.py", "--lib", name))
    if name == "quic-go":
        env = {"QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING": "true"}
        if no_gso:
            env["QUIC_GO_DISABLE_GSO"] = "true"
        return Peer(name, [build_go_peer(workdir)], env)
    raise ValueError(name)


class Server:
    """A peer's server process; ``port`` once it has announced itself."""

    def __init__(self, peer: Peer, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [*peer.command, "server", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("listening "):
            self.stop()
            err = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"{peer.name} server did not start: {line.strip()} {err.strip()[-400:]}")
        self.port = int(line.split()[1])

    def rss(self) -> int:
        return int(rss_bytes(self.process.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def client_args(scenario: str, opts: argparse.Namespace) -> list[str]:
    args = [scenario]
    if scenario in ("download", "upload"):
        args += ["--size", str(opts.size)]
    elif scenario == "handshakes":
        args += ["--count", str(opts.handshakes)]
    elif scenario == "requests":
        args += ["--count", str(opts.requests), "--concurrency", str(opts.concurrency)]
    else:
        args += ["--count", str(opts.idle)]
    return args


def last_error_line(stderr: str) -> str:
    """The exception line of a traceback (the last line that is not indented or a ^ marker)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip() and not line[0].isspace()]
    lines = [line for line in lines if not set(line.strip()) <= {"^", "~"}]
    return lines[-1][:600] if lines else "(no error output)"


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise RuntimeError(f"no result in output: {text.strip()[-300:]!r}")


def run_once(peer: Peer, scenario: str, opts: argparse.Namespace, certs: tuple[str, str]) -> dict[str, Any]:
    env = dict(os.environ, **peer.env)
    common = ["--uvloop"] if opts.uvloop else []
    if opts.no_gso:
        common.append("--no-gso")
    server = Server(peer, ["--cert", certs[0], "--key", certs[1], *common], env)
    try:
        command = [*peer.command, "client", "--port", str(server.port), *client_args(scenario, opts), *common]
        if scenario != "idle":
            out = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=opts.timeout, check=False
            )
            if out.returncode != 0:
                raise RuntimeError(f"client failed ({out.returncode}): {last_error_line(out.stderr)}")
            return last_json(out.stdout)
        baseline = server.rss()
        client = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert client.stdin is not None and client.stdout is not None
        ready = client.stdout.readline()
        if not ready.startswith("{"):
            client.kill()
            _, err = client.communicate()
            raise RuntimeError(f"idle client failed: {ready.strip()} {err.strip()[-600:]}")
        result: dict[str, Any] = json.loads(ready)
        result["server_rss_per_conn"] = (server.rss() - baseline) / opts.idle
        client.stdin.write("\n")
        client.stdin.flush()
        try:
            client.communicate(timeout=opts.timeout)
        except subprocess.TimeoutExpired:
            client.kill()
            client.communicate()
        result.pop("ready", None)
        return result
    finally:
        server.stop()


def summarize(samples: list[dict[str, Any]]) -> dict[str, float]:
    keys = {k for s in samples for k, v in s.items() if isinstance(v, int | float)}
    return {k: statistics.median(s[k] for s in samples if k in s) for k in sorted(keys)}


def metric_value(results: dict[str, Any], impl: str, metric: Metric) -> float | None:
    value = results.get(impl, {}).get(metric.scenario, {}).get("median", {}).get(metric.key)
    if value is None:
        return None
    return float(value) / 1024 if metric.unit == "KiB" else float(value)


def ratio(ours: float | None, theirs: float | None, higher_is_better: bool) -> str:
    """quicsilver's advantage as a factor: > 1.00x means quicsilver is better on this figure."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return "-"
    return f"{(ours / theirs if higher_is_better else theirs / ours):.2f}x"


def format_table(results: dict[str, Any], impls: list[str]) -> str:
    peers = [i for i in impls if i != "quicsilver"]
    header = ["figure", *impls, *(f"qs vs {p}" for p in peers)]
    rows = [header]
    for metric in METRICS:
        cells = [f"{metric.label} [{metric.unit}]"]
        for impl in impls:
            v = metric_value(results, impl, metric)
            cells.append("-" if v is None else f"{v:,.1f}")
        ours = metric_value(results, "quicsilver", metric)
        for p in peers:
            cells.append(ratio(ours, metric_value(results, p, metric), metric.higher_is_better))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("ratios: quicsilver's advantage (>1.00x = quicsilver better; inverted for ms and KiB)")
    return "\n".join(lines)


def write_chart(results: dict[str, Any], impls: list[str], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    columns = (len(METRICS) + 1) // 2
    fig, grid = plt.subplots(2, columns, figsize=(3.2 * columns, 7))
    axes = list(grid.flat)
    for spare in axes[len(METRICS) :]:
        spare.set_visible(False)
    for ax, metric in zip(axes, METRICS, strict=False):
        values = [metric_value(results, i, metric) or 0.0 for i in impls]
        ax.bar(impls, values, color=["#c0392b" if i == "quicsilver" else "#7f8c8d" for i in impls])
        ax.set_title(f"{metric.label}\n[{metric.unit}]", fontsize=8)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(IMPLEMENTATIONS), help="implementations, comma separated")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="scenarios, comma separated")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (median reported)")
    parser.add_argument("--size", type=int, default=100_000_000, help="transfer size in bytes (100 MB)")
    parser.add_argument("--handshakes", type=int, default=200, help="sequential connections per repetition")
    parser.add_argument("--requests", type=int, default=10_000, help="small streams per repetition")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent small streams")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections for the memory figure")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a client is abandoned")
    parser.add_argument("--uvloop", action="store_true", help="run the Python peers under uvloop")
    parser.add_argument("--no-gso", action="store_true", help="disable GSO/GRO where the peer allows it")
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/bench-<time>.json)")
    opts = parser.parse_args(argv)
    for name, allowed in (("only", IMPLEMENTATIONS), ("scenarios", SCENARIOS)):
        chosen = [x.strip() for x in getattr(opts, name).split(",") if x.strip()]
        unknown = [x for x in chosen if x not in allowed]
        if unknown or not chosen:
            what = ", ".join(unknown) or "empty list"
            parser.error(f"--{name}: unknown {what}; choose from {', '.join(allowed)}")
        setattr(opts, name, chosen)
    if opts.reps < 1:
        parser.error("--reps must be at least 1")
    return opts


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through the finally blocks that stop the peers


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="quicsilver-bench-") as workdir:
        certs = make_certificate(workdir)
        peers: list[Peer] = []
        for name in opts.only:
            try:
                peers.append(make_peer(name, workdir, opts.no_gso))
            except Unavailable as exc:
                print(exc, flush=True)
                skipped[name] = str(exc)
        # Interleaved (scenario, repetition, implementation) so that a change in the machine's load
        # during the run weighs on every implementation alike.
        for scenario in opts.scenarios:
            for rep in range(opts.reps):
                for peer in peers:
                    entry = results.setdefault(peer.name, {}).setdefault(
                        scenario, {"samples": [], "errors": []}
                    )
                    started = time.perf_counter()
                    try:
                        sample = run_once(peer, scenario, opts, certs)
                    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
                        entry["errors"].append(str(exc))
                        print(f"{peer.name:>10} {scenario:<10} rep {rep + 1}: FAILED {exc}", flush=True)
                        continue
                    entry["samples"].append(sample)
                    shown = ", ".join(f"{k}={v:,.1f}" for k, v in sample.items() if isinstance(v, float))
                    took = time.perf_counter() - started
                    print(f"{peer.name:>10} {scenario:<10} rep {rep + 1}: {shown} ({took:.1f} s)", flush=True)
        for per_impl in results.values():
            for entry in per_impl.values():
                if entry["samples"]:
                    entry["median"] = summarize(entry["samples"])
    impls = [i for i in opts.only if i in results]
    load = (load_before, os.getloadavg()[0])
    print()
    print(format_table(results, impls))
    print(f"load average (1 min) at start {load[0]:.1f}, at end {load[1]:.1f} on {os.cpu_count()} CPUs")
    for name, reason in skipped.items():
        print(f"({name}: {reason})")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    os.makedirs(RESULTS, exist_ok=True)
    path = opts.output or os.path.join(RESULTS, f"bench-{stamp}.json")
    document = {
        "time": stamp,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": {"start": load[0], "end": load[1]},
        },
        "options": {k: v for k, v in vars(opts).items() if k != "output"},
        "skipped": skipped,
        "results": results,
        "table": format_table(results, impls),
    }
    with open(path, "w") as f:
        json.dump(document, f, indent=2)
    print(f"\nJSON: {path}")
    chart = os.path.splitext(path)[0] + ".png"
    if impls and write_chart(results, impls, chart):
        print(f"chart: {chart}")
    else:
        print("chart: skipped (matplotlib not installed)")
    failed = any(e["errors"] for r in results.values() for e in r.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
