"""Applications on the public API: hq-interop request handling, the ticket file, perf and echo."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quicsilver as quic
from quicsilver.apps.echo import ECHO_ALPN, echo
from quicsilver.apps.hq import (
    HQ_ALPN,
    HQ_ERROR_BAD_REQUEST,
    HQ_ERROR_NOT_FOUND,
    MAX_REQUEST_SIZE,
    HqRequestError,
    encode_request,
    hq_get,
    parse_request,
    resolve_path,
    serve_hq_stream,
)
from quicsilver.apps.perf import PERF_ALPN, perf_request
from quicsilver.apps.server import SERVED_ALPNS, serve_listener
from quicsilver.apps.tickets import FileSessionTicketStore
from quicsilver.handshake.protection import CipherSuite
from quicsilver.handshake.tls import SessionTicket

# --- hq-interop requests are hostile input ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"GET /index.html\r\n", "/index.html"),
        (b"GET /a/b.txt\n", "/a/b.txt"),
        (b"GET /with%20space", "/with space"),
        (b"GET /q?x=1\r\n", "/q"),
    ],
)
def test_parse_request(raw: bytes, path: str) -> None:
    assert parse_request(raw) == path


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"POST /x\r\n",
        b"GET x\r\n",
        b"GET /a b\r\n",
        b"GET /\xff\r\n",
        b"GET /%00\r\n",
        b"GET /a\x01\r\n",
    ],
)
def test_parse_request_rejects(raw: bytes) -> None:
    with pytest.raises(HqRequestError) as info:
        parse_request(raw)
    assert info.value.code == HQ_ERROR_BAD_REQUEST


def test_parse_request_is_bounded() -> None:
    with pytest.raises(HqRequestError):
        parse_request(b"GET /" + b"a" * MAX_REQUEST_SIZE + b"\r\n")


def test_encode_request() -> None:
    assert encode_request("/x.bin") == b"GET /x.bin\r\n"
    with pytest.raises(ValueError):
        encode_request("relative")


def test_resolve_path_refuses_traversal(tmp_path: Path) -> None:
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f.txt").write_text("ok")
    (tmp_path / "secret.txt").write_text("no")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    assert resolve_path(str(root), "/sub/f.txt") == str((root / "sub" / "f.txt").resolve())
    for path in ("/../secret.txt", "/sub/../../secret.txt", "/link", "/sub", "/missing", "/..\\secret.txt"):
        with pytest.raises(HqRequestError) as info:
            resolve_path(str(root), path)
        assert info.value.code == HQ_ERROR_NOT_FOUND
    # an encoded ".." decodes to a traversal and is refused as well
    with pytest.raises(HqRequestError):
        resolve_path(str(root), parse_request(b"GET /%2e%2e/secret.txt\r\n"))


class FakeStream:
    """Just enough of quicsilver.Stream for serve_hq_stream."""

    def __init__(self, request: bytes) -> None:
        self._incoming = [request[i : i + 3] for i in range(0, len(request), 3)]
        self.sent = bytearray()
        self.closed = False
        self.reset_code: int | None = None

    async def read(self, n: int = -1) -> bytes:
        if not self._incoming:
            return b""
        chunk = self._incoming.pop(0)
        return chunk[:n] if n >= 0 else chunk

    async def write(self, data: bytes) -> None:
        self.sent += data

    async def close(self) -> None:
        self.closed = True

    def cancel_write(self, code: int = 0) -> None:
        self.reset_code = code


async def test_serve_hq_stream_sends_the_file(tmp_path: Path) -> None:
    payload = os.urandom(200_000)
    (tmp_path / "f.bin").write_bytes(payload)
    stream = FakeStream(b"GET /f.bin\r\n")
    assert await serve_hq_stream(stream, str(tmp_path)) == len(payload)  # type: ignore[arg-type]
    assert bytes(stream.sent) == payload
    assert stream.closed and stream.reset_code is None


@pytest.mark.parametrize(
    ("request_line", "code"),
    [
        (b"GET /../etc/passwd\r\n", HQ_ERROR_NOT_FOUND),
        (b"GET /nothing\r\n", HQ_ERROR_NOT_FOUND),
        (b"DELETE /f.bin\r\n", HQ_ERROR_BAD_REQUEST),
        (b"GET /" + b"x" * (MAX_REQUEST_SIZE + 10), HQ_ERROR_BAD_REQUEST),
    ],
)
async def test_serve_hq_stream_resets_bad_requests(tmp_path: Path, request_line: bytes, code: int) -> None:
    (tmp_path / "f.bin").write_bytes(b"data")
    stream = FakeStream(request_line)
    assert await serve_hq_stream(stream, str(tmp_path)) == 0  # type: ignore[arg-type]
    assert stream.reset_code == code
    assert not stream.sent and not stream.closed


# --- the ticket file ----------------------------------------------------------------------------


def _ticket(received_at: float, lifetime: int = 3600) -> SessionTicket:
    return SessionTicket(
        ticket=b"\x01" * 32,
        resumption_secret=b"\x02" * 32,
        suite=CipherSuite.AES_128_GCM_SHA256,
        alpn="hq-interop",
        server_name="example.com",
        age_add=12345,
        lifetime=lifetime,
        max_early_data=0xFFFFFFFF,
        received_at=received_at,
        transport_parameters=b"\x03\x04",
    )


def test_ticket_file_round_trip_and_single_use(tmp_path: Path) -> None:
    clock = [1000.0]
    store = FileSessionTicketStore(tmp_path / "t.json", clock=lambda: clock[0])
    store.put("example.com", _ticket(received_at=990.0))
    # a new process: another monotonic clock; the ticket keeps its age (10 s at saving)
    reloaded = FileSessionTicketStore(tmp_path / "t.json", clock=lambda: 50.0)
    ticket = reloaded.pop("example.com", now=50.0)
    assert ticket is not None
    assert ticket.ticket == b"\x01" * 32 and ticket.suite == CipherSuite.AES_128_GCM_SHA256
    assert ticket.transport_parameters == b"\x03\x04"
    assert 40.0 - 1.0 < ticket.received_at <= 40.0
    assert reloaded.pop("example.com", now=50.0) is None  # RFC 8446 §C.4: used once
    assert reloaded.pop("other.example", now=50.0) is None


def test_ticket_file_skips_expired_and_keeps_few(tmp_path: Path) -> None:
    store = FileSessionTicketStore(tmp_path / "t.json", clock=lambda: 100.0)
    store.put("a", _ticket(received_at=0.0, lifetime=50))  # already 100 s old: expired
    assert store.pop("a", now=100.0) is None
    for _ in range(10):
        store.put("b", _ticket(received_at=100.0))
    assert len(store) <= 4


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"tickets": [1, {"server_name": "a"}]}'])
def test_ticket_file_tolerates_garbage(tmp_path: Path, content: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(content)
    store = FileSessionTicketStore(path)
    assert store.pop("a", now=0.0) is None
    store.put("a", _ticket(received_at=store._clock()))
    assert json.loads(path.read_text())["tickets"][-1]["server_name"] == "a"


# --- perf, echo and hq over real loopback connections -------------------------------------------


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Path, quic.TLSConfig]]:
    server_tls = quic.TLSConfig.self_signed(alpn=list(SERVED_ALPNS))
    listener = await quic.listen_addr("127.0.0.1:0", server_tls, quic.Config())
    task = asyncio.ensure_future(serve_listener(listener, str(tmp_path)))
    try:
        yield f"127.0.0.1:{listener.local_addr[1]}", tmp_path, server_tls
    finally:
        listener.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _client(alpn: str, server_tls: quic.TLSConfig) -> quic.TLSConfig:
    return quic.TLSConfig(alpn=[alpn], cadata=server_tls.certificate_pem, server_name="localhost")


async def test_perf_download_and_upload(served: tuple[str, Path, quic.TLSConfig]) -> None:
    address, _, server_tls = served
    conn = await quic.dial_addr(address, _client(PERF_ALPN, server_tls), quic.Config())
    async with conn:
        down = await perf_request(conn, 300_000)
        up = await perf_request(conn, 10, upload=200_000)
        small = await asyncio.gather(*(perf_request(conn, 100) for _ in range(20)))
    assert (down.downloaded, down.uploaded) == (300_000, 0)
    assert (up.downloaded, up.uploaded) == (10, 200_000)
    assert all(r.downloaded == 100 for r in small)
    assert down.mbps > 0


async def test_echo(served: tuple[str, Path, quic.TLSConfig]) -> None:
    address, _, server_tls = served
    conn = await quic.dial_addr(address, _client(ECHO_ALPN, server_tls), quic.Config())
    async with conn:
        data = os.urandom(150_000)
        assert await echo(conn, data) == data
        assert await echo(conn, b"") == b""


async def test_hq_get_downloads_files_concurrently(served: tuple[str, Path, quic.TLSConfig]) -> None:
    address, root, server_tls = served
    files = {f"f{i}.bin": os.urandom(30_000 * (i + 1)) for i in range(5)}
    for name, data in files.items():
        (root / name).write_bytes(data)
    conn = await quic.dial_addr(address, _client(HQ_ALPN, server_tls), quic.Config())
    async with conn:

        async def get(name: str) -> bytes:
            parts: list[bytes] = []
            total = await hq_get(conn, f"/{name}", parts.append)
            assert total == len(files[name])
            return b"".join(parts)

        results = await asyncio.gather(*(get(n) for n in files))
    assert results == list(files.values())


# --- hostile input, fuzzed ----------------------------------------------------------------------


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=200) | st.builds(lambda b: b"GET /" + b, st.binary(max_size=100)))
def test_parse_request_random_bytes_only_raise_hq_request_error(data: bytes) -> None:
    try:
        path = parse_request(data)
    except HqRequestError:
        return
    assert path.startswith("/")
    assert all(c.isprintable() for c in path)


@settings(max_examples=300, derandomize=True)
@given(st.lists(st.sampled_from(["..", ".", "", "a", "b.txt", "%2e%2e", "\\..", "link"]), max_size=6))
def test_resolve_path_never_leaves_the_root(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    base = tmp_path_factory.getbasetemp() / "fuzzroot"
    root = base / "www"
    if not root.exists():
        (root / "a").mkdir(parents=True)
        (root / "a" / "b.txt").write_text("in")
        (root / "b.txt").write_text("in")
        (base / "b.txt").write_text("out")
        (root / "link").symlink_to(base / "b.txt")
    try:
        resolved = resolve_path(str(root), "/" + "/".join(parts))
    except HqRequestError:
        return
    real_root = str(root.resolve())
    assert os.path.commonpath([real_root, resolved]) == real_root
    assert Path(resolved).read_text() == "in"
