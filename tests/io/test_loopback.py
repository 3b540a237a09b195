"""End to end over real loopback sockets (127.0.0.1 and ::1): our client against our server through the
whole I/O layer: handshake, streams, datagrams, close, idle timeout, Retry, tokens, Version
Negotiation, stateless reset, accept-queue overflow and the receive-queue drop under a flood."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

import quicsilver as quic
from quicsilver.protocol import VERSION_1, VERSION_2
from quicsilver.qlog.tracer import ConnectionTracer, DropReason, Tracer


async def eventually(condition: Any, timeout: float = 3.0) -> None:
    """Wait until ``condition()`` holds, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HOSTS = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param("::1", id="ipv6", marks=pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")),
]


@pytest.fixture(scope="module")
def server_tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])


def client_tls(**kwargs: Any) -> quic.TLSConfig:
    return quic.TLSConfig(alpn=["TEST"], verify=False, **kwargs)


def url(listener: quic.Listener, host: str = "127.0.0.1") -> str:
    port = listener.local_addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DropTracer(Tracer):
    def __init__(self) -> None:
        self.dropped: list[tuple[str, int, str]] = []

    def dropped_packet(self, addr: Any, packet_type: str, size: int, reason: str) -> None:
        self.dropped.append((packet_type, size, reason))


async def echo_server(listener: quic.Listener) -> None:
    """Accept connections and echo every bidirectional stream (the seed server's behaviour)."""

    async def echo(stream: quic.Stream) -> None:
        async for chunk in stream:
            await stream.write(chunk)
        await stream.close()

    async def serve(conn: quic.Connection) -> None:
        tasks = set()
        try:
            while True:
                stream = await conn.accept_stream()
                task = asyncio.create_task(echo(stream))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except quic.QuicError:
            pass

    conns = set()
    async for conn in listener:
        task = asyncio.create_task(serve(conn))
        conns.add(task)
        task.add_done_callback(conns.discard)


@pytest.fixture
async def echo_listener(server_tls: quic.TLSConfig, request: Any) -> AsyncIterator[quic.Listener]:
    host = getattr(request, "param", "127.0.0.1")
    config = quic.Config(enable_datagrams=True, max_incoming_streams=1000)
    listener = await quic.listen_addr((host, 0), server_tls, config)
    task = asyncio.create_task(echo_server(listener))
    yield listener
    listener.close()
    await asyncio.wait_for(task, 2)


async def roundtrip(conn: quic.Connection, payload: bytes) -> bytes:
    stream = await conn.open_stream_sync()
    reader = asyncio.create_task(stream.read())
    await stream.write(payload)
    await stream.close()
    return await reader


@pytest.mark.parametrize("echo_listener", HOSTS, indirect=True)
async def test_handshake_and_echo(echo_listener: quic.Listener) -> None:
    host = echo_listener.local_addr[0]
    async with asyncio.timeout(10):
        conn = await quic.dial_addr(url(echo_listener, host), client_tls())
        state = conn.connection_state()
        assert state.handshake_complete and state.alpn == "TEST" and state.version == VERSION_1
        assert conn.remote_addr[1] == echo_listener.local_addr[1]
        payload = os.urandom(200_000)
        assert await roundtrip(conn, payload) == payload
        stats = conn.stats()
        assert stats["smoothed_rtt"] is not None and stats["bytes_sent"] > 200_000
        assert stats["bytes_received"] > 200_000 and stats["datagrams_received"] > 100
        conn.close()
        await conn.wait_closed()


async def test_transfer_2mb_each_way(echo_listener: quic.Listener) -> None:
    async with asyncio.timeout(30):
        conn = await quic.dial_addr(url(echo_listener), client_tls())
        payload = os.urandom(2_000_000)
        assert await roundtrip(conn, payload) == payload
        conn.close()


@pytest.mark.slow
async def test_transfer_50mb_each_way(echo_listener: quic.Listener) -> None:
    async with asyncio.timeout(280):
        conn = await quic.dial_addr(url(echo_listener), client_tls())
        payload = os.urandom(50_000_000)
        assert await roundtrip(conn, payload) == payload
        conn.close()


async def test_1000_concurrent_streams(echo_listener: quic.Listener) -> None:
    async with asyncio.timeout(60):
        conn = await quic.dial_addr(url(echo_listener), client_tls())
        payloads = [os.urandom(100 + i) for i in range(1000)]
        results = await asyncio.gather(*(roundtrip(conn, p) for p in payloads))
        assert results == payloads
        conn.close()


async def test_open_stream_limit_and_sync(server_tls: quic.TLSConfig) -> None:
    config = quic.Config(max_incoming_streams=2)
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls, config) as listener:
        accepted: list[quic.Stream] = []

        async def server() -> None:
            conn = await listener.accept()
            while True:
                stream = await conn.accept_stream()
                accepted.append(stream)
                assert await stream.read() == b"x"
                await stream.close()

        task = asyncio.create_task(server())
        conn = await quic.dial_addr(url(listener), client_tls())
        streams = [conn.open_stream(), conn.open_stream()]
        with pytest.raises(quic.StreamLimitReachedError):
            conn.open_stream()
        for s in streams:
            await s.write(b"x")
            await s.close()
            assert await s.read() == b""
        # the peer's MAX_STREAMS grows as streams complete: open_stream_sync waits for it
        third = await conn.open_stream_sync()
        await third.write(b"x")
        await third.close()
        assert await third.read() == b""
        assert len(accepted) == 3
        conn.close()
        task.cancel()


