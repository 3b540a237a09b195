"""Memory of the sans-IO core per established server connection (tracemalloc), for bench/PROFILE.md.

Runs ``--count`` handshakes in the simulated network of the test suite (``tests/core/sim.py``), keeps
only the server side of each, and prints the traced Python allocations per connection and the sites
that hold them. No sockets, no asyncio: what the core alone costs.

    python bench/memory_core.py --count 200 --top 25
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tests.core.sim import Sim  # noqa: E402


def established(seed: int) -> Sim:
    sim = Sim(seed=seed)
    sim.run_until(lambda: sim.server._handshake_confirmed and sim.client._handshake_confirmed, max_time=5)
    sim.run_until(lambda: False, max_time=0.3)  # let ACKs, tickets and MTU probes settle
    return sim


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for seed in range(3):
        established(seed)  # imports and caches warm
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    servers = [established(seed).server for seed in range(args.count)]
    gc.collect()
    after = tracemalloc.take_snapshot()
    stats = after.compare_to(before, "lineno")
    per_conn = sum(s.size_diff for s in stats) / args.count
    print(f"{len(servers)} server connections: {per_conn / 1024:.1f} KiB each")
    for stat in stats[: args.top]:
        frame = stat.traceback[0]
        where = os.path.relpath(frame.filename, ROOT)
        size, blocks = stat.size_diff / args.count, stat.count_diff / args.count
        print(f"{size:8.0f} B/conn {blocks:6.1f} blocks/conn  {where}:{frame.lineno}")


if __name__ == "__main__":
    main()
