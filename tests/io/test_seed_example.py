"""The seed example (examples/seed_server.py + seed_client.py) runs and echoes over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

import quicsilver as quic

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_seed_server_echoes_for_seed_client() -> None:
    server, client = load("seed_server"), load("seed_client")
    assert server.ADDR == "127.0.0.1:9000"
    config = server.QUIC_CONFIG
    assert (config.initial_stream_receive_window, config.max_stream_receive_window) == (1 << 20, 6 << 20)
    assert (config.initial_connection_receive_window, config.max_connection_receive_window) == (
        2 << 20,
        12 << 20,
    )
    assert server.generate_tls_config().alpn == ("TEST",)
    addr = f"127.0.0.1:{free_udp_port()}"
    task = asyncio.create_task(server.main(addr))
    try:
        async with asyncio.timeout(10):
            await asyncio.sleep(0.1)
            assert await client.main(addr, b"hello seed") == b"hello seed"
            big = bytes(range(256)) * 4096  # 1 MiB through the raised windows
            assert await client.main(addr, big) == big
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, quic.QuicError):
            await task