async def test_datagram_round_trip(server_tls: quic.TLSConfig) -> None:
    config = quic.Config(enable_datagrams=True)
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls, config) as listener:

        async def server() -> None:
            conn = await listener.accept()
            for _ in range(3):
                data = await conn.receive_datagram()
                conn.send_datagram(data.upper())

        task = asyncio.create_task(server())
        conn = await quic.dial_addr(url(listener), client_tls(), config)
        for word in (b"one", b"two", b"three"):
            conn.send_datagram(word)
            assert await conn.receive_datagram() == word.upper()
        # RFC 9221 §5: a datagram must fit in one packet
        with pytest.raises(quic.DatagramTooLargeError):
            conn.send_datagram(b"x" * 70000)
        await task
        conn.close()


async def test_graceful_close_carries_code_and_reason(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls())
        server_conn = await accept
        pending = asyncio.create_task(server_conn.accept_stream())
        await asyncio.sleep(0.05)
        conn.close(42, "bye")
        with pytest.raises(quic.ApplicationError) as info:
            await pending
        assert (info.value.code, info.value.reason, info.value.remote) == (42, "bye", True)
        await server_conn.wait_closed()
        await conn.wait_closed()
        assert isinstance(conn.error, quic.ApplicationError) and not conn.error.remote
        with pytest.raises(quic.ApplicationError):
            conn.open_stream()


async def test_stream_reset_and_stop_sending(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls())
        server_conn = await accept
        stream = conn.open_stream()
        await stream.write(b"hello")
        peer_stream = await server_conn.accept_stream()
        assert await peer_stream.readexactly(5) == b"hello"
        stream.cancel_write(7)
        with pytest.raises(quic.StreamError) as info:
            await peer_stream.read(10)
        assert (info.value.code, info.value.remote) == (7, True)
        # STOP_SENDING from the server: the client's writes fail with the code
        peer_stream.cancel_read(9)
        second = conn.open_stream()
        await second.write(b"a")
        peer_second = await server_conn.accept_stream()
        peer_second.cancel_read(9)
        with pytest.raises(quic.StreamError) as info2:
            for _ in range(100):
                await second.write(b"b" * 1000)
                await asyncio.sleep(0.01)
        assert info2.value.code == 9 and info2.value.remote
        conn.close()


async def test_cancelled_read_and_accept_lose_nothing(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        accept = asyncio.create_task(listener.accept())
        await asyncio.sleep(0)
        accept.cancel()
        conn = await quic.dial_addr(url(listener), client_tls())
        server_conn = await listener.accept()  # the cancelled accept did not take it
        waiting = asyncio.create_task(server_conn.accept_stream())
        await asyncio.sleep(0.01)
        waiting.cancel()
        stream = conn.open_stream()
        await stream.write(b"a")
        peer = await server_conn.accept_stream()
        assert await peer.read(100) == b"a"
        read = asyncio.create_task(peer.read(100))
        await asyncio.sleep(0.01)
        assert not read.done()  # waiting for data
        read.cancel()
        await stream.write(b"data")
        await stream.close()
        assert await peer.read() == b"data"
        conn.close()


async def test_asyncio_stream_adapter(echo_listener: quic.Listener) -> None:
    async with asyncio.timeout(10):
        conn = await quic.dial_addr(url(echo_listener), client_tls())
        reader, writer = await quic.open_asyncio_streams(conn.open_stream())
        writer.write(b"line one\nline two\n")
        await writer.drain()
        assert await reader.readline() == b"line one\n"
        writer.write_eof()
        assert await reader.read() == b"line two\n"
        assert reader.at_eof()
        assert writer.get_extra_info("peername")[1] == echo_listener.local_addr[1]
        writer.close()
        await writer.wait_closed()
        conn.close()


async def test_idle_timeout(server_tls: quic.TLSConfig) -> None:
    config = quic.Config(max_idle_timeout=0.5)
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls, config) as listener:
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls(), config)
        server_conn = await accept
        loop = asyncio.get_running_loop()
        start = loop.time()
        await conn.wait_closed()
        elapsed = loop.time() - start
        assert isinstance(conn.error, quic.IdleTimeoutError)
        assert 0.4 < elapsed < 3.0
        await server_conn.wait_closed()
        assert isinstance(server_conn.error, quic.IdleTimeoutError)


async def test_retry_forced(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(10),
        await quic.listen_addr(
            "127.0.0.1:0", server_tls, verify_source_address=lambda addr: True
        ) as listener,
    ):
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls())
        await accept
        # one Retry per datagram of the client's first flight (a post-quantum ClientHello spans two)
        assert listener.stats().retries_sent >= 1
        payload = b"after retry"
        server_conn = accept.result()
        stream = conn.open_stream()
        await stream.write(payload)
        await stream.close()
        assert await (await server_conn.accept_stream()).read() == payload
        conn.close()


