"""Profile quicsilver's perf peers with cProfile: where the time of one scenario goes.

Runs bench/peers/quicsilver_peer.py's server and client, each under cProfile, for one scenario
(default: a 20 MB download) and prints the top functions of each side by cumulative and by own
time. The figures feed bench/PROFILE.md.

    python bench/profile.py                       # download, 20 MB
    python bench/profile.py --scenario upload --size 10000000 --top 25
    python bench/profile.py --scenario handshakes --count 100
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peers", "quicsilver_peer.py")
sys.path.insert(0, os.path.join(HERE, "peers"))
from scenarios import make_certificate  # noqa: E402


def top(path: str, sort: str, count: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(count)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[start:])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario", default="download", choices=["download", "upload", "handshakes", "requests"]
    )
    parser.add_argument("--size", type=int, default=20_000_000)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--top", type=int, default=20)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quicsilver-profile-") as work:
        cert, key = make_certificate(work)
        server_prof, client_prof = os.path.join(work, "server.prof"), os.path.join(work, "client.prof")
        profile = [sys.executable, "-m", "cProfile", "-o"]
        with subprocess.Popen(
            [*profile, server_prof, PEER, "server", "--cert", cert, "--key", key],
            stdout=subprocess.PIPE,
            text=True,
        ) as server:
            try:
                assert server.stdout is not None
                port = server.stdout.readline().split()[1]
                args = [opts.scenario, "--size", str(opts.size), "--count", str(opts.count)]
                client = subprocess.run(
                    [*profile, client_prof, PEER, "client", "--port", port, *args],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                print(client.stdout.strip() or client.stderr.strip()[-500:])
            finally:
                server.send_signal(2)  # KeyboardInterrupt: cProfile writes its file on the way out
                server.wait(30)
        for side, path in (("client", client_prof), ("server", server_prof)):
            if not os.path.exists(path):
                print(f"\n## {side}: no profile written")
                continue
            for sort in ("cumulative", "tottime"):
                print(f"\n## {side}, by {sort}\n")
                print(top(path, sort, opts.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
