"""hq-interop against aioquic's HTTP/0.9 (aioquic.h0): our client from its server, its client from ours."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h0.connection import H0_ALPN, H0Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from cryptography.hazmat.primitives import serialization

import quicsilver as quic
from quicsilver.apps.hq import HQ_ALPN, hq_get
from quicsilver.apps.server import SERVED_ALPNS, serve_listener

pytestmark = pytest.mark.interop


def write_certificate(directory: Path) -> tuple[Path, Path]:
    tls = quic.TLSConfig.self_signed(alpn=[HQ_ALPN])
    assert tls.private_key is not None
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(tls.certificate_pem)
    key.write_bytes(
        tls.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


class AioquicH0Server(QuicConnectionProtocol):
    """aioquic's HTTP/0.9 server logic: serve files of ``root`` (set on the class by the fixture)."""

    root: Path

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h0 = H0Connection(self._quic)

    def quic_event_received(self, event: Any) -> None:
        for http_event in self._h0.handle_event(event):
            if isinstance(http_event, HeadersReceived):
                path = dict(http_event.headers)[b":path"].decode()
                data = (self.root / path.lstrip("/")).read_bytes()
                self._h0.send_headers(http_event.stream_id, [(b":status", b"200")])
                self._h0.send_data(http_event.stream_id, data, end_stream=True)
                self.transmit()


@pytest.fixture
async def aioquic_server(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    cert, key = write_certificate(tmp_path)
    conf = QuicConfiguration(is_client=False, alpn_protocols=H0_ALPN)
    conf.load_cert_chain(str(cert), str(key))
    protocol = type("Server", (AioquicH0Server,), {"root": root})
    server = await serve("127.0.0.1", 0, configuration=conf, create_protocol=protocol)
    try:
        yield server._transport.get_extra_info("sockname")[1], root
    finally:
        server.close()


async def test_our_client_downloads_from_aioquic(aioquic_server: tuple[int, Path]) -> None:
    port, root = aioquic_server
    files = {"a.bin": os.urandom(300_000), "b.txt": b"hello from aioquic\n"}
    for name, data in files.items():
        (root / name).write_bytes(data)
    conn = await quic.dial_addr(f"127.0.0.1:{port}", quic.TLSConfig(alpn=[HQ_ALPN], verify=False))
    async with conn:
        for name, data in files.items():
            parts: list[bytes] = []
            assert await hq_get(conn, f"/{name}", parts.append) == len(data)
            assert b"".join(parts) == data


async def test_our_cli_downloads_from_aioquic(aioquic_server: tuple[int, Path], tmp_path: Path) -> None:
    port, root = aioquic_server
    payload = os.urandom(500_000)
    (root / "c.bin").write_bytes(payload)
    out = tmp_path / "out"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quicsilver",
        "client",
        "-k",
        "-o",
        str(out),
        f"https://127.0.0.1:{port}/c.bin",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert (out / "c.bin").read_bytes() == payload


class AioquicH0Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h0 = H0Connection(self._quic)
        self._responses: dict[int, tuple[bytearray, asyncio.Future[bytes]]] = {}

    async def get(self, path: str) -> bytes:
        stream_id = self._quic.get_next_available_stream_id()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._responses[stream_id] = (bytearray(), future)
        self._h0.send_headers(stream_id, [(b":method", b"GET"), (b":path", path.encode())], end_stream=True)
        self.transmit()
        return await asyncio.wait_for(future, 30)

    def quic_event_received(self, event: Any) -> None:
        for http_event in self._h0.handle_event(event):
            if isinstance(http_event, DataReceived):
                buffer, future = self._responses[http_event.stream_id]
                buffer += http_event.data
                if http_event.stream_ended:
                    future.set_result(bytes(buffer))


async def test_aioquic_client_downloads_from_our_server(tmp_path: Path) -> None:
    files = {"x.bin": os.urandom(400_000), "y.txt": b"hello from quicsilver\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    listener = await quic.listen_addr("127.0.0.1:0", quic.TLSConfig.self_signed(alpn=list(SERVED_ALPNS)))
    task = asyncio.ensure_future(serve_listener(listener, str(tmp_path)))
    try:
        conf = QuicConfiguration(is_client=True, alpn_protocols=H0_ALPN, verify_mode=ssl.CERT_NONE)
        async with connect(
            "127.0.0.1", listener.local_addr[1], configuration=conf, create_protocol=AioquicH0Client
        ) as client:
            assert isinstance(client, AioquicH0Client)
            results = await asyncio.gather(*(client.get(f"/{name}") for name in files))
        assert results == list(files.values())
    finally:
        listener.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