async def test_new_token_skips_retry_on_reconnect(server_tls: quic.TLSConfig) -> None:
    store = quic.LRUTokenStore()
    config = quic.Config(token_store=store)
    async with (
        asyncio.timeout(10),
        await quic.listen_addr(
            "127.0.0.1:0", server_tls, verify_source_address=lambda addr: True
        ) as listener,
    ):
        first = await quic.dial_addr(url(listener), client_tls(), config)
        await listener.accept()
        for _ in range(50):  # NEW_TOKEN follows HANDSHAKE_DONE
            if len(store):
                break
            await asyncio.sleep(0.01)
        assert len(store) == 1
        first.close()
        retries = listener.stats().retries_sent
        assert retries >= 1
        second = await quic.dial_addr(url(listener), client_tls(), config)
        await listener.accept()
        # the token from NEW_TOKEN validated the address (RFC 9000 §8.1.3): no Retry this time
        assert listener.stats().retries_sent == retries
        assert len(store) <= 1
        second.close()


async def test_version_negotiation_failure(server_tls: quic.TLSConfig) -> None:
    only_v1 = quic.Config(versions=(VERSION_1,))
    only_v2 = quic.Config(versions=(VERSION_2,))
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls, only_v1) as listener:
        with pytest.raises(quic.VersionNegotiationError) as info:
            await quic.dial_addr(url(listener), client_tls(), only_v2)
        assert info.value.theirs[:1] == [VERSION_1]
        assert listener.stats().version_negotiations_sent >= 1


async def test_version_2(server_tls: quic.TLSConfig) -> None:
    config = quic.Config(versions=(VERSION_2, VERSION_1))
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls, config) as listener:
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls(), config)
        assert conn.connection_state().version == VERSION_2
        await accept
        conn.close()


@pytest.mark.parametrize("shared", [False, True], ids=["single-use-dial", "shared-transport"])
async def test_stateless_reset_after_server_restart(server_tls: quic.TLSConfig, shared: bool) -> None:
    key = os.urandom(32)
    async with asyncio.timeout(10):
        first = await quic.listen_addr("127.0.0.1:0", server_tls, stateless_reset_key=key)
        port = first.local_addr[1]
        accept = asyncio.create_task(first.accept())
        # single-use dial: zero-length client CIDs route everything to the connection; a shared
        # Transport (4-byte CIDs) cannot route the reset's random DCID and asks its clients.
        client_transport = quic.Transport("127.0.0.1:0") if shared else None
        if client_transport is not None:
            conn = await client_transport.dial(f"127.0.0.1:{port}", client_tls())
        else:
            conn = await quic.dial_addr(f"127.0.0.1:{port}", client_tls())
        await accept
        # a crash: the server's state vanishes without a CONNECTION_CLOSE leaving the host
        first.transport.packet_conn.write_batch = lambda queue: (queue.clear(), True)[1]  # type: ignore[method-assign]
        first.close()
        second = await quic.listen_addr(f"127.0.0.1:{port}", server_tls, stateless_reset_key=key)
        try:
            stream = conn.open_stream()
            await stream.write(b"x" * 100)
            await conn.wait_closed()
            # RFC 9000 §10.3.1: the token (HMAC of the key and the CID) ends the connection
            assert isinstance(conn.error, quic.StatelessResetError)
            assert second.stats().stateless_resets_sent >= 1
        finally:
            second.close()
            if client_transport is not None:
                client_transport.close()


async def echo_recording_0rtt(listener: quic.EarlyListener, results: list[tuple[bytes, bool]]) -> None:
    """Echo the first stream of every connection; record (data, used 0-RTT) once the handshake is done."""
    async for conn in listener:
        stream = await conn.accept_stream()
        data = await stream.read()
        await conn.wait_handshake()
        results.append((data, conn.connection_state().used_0rtt))
        await stream.write(data)
        await stream.close()


async def echo_once(conn: quic.Connection, payload: bytes) -> bytes:
    stream = conn.open_stream()
    await stream.write(payload)
    await stream.close()
    return await stream.read()


async def test_resumption_and_0rtt(server_tls: quic.TLSConfig) -> None:
    config = quic.Config(allow_0rtt=True)
    async with (
        asyncio.timeout(15),
        await quic.listen_addr_early("127.0.0.1:0", server_tls, config) as listener,
    ):
        received: list[tuple[bytes, bool]] = []
        task = asyncio.create_task(echo_recording_0rtt(listener, received))
        tls = client_tls(session_ticket_store=quic.MemorySessionTicketStore())
        first = await quic.dial_addr(url(listener), tls)
        assert await echo_once(first, b"one") == b"one"
        assert not first.connection_state().session_resumed
        first.close()

        second = await quic.dial_addr_early(url(listener), tls)
        assert not second.handshake_complete  # returned before the handshake: 0-RTT is possible
        stream = second.open_stream()
        await stream.write(b"early")
        await stream.close()
        assert await stream.read() == b"early"
        await second.wait_handshake()
        state = second.connection_state()
        assert state.session_resumed and state.used_0rtt
        assert received == [(b"one", False), (b"early", True)]
        second.close()
        task.cancel()


