"""Where a quicsilver server's memory per idle connection goes (tracemalloc), for bench/PROFILE.md.

Serves the perf protocol in this process with tracemalloc on, lets the quicsilver bench client open
``--count`` idle connections from another process, then prints the allocation sites that grew the
most between the snapshot before and the one with every connection established, per connection.

    python bench/memory.py --count 300 --top 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peers", "quicsilver_peer.py")
sys.path.insert(0, os.path.join(HERE, "peers"))
from scenarios import make_certificate, rss_bytes  # noqa: E402

import quicsilver as quic  # noqa: E402
from quicsilver.apps.perf import PERF_ALPN, serve_perf_connection  # noqa: E402


async def measure(count: int, top: int, frames: int) -> None:
    with tempfile.TemporaryDirectory(prefix="quicsilver-memory-") as work:
        cert, key = make_certificate(work)
        tls = quic.TLSConfig(certfile=cert, keyfile=key, alpn=[PERF_ALPN])
        listener = await quic.listen_addr("127.0.0.1:0", tls, quic.Config())
        tasks: set[asyncio.Task[None]] = set()

        async def accept() -> None:
            async for conn in listener:
                task = asyncio.ensure_future(serve_perf_connection(conn))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        acceptor = asyncio.ensure_future(accept())
        tracemalloc.start(frames)
        before = tracemalloc.take_snapshot()
        rss_before = rss_bytes()
        port = str(listener.local_addr[1])
        client = await asyncio.create_subprocess_exec(
            sys.executable, PEER, "client", "--port", port, "idle", "--count", str(count),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert client.stdout is not None and client.stdin is not None
        ready = await client.stdout.readline()
        after = tracemalloc.take_snapshot()
        rss_after = rss_bytes()
        traced = sum(s.size_diff for s in after.compare_to(before, "filename"))
        print(ready.decode().strip())
        print(f"server RSS growth per connection: {(rss_after - rss_before) / count / 1024:.1f} KiB")
        print(f"traced Python allocations per connection: {traced / count / 1024:.1f} KiB\n")
        for stat in after.compare_to(before, "traceback")[:top]:
            frame = stat.traceback[0]
            where = f"{os.path.relpath(frame.filename, os.path.dirname(quic.__file__))}:{frame.lineno}"
            print(f"{stat.size_diff / count:9.0f} B/conn {stat.count_diff / count:6.1f} blocks/conn  {where}")
        client.stdin.write(b"\n")
        await client.stdin.drain()
        await client.wait()
        listener.close()
        acceptor.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--frames", type=int, default=1, help="traceback depth per allocation site")
    opts = parser.parse_args()
    asyncio.run(measure(opts.count, opts.top, opts.frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
