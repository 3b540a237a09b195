"""Interop with quic-go 0.29 (Debian's golang-github-lucas-clemente-quic-go-dev), the stack quicsilver
models itself on, over loopback: our client ↔ quic-go server and quic-go client ↔ our server, QUIC v1,
for the handshake (ALPN, ECDSA self-signed certificates), 10 MB downloads and uploads checked by
SHA-256, 100 concurrent streams, Retry, application close codes, key updates initiated by both sides
during 10 MB, ChaCha20-only, RFC 9221 datagrams, resumption with 0-RTT, version negotiation,
stateless resets after a server restart, streams stopped both ways (RESET_STREAM + STOP_SENDING codes),
NEW_TOKEN, 0-RTT rejected by a restarted server, idle timeout and keep-alive, 2 MB echoed through a
relay losing 5% of datagrams, and 50 quic-go connections at once.

The quic-go peer is tests/interop/go_quic_peer.go, built once per session. It sets quic-go's key update
interval, an internal variable (as quic-go's own interop client does), so it is built as a package
inside the quic-go import path: an overlay GOPATH whose quic-go directory links every entry of the
Debian source and adds the peer. Each peer result is one stdout line, "event key=value ...".

CI installs the toolchain with .ci/install-peers.sh; without go or the quic-go source these tests skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import struct
import subprocess
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import quicsilver as quic
from quicsilver.handshake.protection import CipherSuite
from quicsilver.protocol import VERSION_1, VERSION_2, Perspective
from quicsilver.qlog.tracer import ConnectionTracer

pytestmark = pytest.mark.interop

GOPATH = Path("/usr/share/gocode")
QUIC_GO = Path("github.com/lucas-clemente/quic-go")
SOURCE = Path(__file__).with_name("go_quic_peer.go")
PEER_PACKAGE = QUIC_GO / "quicsilverpeer"
TEN_MB = 10_000_000
CLOSE_CODE = 0x1A2B
STREAM_CODE = 0x3C
CHACHA20 = "0x1303"

Event = dict[str, str]


# --- building and running the quic-go peer -----------------------------------------------------------


@pytest.fixture(scope="session")
def go_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed (.ci/install-peers.sh installs golang-go)")
    source = GOPATH / "src" / QUIC_GO
    if not (source / "interface.go").is_file():
        pytest.skip(
            f"the quic-go source is not in {source} "
            "(.ci/install-peers.sh installs golang-github-lucas-clemente-quic-go-dev)"
        )
    root = tmp_path_factory.mktemp("quicgo")
    overlay = root / "gopath" / "src" / QUIC_GO
    overlay.mkdir(parents=True)
    for entry in source.iterdir():
        (overlay / entry.name).symlink_to(entry)
    package = root / "gopath" / "src" / PEER_PACKAGE
    package.mkdir()
    shutil.copyfile(SOURCE, package / "main.go")
    binary = root / "go_quic_peer"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{root / 'gopath'}{os.pathsep}{GOPATH}",
        "GOFLAGS": "",
        "GOPROXY": "off",
        "CGO_ENABLED": "0",
    }
    if not any(k in os.environ for k in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(root / "gocache")
    try:
        build = subprocess.run(
            [go, "build", "-o", str(binary), str(PEER_PACKAGE)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("building the quic-go peer took more than 300 s")
    if build.returncode != 0:
        pytest.fail(f"building the quic-go peer failed:\n{build.stderr}")
    return binary


def parse_event(line: str) -> tuple[str, Event]:
    name, *words = line.split()
    return name, dict(word.split("=", 1) for word in words if "=" in word)


@dataclass
class GoOutput:
    """The events a quic-go peer printed, by name, in order."""

    lines: list[str] = field(default_factory=list)

    def all(self, name: str) -> list[Event]:
        return [event for line in self.lines for n, event in [parse_event(line)] if n == name]

    def one(self, name: str) -> Event:
        found = self.all(name)
        assert len(found) == 1, f"expected one {name!r} line from quic-go, got:\n" + "\n".join(self.lines)
        return found[0]

    def check_no_errors(self) -> None:
        assert not self.all("error"), "quic-go reported:\n" + "\n".join(self.lines)


@dataclass
class GoProcess:
    """A running quic-go process (a server, or a client started by start_quicgo_client)."""

    port: int
    output: GoOutput
    process: asyncio.subprocess.Process
    collector: asyncio.Task[None] | None = None

    async def wait_for(self, name: str, count: int = 1, timeout: float = 10) -> list[Event]:
        """The first ``count`` events called ``name``, waiting until quic-go has printed them."""
        async with asyncio.timeout(timeout):
            while len(found := self.output.all(name)) < count:
                await asyncio.sleep(0.02)
        return found


async def _collect(stream: asyncio.StreamReader, output: GoOutput) -> None:
    while line := await stream.readline():
        output.lines.append(line.decode().strip())


@contextlib.asynccontextmanager
async def quicgo_server(binary: Path, *args: str) -> AsyncIterator[GoProcess]:
    """quic-go serving on 127.0.0.1 until the block ends (then its stdin closes and it exits)."""
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "-role",
        "server",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None and process.stderr is not None
    output = GoOutput()
    collector = asyncio.create_task(_collect(process.stdout, output))
    try:
        server = GoProcess(0, output, process)
        try:
            (listening,) = await server.wait_for("listening", timeout=5)
        except TimeoutError:
            early_stderr = (await process.stderr.read()).decode()
            pytest.fail(f"quic-go did not start: {output.lines} {early_stderr}")
        server.port = int(listening["addr"].rsplit(":", 1)[1])
        yield server
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
        await collector
        stderr = (await process.stderr.read()).decode()
        with contextlib.suppress(AttributeError):  # the pipe's transport closes with the process
            process.stdin.transport.close()
    output.check_no_errors()
    # 0 after stdin closed; anything else (a Go panic: 2) is a failure of the peer, shown with its trace
    assert process.returncode == 0, f"quic-go server exited with {process.returncode}:\n{stderr}"


async def start_quicgo_client(binary: Path, port: int, *args: str, timeout: float = 20) -> GoProcess:
    """quic-go as a client against 127.0.0.1:port, running: its events can be awaited as they come."""
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "-role",
        "client",
        "-addr",
        f"127.0.0.1:{port}",
        "-timeout",
        f"{timeout}s",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    output = GoOutput()
    running = GoProcess(port, output, process)
    running.collector = asyncio.create_task(_collect(process.stdout, output))
    return running


async def finish_quicgo_client(client: GoProcess, timeout: float = 25) -> GoOutput:
    """Wait for a started quic-go client to exit (killing it after ``timeout``); check it succeeded."""
    process = client.process
    assert process.stderr is not None and client.collector is not None
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    finally:
        await client.collector
        stderr = (await process.stderr.read()).decode()
    assert process.returncode == 0, "quic-go client failed:\n" + "\n".join(client.output.lines) + stderr
    client.output.check_no_errors()
    return client.output


async def quicgo_client(binary: Path, port: int, *args: str, timeout: float = 20) -> GoOutput:
    """Run quic-go as a client against 127.0.0.1:port; its output, after checking it succeeded."""
    client = await start_quicgo_client(binary, port, *args, timeout=timeout)
    return await finish_quicgo_client(client, timeout + 5)


# --- our side -------------------------------------------------------------------------------------------


def our_client_tls(**kwargs: Any) -> quic.TLSConfig:
    return quic.TLSConfig(alpn=["TEST"], verify=False, **kwargs)


@pytest.fixture(scope="module")
def server_tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])  # ECDSA P-256


class Recorder(ConnectionTracer):
    """Counts the key updates our side initiates (``updated_key`` with remote=False), and the packets
    we send by type (INITIAL, ZERO_RTT, ...)."""

    def __init__(self) -> None:
        self.initiated = 0
        self.sent: Counter[str] = Counter()

    def updated_key(self, generation: int, remote: bool) -> None:
        if not remote:
            self.initiated += 1

    def sent_packet(self, packet_type: str, pn: int, size: int, frames: Any) -> None:
        self.sent[packet_type] += 1


def key_updating_config(counters: list[Recorder], **kwargs: Any) -> quic.Config:
    def tracer(perspective: Perspective, odcid: bytes) -> Recorder:
        counters.append(Recorder())
        return counters[-1]

    settings: dict[str, Any] = {"first_key_update_interval": 10, "key_update_interval": 100, **kwargs}
    return quic.Config(tracer=tracer, **settings)


async def echo_via(conn: quic.Connection, payload: bytes) -> bytes:
    stream = await conn.open_stream_sync()
    reader = asyncio.create_task(stream.read())
    await stream.write(payload)
    await stream.close()
    return await reader


async def download_via(conn: quic.Connection, size: int) -> bytes:
    stream = await conn.open_stream_sync()
    await stream.write(struct.pack("!Q", size))
    await stream.close()
    return await stream.read()


async def upload_via(conn: quic.Connection, payload: bytes) -> bytes:
    stream = await conn.open_stream_sync()
    reader = asyncio.create_task(stream.read())
    await stream.write(payload)
    await stream.close()
    return await reader


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class OurServer:
    listener: quic.Listener
    connections: list[quic.Connection] = field(default_factory=list)
    results: list[Event] = field(default_factory=list)


async def _serve_stream(stream: quic.Stream, mode: str, results: list[Event]) -> None:
    if mode == "echo":
        async for chunk in stream:
            await stream.write(chunk)
    elif mode == "download":
        request = await stream.read()
        (size,) = struct.unpack("!Q", request[:8])
        payload = os.urandom(size)
        results.append({"bytes": str(size), "sha256": sha256(payload)})
        await stream.write(payload)
    elif mode == "upload":
        digest, count = hashlib.sha256(), 0
        async for chunk in stream:
            digest.update(chunk)
            count += len(chunk)
        results.append({"bytes": str(count), "sha256": digest.hexdigest()})
        await stream.write(f"{count} {digest.hexdigest()}".encode())
    elif mode == "reset":
        assert await stream.readexactly(4) == b"ping"
        stream.cancel_read(STREAM_CODE)
        stream.cancel_write(STREAM_CODE)
        return
    await stream.close()


@contextlib.asynccontextmanager
async def our_server(
    tls: quic.TLSConfig,
    mode: str,
    config: quic.Config | None = None,
    on_connection: Callable[[quic.Connection], Awaitable[None]] | None = None,
    early: bool = False,
    port: int = 0,
    **transport_options: Any,
) -> AsyncIterator[OurServer]:
    """Our server on 127.0.0.1 serving each stream in ``mode`` (echo, download, upload, reset), echoing
    datagrams when they are enabled; ``on_connection`` runs for each connection; ``early``: accept 0-RTT."""
    listen = quic.listen_addr_early if early else quic.listen_addr
    listener = await listen(f"127.0.0.1:{port}", tls, config, **transport_options)
    server = OurServer(listener)
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Awaitable[None]) -> None:
        async def run() -> None:
            with contextlib.suppress(quic.QuicError):
                await coro

        task = asyncio.create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def echo_datagrams(conn: quic.Connection) -> None:
        while True:
            conn.send_datagram(await conn.receive_datagram())

    async def serve_conn(conn: quic.Connection) -> None:
        server.connections.append(conn)
        if config is not None and config.enable_datagrams:
            spawn(echo_datagrams(conn))
        if on_connection is not None:
            spawn(on_connection(conn))
        while True:
            spawn(_serve_stream(await conn.accept_stream(), mode, server.results))

    async def accept_loop() -> None:
        async for conn in listener:
            spawn(serve_conn(conn))

    loop_task = asyncio.create_task(accept_loop())
    try:
        yield server
    finally:
        listener.close()
        await asyncio.wait_for(loop_task, 5)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _RelayEnd(asyncio.DatagramProtocol):
    def __init__(self, relay: LossyRelay, upstream: bool) -> None:
        self.relay, self.upstream = relay, upstream
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.relay.forward(self, data, addr)


class LossyRelay:
    """A UDP relay on 127.0.0.1 between one client and one server that drops each datagram, either
    way, with probability ``loss`` (seeded: the same losses each run for the same traffic)."""

    def __init__(self, server_port: int, loss: float, seed: int = 9000) -> None:
        self.server = ("127.0.0.1", server_port)
        self.loss = loss
        self.random = random.Random(seed)
        self.client: tuple[Any, ...] | None = None
        self.dropped = 0
        self.forwarded = 0
        self.down: _RelayEnd | None = None
        self.up: _RelayEnd | None = None

    async def __aenter__(self) -> LossyRelay:
        loop = asyncio.get_running_loop()
        _, self.down = await loop.create_datagram_endpoint(
            lambda: _RelayEnd(self, False), local_addr=("127.0.0.1", 0)
        )
        _, self.up = await loop.create_datagram_endpoint(
            lambda: _RelayEnd(self, True), local_addr=("127.0.0.1", 0)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for end in (self.down, self.up):
            if end is not None and end.transport is not None:
                end.transport.close()

    @property
    def port(self) -> int:
        assert self.down is not None
        return int(self.down.transport.get_extra_info("sockname")[1])

    def forward(self, end: _RelayEnd, data: bytes, addr: tuple[Any, ...]) -> None:
        assert self.down is not None and self.up is not None
        if not end.upstream:
            self.client = addr
        if self.random.random() < self.loss:
            self.dropped += 1
            return
        self.forwarded += 1
        if end.upstream:
            if self.client is not None:
                self.down.transport.sendto(data, self.client)
        else:
            self.up.transport.sendto(data, self.server)


# --- our client ↔ quic-go server ---------------------------------------------------------------------


async def test_our_client_handshake_and_echo(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo") as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        state = conn.connection_state()
        assert state.alpn == "TEST" and state.version == VERSION_1
        assert await echo_via(conn, b"hello quic-go") == b"hello quic-go"
        conn.close()
        await conn.wait_closed()
        (handshake,) = await server.wait_for("handshake")
        assert handshake["alpn"] == "TEST" and handshake["version"] == "0x00000001"
        (closed,) = await server.wait_for("closed")
        assert closed["kind"] == "application" and closed["remote"] == "true" and closed["code"] == "0"


async def test_our_client_10mb_download(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "download") as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        data = await download_via(conn, TEN_MB)
        (sent,) = await server.wait_for("download")
        assert len(data) == TEN_MB and sent == {"bytes": str(TEN_MB), "sha256": sha256(data)}
        conn.close()


async def test_our_client_10mb_upload(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "upload") as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        payload = os.urandom(TEN_MB)
        reply = await upload_via(conn, payload)
        assert reply.decode() == f"{TEN_MB} {sha256(payload)}"
        (received,) = await server.wait_for("upload")
        assert received == {"bytes": str(TEN_MB), "sha256": sha256(payload)}
        conn.close()


async def test_our_client_100_streams(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo") as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        payloads = [os.urandom(1000 + i) for i in range(100)]
        assert await asyncio.gather(*(echo_via(conn, p) for p in payloads)) == payloads
        conn.close()


async def test_our_client_through_retry(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo", "-retry") as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        assert await echo_via(conn, b"after retry") == b"after retry"
        await server.wait_for("retry-sent")
        await server.wait_for("handshake")
        conn.close()


async def test_our_client_close_code_seen_by_quicgo(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo") as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        assert await echo_via(conn, b"about to close") == b"about to close"
        conn.close(CLOSE_CODE, "quicsilver says bye")
        (closed,) = await server.wait_for("closed")
        assert closed["kind"] == "application" and closed["remote"] == "true"
        assert int(closed["code"]) == CLOSE_CODE and closed["reason"] == "quicsilver_says_bye"


async def test_quicgo_server_close_code_seen_by_us(go_peer: Path) -> None:
    args = ("-mode", "close", "-close-code", str(CLOSE_CODE), "-close-reason", "quic-go says bye")
    async with asyncio.timeout(20), quicgo_server(go_peer, *args) as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        stream = await conn.open_stream_sync()
        await stream.write(b"close, please")
        await stream.close()
        await conn.wait_closed()
        error = conn.error
        assert isinstance(error, quic.ApplicationError), error
        assert (error.code, error.reason, error.remote) == (CLOSE_CODE, "quic-go says bye", True)


# Who initiates key updates: "ours" (quic-go keeps its default interval of 100,000 packets after its first
# update at 100), "quic-go's" (ours is far beyond the transfer), or "both" every 100 packets. With "both",
# which side starts a given update is a race (quic-go counts packets sent and received, we count sent), so
# only the single-initiator runs can require many updates from one side as the other side saw them.
KEY_UPDATE_INITIATORS = ["ours", "quic-go's", "both"]


def key_update_setup(initiator: str, counters: list[Recorder]) -> tuple[quic.Config, tuple[str, ...]]:
    ours = 100 if initiator in ("ours", "both") else 1 << 40
    config = key_updating_config(counters, key_update_interval=ours)
    theirs = ("-key-update-interval", "100") if initiator in ("quic-go's", "both") else ()
    return config, theirs


def check_key_updates(initiator: str, closed: Event, counters: list[Recorder]) -> None:
    """A 10 MB echo is some 7,500 packets each way: at one update per 100 packets (and at most one per
    RTT, RFC 9001 §6.1) the initiating side starts dozens. quic-go counts an update both sides started
    at once as its own, so it can see fewer of ours than we made, never more."""
    (ours,) = counters
    local, remote = int(closed["keyupdates-local"]), int(closed["keyupdates-remote"])
    assert closed["kind"] == "application" and closed["code"] == "0", closed  # no KEY_UPDATE_ERROR
    assert ours.initiated >= remote, (ours.initiated, closed)
    if initiator == "ours":
        assert remote >= 5 and ours.initiated >= 5, (ours.initiated, closed)
    elif initiator == "quic-go's":
        assert local >= 5 and ours.initiated <= 1, (ours.initiated, closed)  # ours: the first, at 10
    else:
        # Both sides race to start each update. quic-go counts received packets too, so it usually
        # wins, and on a fast run it can win every race: our counter restarts with each update the
        # peer starts. What must hold is that the updates happen and neither side errs.
        assert local + ours.initiated >= 5, (ours.initiated, closed)


@pytest.mark.parametrize("initiator", KEY_UPDATE_INITIATORS)
async def test_our_client_key_updates_during_10mb(go_peer: Path, initiator: str) -> None:
    # An echo, so that both sides send ack-eliciting packets: an endpoint may initiate a key update
    # only once a packet it sent with the current keys is acknowledged (RFC 9001 §6.1), so a side
    # that only sends ACKs updates once.
    counters: list[Recorder] = []
    config, theirs = key_update_setup(initiator, counters)
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo", *theirs) as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls(), config)
        payload = os.urandom(TEN_MB)
        assert await echo_via(conn, payload) == payload
        conn.close()
        (closed,) = await server.wait_for("closed")
    check_key_updates(initiator, closed, counters)


@pytest.mark.parametrize("restricted", ["ours", "quic-go's"])
async def test_our_client_chacha20_only(go_peer: Path, restricted: str) -> None:
    # quic-go's TLS (qtls) honours CipherSuites for TLS 1.3, so either side can insist on ChaCha20
    args = ("-mode", "echo", *(["-chacha20"] if restricted == "quic-go's" else []))
    async with asyncio.timeout(20), quicgo_server(go_peer, *args) as server:
        if restricted == "ours":
            tls = our_client_tls(cipher_suites=[CipherSuite.CHACHA20_POLY1305_SHA256])
        else:
            tls = our_client_tls()
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", tls)
        assert await echo_via(conn, b"chacha") == b"chacha"
        (handshake,) = await server.wait_for("handshake")
        assert handshake["cipher"] == CHACHA20
        conn.close()


async def test_our_client_datagrams(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo", "-datagrams") as server:
        conn = await quic.dial_addr(
            f"127.0.0.1:{server.port}", our_client_tls(), quic.Config(enable_datagrams=True)
        )
        (handshake,) = await server.wait_for("handshake")
        assert handshake["datagrams"] == "true"
        # quic-go 0.29 advertises max_datagram_frame_size 1220: 1 type byte, 2 length bytes, 1217 data
        with pytest.raises(quic.DatagramTooLargeError):
            conn.send_datagram(b"L" * 1300)
        wanted = {f"datagram {i}".encode() for i in range(10)} | {b"B" * 1217}
        received: set[bytes] = set()
        for _ in range(30):  # datagrams are unreliable: send again those not yet echoed
            for message in wanted - received:
                conn.send_datagram(message)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    while received != wanted:
                        received.add(await conn.receive_datagram())
            if received == wanted:
                break
        assert received == wanted
        conn.close()


async def test_our_client_resumption_and_0rtt(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo", "-early") as server:
        tls = our_client_tls(session_ticket_store=quic.MemorySessionTicketStore())
        first = await quic.dial_addr(f"127.0.0.1:{server.port}", tls)
        assert await echo_via(first, b"first") == b"first"  # the ticket arrives after the handshake
        first.close()
        assert len(tls.session_ticket_store) >= 1  # type: ignore[arg-type]
        second = await quic.dial_addr_early(f"127.0.0.1:{server.port}", tls)
        assert await echo_via(second, b"early") == b"early"  # written before the handshake: 0-RTT
        await second.wait_handshake()
        state = second.connection_state()
        assert state.session_resumed and state.used_0rtt
        second.close()
        first_seen, second_seen = await server.wait_for("handshake", 2)
    assert (first_seen["resumed"], first_seen["used0rtt"]) == ("false", "false")
    assert (second_seen["resumed"], second_seen["used0rtt"]) == ("true", "true")


async def test_our_client_version_negotiation(go_peer: Path) -> None:
    # quic-go 0.29 knows v1, draft-29 and a draft of v2, not RFC 9369's v2: it answers our v2 Initial
    # with a Version Negotiation packet, and we start over with v1 (RFC 9000 §6.2)
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo") as server:
        config = quic.Config(versions=(VERSION_2, VERSION_1))
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls(), config)
        assert conn.connection_state().version == VERSION_1
        assert await echo_via(conn, b"negotiated") == b"negotiated"
        conn.close()


async def test_our_client_no_common_version(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo", "-versions", "draft29") as server:
        with pytest.raises(quic.VersionNegotiationError) as raised:
            await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        assert 0xFF00001D in raised.value.theirs and VERSION_1 not in raised.value.theirs


async def test_our_client_stateless_reset_after_quicgo_restarts(go_peer: Path) -> None:
    key = os.urandom(32).hex()
    async with asyncio.timeout(20):
        async with quicgo_server(go_peer, "-mode", "echo", "-stateless-reset-key", key) as server:
            port = server.port
            conn = await quic.dial_addr(f"127.0.0.1:{port}", our_client_tls())
            assert await echo_via(conn, b"before the crash") == b"before the crash"
        # the same key, the same port, no state: quic-go answers our next packet with a stateless reset
        async with quicgo_server(
            go_peer, "-mode", "echo", "-stateless-reset-key", key, "-addr", f"127.0.0.1:{port}"
        ):
            with contextlib.suppress(quic.StatelessResetError):  # it may come in reply to an ACK already
                stream = await conn.open_stream_sync()
                await stream.write(b"after the crash")
            await asyncio.wait_for(conn.wait_closed(), 5)
    assert isinstance(conn.error, quic.StatelessResetError), conn.error


async def test_our_client_stream_stopped_by_quicgo(go_peer: Path) -> None:
    args = ("-mode", "reset", "-close-code", str(STREAM_CODE))
    async with asyncio.timeout(20), quicgo_server(go_peer, *args) as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        stream_ids = []
        for _ in range(2):  # the connection outlives a stopped stream
            stream = await conn.open_stream_sync()
            stream_ids.append(str(stream.stream_id))
            await stream.write(b"ping")
            with pytest.raises(quic.StreamError) as read_error:  # RESET_STREAM
                await stream.read()
            with pytest.raises(quic.StreamError) as write_error:  # STOP_SENDING
                while True:
                    await stream.write(b"x" * 1000)
                    await asyncio.sleep(0.001)
            for error in (read_error.value, write_error.value):
                assert (error.stream_id, error.code, error.remote) == (stream.stream_id, STREAM_CODE, True)
        resets = await server.wait_for("reset", 2)
        assert resets == [{"stream": sid, "code": str(STREAM_CODE)} for sid in stream_ids]
        conn.close()


async def test_our_client_keep_alive_outlives_quicgo_idle_timeout(go_peer: Path) -> None:
    # quic-go's idle timeout is 1 s (the minimum of both sides', RFC 9000 §10.1); our PINGs every
    # 0.3 s keep the idle connection open past it
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo", "-timeout", "1s") as server:
        config = quic.Config(keep_alive_period=0.3)
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls(), config)
        await asyncio.sleep(2.5)
        assert await echo_via(conn, b"still here") == b"still here"
        assert not server.output.all("closed")
        conn.close()


async def test_our_client_idle_timeout_with_quicgo(go_peer: Path) -> None:
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo", "-timeout", "1s") as server:
        conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert isinstance(conn.error, quic.IdleTimeoutError), conn.error
        (closed,) = await server.wait_for("closed")
        assert closed["kind"] == "idle-timeout"


async def test_our_client_new_token_skips_quicgo_retry(go_peer: Path) -> None:
    # RFC 9000 §8.1.3: a token from NEW_TOKEN validates the address of the next connection
    async with asyncio.timeout(20), quicgo_server(go_peer, "-mode", "echo", "-retry") as server:
        config = quic.Config(token_store=quic.LRUTokenStore())
        retries = []
        for _ in range(2):
            conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls(), config)
            assert await echo_via(conn, b"token") == b"token"
            await asyncio.sleep(0.05)  # NEW_TOKEN follows the handshake
            conn.close()
            retries.append(len(server.output.all("retry-sent")))
        # quic-go answers each Initial datagram without a token with a Retry, and our ClientHello
        # (with an X25519MLKEM768 key share) takes two: the first connection may see two
        assert retries[0] >= 1 and retries[1] == retries[0], retries


async def test_our_client_0rtt_rejected_by_restarted_quicgo(go_peer: Path) -> None:
    # a new quic-go process has new session ticket keys: it cannot resume our ticket, so it rejects
    # 0-RTT and we send the early data again in 1-RTT packets (RFC 9001 §4.6.2)
    tls = our_client_tls(session_ticket_store=quic.MemorySessionTicketStore())
    async with asyncio.timeout(20):
        async with quicgo_server(go_peer, "-mode", "echo", "-early") as server:
            port = server.port
            first = await quic.dial_addr(f"127.0.0.1:{port}", tls)
            assert await echo_via(first, b"first") == b"first"
            first.close()
            await server.wait_for("closed")
        async with quicgo_server(go_peer, "-mode", "echo", "-early", "-addr", f"127.0.0.1:{port}") as server:
            recorder = Recorder()
            config = quic.Config(tracer=lambda perspective, odcid: recorder)
            second = await quic.dial_addr_early(f"127.0.0.1:{port}", tls, config)
            payloads = [os.urandom(3000 + i) for i in range(5)]
            assert await asyncio.gather(*(echo_via(second, p) for p in payloads)) == payloads
            await second.wait_handshake()
            state = second.connection_state()
            assert not state.session_resumed and not state.used_0rtt
            assert recorder.sent["ZERO_RTT"] >= 1  # the data did go out as 0-RTT first
            second.close()
            (handshake,) = await server.wait_for("handshake")
            assert (handshake["resumed"], handshake["used0rtt"]) == ("false", "false")


async def test_our_client_echo_through_5pct_loss(go_peer: Path) -> None:
    # loss recovery on both stacks, both directions: 2 MB echoed while 5% of datagrams vanish
    async with (
        asyncio.timeout(20),
        quicgo_server(go_peer, "-mode", "echo") as server,
        LossyRelay(server.port, 0.05) as relay,
    ):
        conn = await quic.dial_addr(f"127.0.0.1:{relay.port}", our_client_tls())
        payload = os.urandom(2_000_000)
        assert await echo_via(conn, payload) == payload
        conn.close()
        assert relay.dropped >= 50, (relay.dropped, relay.forwarded)


@pytest.mark.parametrize("their_cid", [4, 18])
@pytest.mark.parametrize("our_cid", [0, 20])
async def test_our_client_connection_id_lengths(go_peer: Path, our_cid: int, their_cid: int) -> None:
    # short headers carry only the DCID, whose length each side knows from its own choice (RFC 9000 §17.3)
    args = ("-mode", "echo", "-cid-length", str(their_cid))
    async with asyncio.timeout(20), quicgo_server(go_peer, *args) as server:
        payload = os.urandom(300_000)
        if our_cid == 0:
            conn = await quic.dial_addr(f"127.0.0.1:{server.port}", our_client_tls())
            assert await echo_via(conn, payload) == payload
            conn.close()
        else:
            async with quic.Transport("127.0.0.1:0", connection_id_length=our_cid) as transport:
                conn = await transport.dial(f"127.0.0.1:{server.port}", our_client_tls())
                assert await echo_via(conn, payload) == payload
                conn.close()


# --- quic-go client ↔ our server ---------------------------------------------------------------------


async def test_quicgo_client_handshake_and_echo(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20), our_server(server_tls, "echo") as server:
        output = await quicgo_client(go_peer, server.listener.local_addr[1], "-mode", "echo")
        handshake = output.one("handshake")
        assert handshake["alpn"] == "TEST" and handshake["version"] == "0x00000001"
        assert output.one("echo") == {"streams": "1", "bytes": "1000"}
        (conn,) = server.connections
        assert conn.connection_state().alpn == "TEST"


async def test_quicgo_client_10mb_download(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20), our_server(server_tls, "download") as server:
        port = server.listener.local_addr[1]
        output = await quicgo_client(go_peer, port, "-mode", "download", "-size", str(TEN_MB))
        (sent,) = server.results
        assert sent["bytes"] == str(TEN_MB) and output.one("download") == sent


async def test_quicgo_client_10mb_upload(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20), our_server(server_tls, "upload") as server:
        port = server.listener.local_addr[1]
        output = await quicgo_client(go_peer, port, "-mode", "upload", "-size", str(TEN_MB))
        upload = output.one("upload")
        assert upload["bytes"] == str(TEN_MB)
        assert server.results == [{"bytes": str(TEN_MB), "sha256": upload["sha256"]}]
        assert upload["reply"] == f"{TEN_MB}:{upload['sha256']}"


async def test_quicgo_client_100_streams(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20), our_server(server_tls, "echo") as server:
        port = server.listener.local_addr[1]
        output = await quicgo_client(go_peer, port, "-mode", "echo", "-streams", "100", "-size", "1000")
        assert output.one("echo") == {"streams": "100", "bytes": "1000"}


async def test_quicgo_client_through_retry(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(20),
        our_server(server_tls, "echo", verify_source_address=lambda addr: True) as server,
    ):
        output = await quicgo_client(go_peer, server.listener.local_addr[1], "-mode", "echo")
        assert output.all("retry-received") == [{}]
        assert output.one("echo") == {"streams": "1", "bytes": "1000"}
        assert server.listener.stats().retries_sent == 1


async def test_quicgo_client_close_code_seen_by_us(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20), our_server(server_tls, "echo") as server:
        port = server.listener.local_addr[1]
        args = ("-mode", "echo", "-close-code", str(CLOSE_CODE), "-close-reason", "quic-go says bye")
        output = await quicgo_client(go_peer, port, *args)
        assert output.one("closed")["remote"] == "false"
        (conn,) = server.connections
        await asyncio.wait_for(conn.wait_closed(), 5)
        error = conn.error
        assert isinstance(error, quic.ApplicationError), error
        assert (error.code, error.reason, error.remote) == (CLOSE_CODE, "quic-go says bye", True)


async def test_our_server_close_code_seen_by_quicgo(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async def close_soon(conn: quic.Connection) -> None:
        await asyncio.sleep(0.1)
        conn.close(CLOSE_CODE, "quicsilver says bye")

    async with asyncio.timeout(20), our_server(server_tls, "echo", on_connection=close_soon) as server:
        output = await quicgo_client(go_peer, server.listener.local_addr[1], "-mode", "wait")
        closed = output.one("closed")
        assert closed["kind"] == "application" and closed["remote"] == "true"
        assert int(closed["code"]) == CLOSE_CODE and closed["reason"] == "quicsilver_says_bye"


@pytest.mark.parametrize("initiator", KEY_UPDATE_INITIATORS)
async def test_quicgo_client_key_updates_during_10mb(
    go_peer: Path, server_tls: quic.TLSConfig, initiator: str
) -> None:
    counters: list[Recorder] = []
    config, theirs = key_update_setup(initiator, counters)
    async with asyncio.timeout(20), our_server(server_tls, "echo", config) as server:
        port = server.listener.local_addr[1]
        args = ("-mode", "echo", "-size", str(TEN_MB), *theirs)
        output = await quicgo_client(go_peer, port, *args)
        assert output.one("echo") == {"streams": "1", "bytes": str(TEN_MB)}
    check_key_updates(initiator, output.one("closed"), counters)


@pytest.mark.parametrize("restricted", ["ours", "quic-go's"])
async def test_quicgo_client_chacha20_only(
    go_peer: Path, server_tls: quic.TLSConfig, restricted: str
) -> None:
    if restricted == "ours":
        tls = quic.TLSConfig.self_signed(alpn=["TEST"], cipher_suites=[CipherSuite.CHACHA20_POLY1305_SHA256])
        args: tuple[str, ...] = ("-mode", "echo")
    else:
        tls, args = server_tls, ("-mode", "echo", "-chacha20")
    async with asyncio.timeout(20), our_server(tls, "echo") as server:
        output = await quicgo_client(go_peer, server.listener.local_addr[1], *args)
        assert output.one("handshake")["cipher"] == CHACHA20
        assert output.one("echo") == {"streams": "1", "bytes": "1000"}


async def test_quicgo_client_datagrams(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    config = quic.Config(enable_datagrams=True)
    async with asyncio.timeout(20), our_server(server_tls, "echo", config) as server:
        port = server.listener.local_addr[1]
        args = ("-mode", "echo", "-datagrams", "-datagram-count", "10")
        output = await quicgo_client(go_peer, port, *args)
        assert output.one("handshake")["datagrams"] == "true"
        assert output.one("datagrams")["received"] == "10"


async def test_quicgo_client_resumption_and_0rtt(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    config = quic.Config(allow_0rtt=True)
    async with asyncio.timeout(20), our_server(server_tls, "echo", config, early=True) as server:
        output = await quicgo_client(go_peer, server.listener.local_addr[1], "-mode", "echo", "-resume")
        first, second = output.all("handshake")
        assert (first["resumed"], first["used0rtt"]) == ("false", "false")
        assert (second["resumed"], second["used0rtt"]) == ("true", "true")
        assert len(output.all("echo")) == 2
        states = [conn.connection_state() for conn in server.connections]
        assert [(st.session_resumed, st.used_0rtt) for st in states] == [(False, False), (True, True)]


async def test_quicgo_client_version_negotiation(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    # quic-go starts with draft-29, which we do not speak: our Version Negotiation packet moves it to v1
    async with asyncio.timeout(20), our_server(server_tls, "echo") as server:
        port = server.listener.local_addr[1]
        output = await quicgo_client(go_peer, port, "-mode", "echo", "-versions", "draft29,v1")
        assert output.one("handshake")["version"] == "0x00000001"
        assert output.one("echo") == {"streams": "1", "bytes": "1000"}


def _swallow(queue: deque[Any]) -> bool:
    """A packet conn's write_batch that sends nothing: the server's last words never leave the host."""
    queue.clear()
    return True


async def test_quicgo_client_stateless_reset_after_our_server_restarts(
    go_peer: Path, server_tls: quic.TLSConfig
) -> None:
    key = os.urandom(32)
    async with asyncio.timeout(20):
        first = await quic.listen_addr("127.0.0.1:0", server_tls, stateless_reset_key=key)
        port = first.local_addr[1]
        client = asyncio.create_task(quicgo_client(go_peer, port, "-mode", "trickle", timeout=10))
        conn = await first.accept()
        assert await (await conn.accept_stream()).readexactly(4) == b"tick"
        # a crash: the server's state vanishes without a CONNECTION_CLOSE leaving the host
        first.transport.packet_conn.write_batch = _swallow  # type: ignore[method-assign]
        first.close()
        second = await quic.listen_addr(f"127.0.0.1:{port}", server_tls, stateless_reset_key=key)
        try:
            output = await client
        finally:
            second.close()
    # RFC 9000 §10.3: quic-go recognises the token derived from the same key for its connection ID
    assert output.one("closed")["kind"] == "stateless-reset"
    assert second.stats().stateless_resets_sent >= 1


async def test_quicgo_client_stream_stopped_by_us(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20), our_server(server_tls, "reset") as server:
        output = await quicgo_client(go_peer, server.listener.local_addr[1], "-mode", "reset")
        assert output.one("stream-reset") == {"read-code": str(STREAM_CODE), "write-code": str(STREAM_CODE)}


async def test_quicgo_client_50_connections(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    # 50 handshakes at once: more than half of our 64 handshake slots may be in use, so our server may
    # answer some with Retry (its default policy under load); every connection echoes on 10 streams
    async with asyncio.timeout(20), our_server(server_tls, "echo") as server:
        port = server.listener.local_addr[1]
        args = ("-mode", "echo", "-conns", "50", "-streams", "10", "-size", "10000")
        output = await quicgo_client(go_peer, port, *args)
        assert output.all("echo") == [{"streams": "10", "bytes": "10000"}] * 50
        assert len(server.connections) == 50


async def test_quicgo_client_new_token_skips_our_retry(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(20),
        our_server(server_tls, "echo", verify_source_address=lambda addr: True) as server,
    ):
        port = server.listener.local_addr[1]
        output = await quicgo_client(go_peer, port, "-mode", "echo", "-tokens", "-repeat", "2")
        assert len(output.all("echo")) == 2
        assert len(output.all("retry-received")) == 1
        assert server.listener.stats().retries_sent == 1


async def test_quicgo_client_0rtt_rejected_by_our_restarted_server(go_peer: Path) -> None:
    # the restarted server has a new session ticket key: it cannot resume quic-go's session, so it
    # rejects 0-RTT; quic-go resets its early streams and does the echo again in 1-RTT
    config = quic.Config(allow_0rtt=True)
    async with asyncio.timeout(20):
        async with our_server(quic.TLSConfig.self_signed(alpn=["TEST"]), "echo", config, early=True) as first:
            port = first.listener.local_addr[1]
            args = ("-mode", "echo", "-resume", "-pause", "1s")
            client = await start_quicgo_client(go_peer, port, *args)
            try:
                await client.wait_for("paused")
            except BaseException:
                await finish_quicgo_client(client, 0)
                raise
        restarted_tls = quic.TLSConfig.self_signed(alpn=["TEST"])
        async with our_server(restarted_tls, "echo", config, early=True, port=port) as second:
            output = await finish_quicgo_client(client)
            (conn,) = second.connections
            assert not conn.connection_state().session_resumed
    _, second_handshake = output.all("handshake")
    assert (second_handshake["resumed"], second_handshake["used0rtt"]) == ("false", "false")
    assert output.all("0rtt-rejected") == [{}]
    assert len(output.all("echo")) == 2


async def test_quicgo_client_echo_through_5pct_loss(go_peer: Path, server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(20),
        our_server(server_tls, "echo") as server,
        LossyRelay(server.listener.local_addr[1], 0.05) as relay,
    ):
        output = await quicgo_client(go_peer, relay.port, "-mode", "echo", "-size", "2000000")
        assert output.one("echo") == {"streams": "1", "bytes": "2000000"}
        assert relay.dropped >= 50, (relay.dropped, relay.forwarded)


@pytest.mark.parametrize("their_cid", [4, 18])
@pytest.mark.parametrize("our_cid", [4, 20])
async def test_quicgo_client_connection_id_lengths(
    go_peer: Path, server_tls: quic.TLSConfig, our_cid: int, their_cid: int
) -> None:
    async with asyncio.timeout(20), our_server(server_tls, "echo", connection_id_length=our_cid) as server:
        port = server.listener.local_addr[1]
        args = ("-mode", "echo", "-streams", "3", "-size", "100000", "-cid-length", str(their_cid))
        output = await quicgo_client(go_peer, port, *args)
        assert output.one("echo") == {"streams": "3", "bytes": "100000"}