async def test_accept_queue_overflow_refuses(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(30), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        conns = [await quic.dial_addr(url(listener), client_tls()) for _ in range(33)]
        # the 33rd handshake completed (its dial succeeded), then it was refused
        last = conns[-1]
        await last.wait_closed()
        assert isinstance(last.error, quic.TransportError)
        assert last.error.code == quic.TransportErrorCode.CONNECTION_REFUSED and last.error.remote
        assert listener.stats().refused == 1
        assert all(c.error is None for c in conns[:32])
        for _ in range(32):
            await listener.accept()
        for c in conns[:32]:
            c.close()


async def test_receive_queue_drops_under_initial_flood(server_tls: quic.TLSConfig) -> None:
    tracer = DropTracer()
    async with (
        asyncio.timeout(60),
        await quic.listen_addr("127.0.0.1:0", server_tls, tracer=tracer) as listener,
    ):
        from quicsilver.wire.header import PacketType, build_long_header

        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        try:
            for _ in range(4000):
                buf = bytearray()
                build_long_header(
                    buf, VERSION_1, PacketType.INITIAL, os.urandom(8), b"", b"", 1200 - 18 + 2, 0, 2
                )
                buf += os.urandom(1200 - len(buf))
                flood.sendto(bytes(buf), listener.local_addr)
        finally:
            flood.close()
        # the server keeps serving while (and after) it works off the flood
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls())
        await accept
        assert listener.stats().dropped_dos > 0
        assert any(reason == DropReason.DOS_PREVENTION for _, _, reason in tracer.dropped)
        conn.close()


async def test_dial_nobody_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives and never answers
        config = quic.Config(handshake_idle_timeout=0.3)
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.timeout(10):
            with pytest.raises(quic.HandshakeTimeoutError):
                await quic.dial_addr(f"127.0.0.1:{silent.getsockname()[1]}", client_tls(), config)
        # RFC 9000 §10.1 / quic-go: the handshake must complete within 2 * handshake_idle_timeout
        assert loop.time() - start < 5.0


async def test_cancelled_dial_releases_its_socket() -> None:
    from quicsilver.multiplexer import registered

    before = registered()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        dial = asyncio.create_task(quic.dial_addr(f"127.0.0.1:{silent.getsockname()[1]}", client_tls()))
        await asyncio.sleep(0.05)
        assert registered() == before + 1
        dial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dial
        assert registered() == before


async def test_a_core_bug_costs_one_connection(echo_listener: quic.Listener) -> None:
    async with asyncio.timeout(10):
        broken = await quic.dial_addr(url(echo_listener), client_tls())
        healthy = await quic.dial_addr(url(echo_listener), client_tls())

        class BuggyCore:
            """The real core, except that sending raises (the core may be compiled: wrap, don't patch)."""

            def __init__(self, core: Any) -> None:
                self._inner = core

            def __getattr__(self, name: str) -> Any:
                return getattr(self._inner, name)

            def datagrams_to_send_ecn(self, now: float) -> list[tuple[bytes, Any, int]]:
                raise RuntimeError("bug")

        broken._core = BuggyCore(broken._core)  # type: ignore[assignment]
        stream = broken.open_stream()
        with pytest.raises(quic.TransportError) as info:
            await stream.write(b"x")
            await stream.read()
        assert info.value.code == quic.TransportErrorCode.INTERNAL_ERROR and not info.value.remote
        assert await roundtrip(healthy, b"still fine") == b"still fine"
        healthy.close()


async def test_finished_streams_are_released(echo_listener: quic.Listener) -> None:
    async with asyncio.timeout(30):
        conn = await quic.dial_addr(url(echo_listener), client_tls())
        for i in range(300):  # more than max_incoming_streams: MAX_STREAMS is re-granted as they finish
            assert await roundtrip(conn, b"%d" % i) == b"%d" % i
        assert conn.open_stream_count == 0
        conn.close()


async def test_handshake_failures_surface_at_dial(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        # RFC 9001 §8.1: no common application protocol is the no_application_protocol alert (0x178)
        with pytest.raises(quic.TransportError) as info:
            await quic.dial_addr(url(listener), quic.TLSConfig(alpn=["other"], verify=False))
        assert info.value.code == 0x100 + 120 and info.value.remote
        # a self-signed certificate fails verification on our side (a CRYPTO_ERROR we raise)
        with pytest.raises(quic.TransportError) as info2:
            await quic.dial_addr(url(listener), quic.TLSConfig(alpn=["TEST"], server_name="localhost"))
        assert 0x100 <= info2.value.code <= 0x1FF and not info2.value.remote
        # the listener is unaffected
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls())
        await accept
        conn.close()


class ReorderingProxy(asyncio.DatagramProtocol):
    """A UDP relay for one client that holds back the client's Initial datagrams for ``delay`` seconds,
    so 0-RTT packets sent right after them reach the server first."""

    def __init__(self, server: tuple[str, int], delay: float) -> None:
        self.server = server
        self.delay = delay
        self.client: Any = None
        self.transport: asyncio.DatagramTransport | None = None
        self.held = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        if addr[:2] == self.server:
            self.transport.sendto(data, self.client)
            return
        self.client = addr
        is_initial = data[0] & 0xB0 == 0x80  # long header, v1 type bits 00 (RFC 9000 §17.2)
        if is_initial:
            self.held += 1
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, data, self.server)
        else:
            self.transport.sendto(data, self.server)


async def test_0rtt_arriving_before_its_initial_is_buffered(server_tls: quic.TLSConfig) -> None:
    config = quic.Config(allow_0rtt=True)
    async with (
        asyncio.timeout(15),
        await quic.listen_addr_early("127.0.0.1:0", server_tls, config) as listener,
    ):
        results: list[tuple[bytes, bool]] = []
        task = asyncio.create_task(echo_recording_0rtt(listener, results))
        tls = client_tls(session_ticket_store=quic.MemorySessionTicketStore())
        first = await quic.dial_addr(url(listener), tls)
        assert await echo_once(first, b"ticket please") == b"ticket please"
        first.close()

        loop = asyncio.get_running_loop()
        proxy_transport, proxy = await loop.create_datagram_endpoint(
            lambda: ReorderingProxy(("127.0.0.1", listener.local_addr[1]), 0.05), local_addr=("127.0.0.1", 0)
        )
        try:
            proxy_port = proxy_transport.get_extra_info("sockname")[1]
            second = await quic.dial_addr_early(f"127.0.0.1:{proxy_port}", tls)
            stream = second.open_stream()
            await stream.write(b"zero rtt")
            await stream.close()
            assert await stream.read() == b"zero rtt"
            assert proxy.held >= 1
            assert results[-1] == (b"zero rtt", True)
            second.close()
        finally:
            proxy_transport.close()
            task.cancel()


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
async def test_dual_stack_wildcard_listener(server_tls: quic.TLSConfig) -> None:
    # ":port" binds the dual-stack wildcard (as Go's "udp"): IPv4 peers arrive v4-mapped, and replies
    # leave from the address they were sent to (IPV6_PKTINFO / IP_PKTINFO)
    async with (
        asyncio.timeout(15),
        await quic.listen_addr(":0", server_tls, verify_source_address=lambda addr: True) as listener,
    ):
        assert listener.transport.packet_conn.caps.pktinfo
        port = listener.local_addr[1]
        for host in ("127.0.0.1", "::1"):
            accept = asyncio.create_task(listener.accept())
            conn = await quic.dial_addr(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", client_tls())
            server_conn = await accept
            assert host in str(server_conn.remote_addr[0])
            stream = conn.open_stream()
            await stream.write(b"hi")
            await stream.close()
            assert await (await server_conn.accept_stream()).read() == b"hi"
            conn.close()
        assert listener.stats().retries_sent >= 2  # Retry tokens validated for both families


async def test_write_backpressure(server_tls: quic.TLSConfig) -> None:
    # a reader that does not read: flow control stops the sender, and write() waits instead of
    # buffering without bound (DESIGN.md §4, unlike aioquic)
    config = quic.Config(initial_stream_receive_window=64 * 1024, max_stream_receive_window=64 * 1024)
    async with asyncio.timeout(30), await quic.listen_addr("127.0.0.1:0", server_tls, config) as listener:
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls())
        server_conn = await accept
        stream = conn.open_stream()
        payload = os.urandom(3_000_000)

        async def send() -> None:
            await stream.write(payload)
            await stream.close()

        writer = asyncio.create_task(send())
        peer = await server_conn.accept_stream()
        await asyncio.sleep(0.5)
        assert not writer.done()  # blocked: the peer's window and our send buffer are full
        assert await peer.read() == payload
        await writer
        conn.close()


async def test_default_policy_retries_under_load(server_tls: quic.TLSConfig) -> None:
    # no verify_source_address: Retry once more than half of the handshake slots are in use
    from quicsilver.core.connection import QuicConnection
    from quicsilver.wire.header import parse_retry

    async with (
        asyncio.timeout(20),
        await quic.listen_addr("127.0.0.1:0", server_tls, max_unvalidated_handshakes=2) as listener,
    ):
        loop = asyncio.get_running_loop()
        stalled = []
        for _ in range(3):  # clients that send their first flight and never answer
            core = QuicConnection(quic.Config(), client_tls(), is_client=True, server_name="localhost")
            core.connect(listener.local_addr, 0.0)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            stalled.append(sock)
            for datagram, _ in core.datagrams_to_send(0.0):
                sock.sendto(datagram, listener.local_addr)
            await asyncio.sleep(0.1)
        try:
            # two handshakes in flight (> 2 // 2): the third client was asked to prove its address
            retry = await asyncio.wait_for(loop.sock_recv(stalled[2], 2048), 2)
            assert parse_retry(retry)[3]  # a token
            assert listener.stats().retries_sent >= 1
            # a real client under the same load gets a Retry too, and completes through it
            before = listener.stats().retries_sent
            accept = asyncio.create_task(listener.accept())
            conn = await quic.dial_addr(url(listener), client_tls())
            await accept
            assert listener.stats().retries_sent > before
            conn.close()
        finally:
            for sock in stalled:
                sock.close()


async def test_hostile_datagrams_do_not_disturb(server_tls: quic.TLSConfig) -> None:
    """Random and half-valid datagrams, also carrying a live connection's CID, never raise out of the
    receive path (no exception reaches the event loop) and the connection keeps working."""
    import random

    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    rng = random.Random(9000)
    try:
        async with asyncio.timeout(30), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
            accept = asyncio.create_task(listener.accept())
            conn = await quic.dial_addr(url(listener), client_tls())
            server_conn = await accept
            live_cids = list(server_conn._cids)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
                for i in range(1500):
                    size = rng.choice([1, 2, 5, 7, 21, 43, 100, 1199, 1200, 1400])
                    body = bytearray(rng.randbytes(size))
                    kind = i % 4
                    if kind == 1 and size > 5:  # short header to a live CID
                        body[0] = 0x40 | (body[0] & 0x3F)
                        cid = rng.choice(live_cids)
                        body[1 : 1 + len(cid)] = cid
                    elif kind == 2 and size > 7:  # long header, v1, random lengths
                        body[0] = 0xC0 | (body[0] & 0x3F)
                        body[1:5] = VERSION_1.to_bytes(4, "big")
                    elif kind == 3 and size > 6:  # long header, v2, DCID length of a live CID
                        body[0] = 0xC0 | (body[0] & 0x3F)
                        body[1:5] = VERSION_2.to_bytes(4, "big")
                        body[5] = len(live_cids[0])
                    attacker.sendto(bytes(body[:size]), listener.local_addr)
                    if i % 100 == 0:
                        await asyncio.sleep(0.005)
            await asyncio.sleep(0.3)
            stream = conn.open_stream()
            await stream.write(b"still here")
            await stream.close()
            assert await (await server_conn.accept_stream()).read() == b"still here"
            conn.close()
    finally:
        loop.set_exception_handler(None)
    assert errors == []


async def test_one_transport_listens_and_dials(server_tls: quic.TLSConfig) -> None:
    # quic-go's Transport serves both roles on one socket (peer-to-peer): A and B each listen and
    # dial the other; every connection is routed by its connection IDs
    async with asyncio.timeout(20), quic.Transport("127.0.0.1:0") as a, quic.Transport("127.0.0.1:0") as b:
        listen_a, listen_b = a.listen(server_tls), b.listen(server_tls)
        a_port, b_port = a.local_addr[1], b.local_addr[1]
        accepts = [asyncio.create_task(listen_a.accept()), asyncio.create_task(listen_b.accept())]
        a_to_b = [await a.dial(f"127.0.0.1:{b_port}", client_tls()) for _ in range(2)]
        b_to_a = await b.dial(f"127.0.0.1:{a_port}", client_tls())
        at_a, at_b = await asyncio.gather(*accepts)
        assert at_a.remote_addr[1] == b_port and at_b.remote_addr[1] == a_port
        await listen_b.accept()
        for client in [*a_to_b, b_to_a]:
            stream = client.open_stream()
            await stream.write(b"p2p")
            await stream.close()
        assert await (await at_a.accept_stream()).read() == b"p2p"
        assert await (await at_b.accept_stream()).read() == b"p2p"
        assert a.local_addr == at_a.local_addr == a_to_b[0].local_addr


async def test_asyncio_writer_close_flushes_first(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls())
        server_conn = await accept
        _, writer = await quic.open_asyncio_streams(conn.open_stream(), limit=1024)
        payload = os.urandom(200_000)
        writer.write(payload)  # far beyond the 4 KiB high-water mark: pending in the adapter
        writer.close()  # asyncio semantics: the pending data, the FIN, then connection_lost
        await writer.wait_closed()
        assert await (await server_conn.accept_stream()).read() == payload
        conn.close()


async def test_closed_connection_answers_with_its_close_then_forgets(
    server_tls: quic.TLSConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quicsilver import transport as transport_module

    # long enough for the four probes below on a loaded machine, short enough to see it end
    monkeypatch.setattr(transport_module, "CLOSED_CID_LINGER", 1.5)
    # No PMTUD probes (nor the client's ACKs of them): a packet arriving after the close would take
    # a place in the 1st, 2nd, 4th ... count that the prober's packets are meant to fill.
    no_probes = quic.Config(disable_path_mtu_discovery=True)
    async with (
        asyncio.timeout(15),
        await quic.listen_addr("127.0.0.1:0", server_tls, no_probes) as listener,
        quic.Transport("127.0.0.1:0") as client_transport,
    ):
        accept = asyncio.create_task(listener.accept())
        conn = await client_transport.dial(url(listener), client_tls(), no_probes)
        server_conn = await accept
        cid_len = listener.transport.connection_id_length
        server_cid = next(cid for cid in server_conn._cids if len(cid) == cid_len)
        server_conn.close(7, "bye")
        await conn.wait_closed()
        await asyncio.sleep(0.05)
        before = client_transport.stats().datagrams_received

        def replays() -> int:
            return client_transport.stats().datagrams_received - before

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as prober:
            # RFC 9000 §10.2.1: the CONNECTION_CLOSE again, at a decreasing rate: 1st, 2nd and 4th
            for probe, expected in ((1, 1), (2, 2), (3, 2), (4, 3)):
                prober.sendto(bytes([0x41]) + server_cid + os.urandom(60), listener.local_addr)
                await eventually(lambda n=expected: replays() >= n)
                if probe == 3:
                    await asyncio.sleep(0.05)
                assert replays() == expected
            # once the linger is over the CID is unknown: a stateless reset answers
            resets = listener.stats().stateless_resets_sent
            deadline = asyncio.get_running_loop().time() + 5
            while listener.stats().stateless_resets_sent == resets:
                assert asyncio.get_running_loop().time() < deadline
                prober.sendto(bytes([0x41]) + server_cid + os.urandom(60), listener.local_addr)
                await asyncio.sleep(0.05)


def test_runs_on_uvloop(server_tls: quic.TLSConfig) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> bool:
        async with asyncio.timeout(20), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:

            async def server() -> None:
                conn = await listener.accept()
                stream = await conn.accept_stream()
                await stream.write(await stream.read())
                await stream.close()

            task = asyncio.create_task(server())
            conn = await quic.dial_addr(url(listener), client_tls())
            payload = os.urandom(1_000_000)
            ok = await roundtrip(conn, payload) == payload
            await task
            conn.close()
            return ok

    assert uvloop.run(main())


async def test_listener_close_ends_accept_and_iteration(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(10):
        listener = await quic.listen_addr("127.0.0.1:0", server_tls)
        pending = asyncio.create_task(listener.accept())
        iterated: list[quic.Connection] = []

        async def iterate() -> None:
            async for conn in listener:
                iterated.append(conn)

        loop_task = asyncio.create_task(iterate())
        await asyncio.sleep(0.01)
        listener.close()
        with pytest.raises(quic.ServerClosedError):
            await pending
        await loop_task  # async for ends cleanly
        assert iterated == [] and listener.closed
        # single-use: the socket went with the listener
        assert listener.transport.closed and listener.transport.packet_conn.sock.fileno() == -1


async def test_early_listener_sends_half_rtt_data(server_tls: quic.TLSConfig) -> None:
    # EarlyListener returns the connection before the handshake completes; data the server sends
    # then is 0.5-RTT data (RFC 9001 §4.1.1), readable by the client right after its handshake
    async with asyncio.timeout(10), await quic.listen_addr_early("127.0.0.1:0", server_tls) as listener:
        handshake_done_at_accept: list[bool] = []

        async def server() -> None:
            conn = await listener.accept()
            handshake_done_at_accept.append(conn.handshake_complete)
            stream = conn.open_uni_stream()
            await stream.write(b"half-rtt hello")
            await stream.close()

        task = asyncio.create_task(server())
        conn = await quic.dial_addr(url(listener), client_tls())
        uni = await conn.accept_uni_stream()
        assert await uni.read() == b"half-rtt hello"
        await task
        assert handshake_done_at_accept == [False]
        conn.close()


async def test_ecn_marks_reach_the_peer(server_tls: quic.TLSConfig) -> None:
    # RFC 9000 §13.4: 1-RTT packets leave marked ECT(0) (the core's codepoint, through IP_TOS) and the
    # receiver reads the mark from the IP_RECVTOS control message
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        marks: list[int] = []
        pconn = listener.transport.packet_conn
        real_read = pconn.read_batch

        def recording_read() -> Any:
            batch = real_read()
            marks.extend(ecn for _, _, ecn, _ in batch)
            return batch

        pconn.read_batch = recording_read  # type: ignore[method-assign]
        accept = asyncio.create_task(listener.accept())
        conn = await quic.dial_addr(url(listener), client_tls())
        server_conn = await accept
        stream = conn.open_stream()
        await stream.write(os.urandom(100_000))
        await stream.close()
        assert len(await (await server_conn.accept_stream()).read()) == 100_000
        assert 0b10 in marks  # ECT(0)
        assert 0b11 not in marks  # no CE on loopback
        conn.close()


class RebindingRelay:
    """A UDP relay between one client and the server that changes its server-facing source port
    after ``switch_after`` client datagrams (a NAT rebinding, RFC 9000 §9.3)."""

    def __init__(self, server: tuple[str, int], switch_after: int) -> None:
        self.server = server
        self.switch_after = switch_after
        self.forwarded = 0
        self.client: Any = None
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.front.setblocking(False)
        self.backs: list[socket.socket] = []
        self._new_back()
        loop = asyncio.get_running_loop()
        loop.add_reader(self.front.fileno(), self._from_client)

    def _new_back(self) -> None:
        back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        back.bind(("127.0.0.1", 0))
        back.setblocking(False)
        self.backs.append(back)
        asyncio.get_running_loop().add_reader(back.fileno(), self._from_server, back)

    def _from_client(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                data, self.client = self.front.recvfrom(65535)
                self.forwarded += 1
                if self.forwarded == self.switch_after:
                    self._new_back()
                self.backs[-1].sendto(data, self.server)

    def _from_server(self, back: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                data = back.recv(65535)
                self.front.sendto(data, self.client)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in [self.front, *self.backs]:
            loop.remove_reader(sock.fileno())
            sock.close()


async def test_nat_rebinding_mid_transfer(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(30), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        relay = RebindingRelay(("127.0.0.1", listener.local_addr[1]), switch_after=40)
        try:
            accept = asyncio.create_task(listener.accept())
            conn = await quic.dial_addr(f"127.0.0.1:{relay.front.getsockname()[1]}", client_tls())
            server_conn = await accept
            payload = os.urandom(1_000_000)
            stream = conn.open_stream()
            reader = asyncio.create_task(server_conn.accept_stream())
            await stream.write(payload)
            await stream.close()
            peer = await reader
            echoed = await peer.read()
            assert echoed == payload
            await peer.write(b"reply after rebinding")
            await peer.close()
            assert await stream.read() == b"reply after rebinding"
            assert len(relay.backs) == 2 and relay.forwarded > 40
            # the server's connection follows the client to its new address (RFC 9000 §9.3)
            assert server_conn.remote_addr[1] == relay.backs[-1].getsockname()[1]
            conn.close()
        finally:
            relay.close()


@pytest.mark.parametrize("shared", [False, True], ids=["single-use-dial", "shared-transport"])
async def test_client_migrates_to_a_new_socket(server_tls: quic.TLSConfig, shared: bool) -> None:
    async with asyncio.timeout(20), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        task = asyncio.create_task(echo_server(listener))
        first_transport = quic.Transport("127.0.0.1:0") if shared else None
        try:
            if first_transport is not None:
                conn = await first_transport.dial(url(listener), client_tls())
            else:
                conn = await quic.dial_addr(url(listener), client_tls())
            assert await roundtrip(conn, b"before") == b"before"  # the handshake is confirmed by now
            old_port = conn.local_addr[1]
            old_transport = conn.transport
            conn.migrate()
            assert conn.local_addr[1] != old_port
            payload = os.urandom(300_000)
            assert await roundtrip(conn, payload) == payload  # over the new path
            assert not old_transport.closed  # late packets may still arrive there
            conn.close()
            assert conn.transport.closed  # the Transport migrate() made goes with the connection
            assert old_transport.closed == (not shared)
        finally:
            listener.close()
            await task
            if first_transport is not None:
                first_transport.close()


async def test_a_two_datagram_client_hello_gets_one_answer(server_tls: quic.TLSConfig) -> None:
    # The ClientHello with its post-quantum key share fills two datagrams, which reach the server in
    # one receive batch: the server answers once both are processed, with its Initial + Handshake
    # flight, not first with an ACK-only Initial (a datagram and a wake-up of the client wasted).
    sent: list[tuple[str, list[str]]] = []

    class Recorder(ConnectionTracer):
        def sent_packet(self, packet_type: str, pn: int, size: int, frames: Any) -> None:
            sent.append((packet_type, [type(frame).__name__ for frame in frames]))

    config = quic.Config(tracer=lambda perspective, odcid: Recorder())
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls, config) as listener:
        conn = await quic.dial_addr(f"127.0.0.1:{listener.local_addr[1]}", client_tls())
        conn.close()
    first_type, first_frames = sent[0]
    assert first_type == "INITIAL" and "CryptoFrame" in first_frames, sent[:3]


async def test_ended_connections_are_freed_at_once(server_tls: quic.TLSConfig) -> None:
    """After a connection ends, neither side keeps it (its state, its core) alive: not the server's
    routes for the 5 s its connection IDs linger (the original DCID, retired after the handshake,
    among them), not a dial's own Transport, and not a cycle through the error raised into the
    application (the collector is off: reference counting alone frees them)."""
    gc.collect()
    gc.disable()
    try:
        refs, transport = await _three_ended_connections(server_tls)
        await asyncio.sleep(0.02)  # callbacks already queued (a scheduled flush) run
        assert [ref() for ref in refs] == [None] * len(refs)
        assert not any(isinstance(h, quic.Connection) for h in transport._handlers.values())
    finally:
        gc.enable()


async def _three_ended_connections(
    server_tls: quic.TLSConfig,
) -> tuple[list[weakref.ref[quic.Connection]], Any]:
    refs: list[weakref.ref[quic.Connection]] = []
    async with asyncio.timeout(10), await quic.listen_addr("127.0.0.1:0", server_tls) as listener:
        for _ in range(3):
            accept = asyncio.create_task(listener.accept())
            conn = await quic.dial_addr(url(listener), client_tls())
            server_conn = await accept
            await asyncio.sleep(0.05)  # HANDSHAKE_DONE, NEW_CONNECTION_IDs, the original DCID retired
            conn.close(0, "done")
            # awaited here, not through a task or pytest.raises: either would keep the exception,
            # and with it the frames of this coroutine, alive
            try:
                await server_conn.accept_stream()
                raise AssertionError("accept_stream returned after the peer closed")
            except quic.ApplicationError as exc:
                assert exc.remote and exc is not server_conn.error  # a copy of the kept error
            await server_conn.wait_closed()
            await conn.wait_closed()
            refs += [weakref.ref(conn), weakref.ref(server_conn)]
        transport = listener.transport
        await asyncio.sleep(0.02)
        return refs, transport


async def test_raising_a_closed_connections_error_again_does_not_stack_tracebacks(
    echo_listener: quic.Listener,
) -> None:
    conn = await quic.dial_addr(url(echo_listener), client_tls())
    conn.close(0, "done")
    depths = []
    for _ in range(5):
        with pytest.raises(quic.ApplicationError) as info:
            conn.open_stream()
        tb, depth = info.value.__traceback__, 0
        while tb is not None:
            depth, tb = depth + 1, tb.tb_next
        depths.append(depth)
    assert depths == [depths[0]] * 5, depths  # each raise starts a traceback of its own
