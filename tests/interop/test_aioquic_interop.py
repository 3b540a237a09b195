"""Interop with aioquic over loopback, both directions: our client ↔ aioquic server and aioquic client ↔
our server, for the handshake, a 10 MB transfer, 100 streams, Retry, resumption, 0-RTT,
ChaCha20-only, QUIC v2, and the seed example."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import CipherSuite as AioCipherSuite
from aioquic.tls import SessionTicket
from aioquic.tls import State as TLSState

import quicsilver as quic
from quicsilver.handshake.protection import CipherSuite
from quicsilver.handshake.tls import MemorySessionTicketStore
from quicsilver.protocol import VERSION_1, VERSION_2

from .peers import PeerTicketStore, our_echo_server, stream_echo

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def server_tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])


# --- aioquic as the server ---------------------------------------------------------------------------


_handler_tasks: set[asyncio.Task[None]] = set()


def aio_echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async def echo() -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
            writer.write_eof()

    task = asyncio.ensure_future(echo())
    _handler_tasks.add(task)
    task.add_done_callback(_handler_tasks.discard)


@contextlib.asynccontextmanager
async def aioquic_server(tls: quic.TLSConfig, *, retry: bool = False, **options: Any) -> AsyncIterator[int]:
    config = QuicConfiguration(is_client=False, alpn_protocols=["TEST"], **options)
    config.certificate = tls.certificate_chain[0]
    config.private_key = tls.private_key
    store = PeerTicketStore()
    server = await serve(
        "127.0.0.1",
        0,
        configuration=config,
        retry=retry,
        stream_handler=aio_echo_handler,
        session_ticket_fetcher=store.pop,
        session_ticket_handler=store.add,
    )
    try:
        yield int(server._transport.get_extra_info("sockname")[1])
    finally:
        server.close()


def our_client_tls(**kwargs: Any) -> quic.TLSConfig:
    return quic.TLSConfig(alpn=["TEST"], verify=False, **kwargs)


async def echo_via(conn: quic.Connection, payload: bytes) -> bytes:
    stream = await conn.open_stream_sync()
    reader = asyncio.create_task(stream.read())
    await stream.write(payload)
    await stream.close()
    return await reader


async def test_our_client_handshake_and_echo(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), aioquic_server(server_tls) as port:
        conn = await quic.dial_addr(f"127.0.0.1:{port}", our_client_tls())
        state = conn.connection_state()
        assert state.alpn == "TEST" and state.version == VERSION_1
        assert await echo_via(conn, b"hello aioquic") == b"hello aioquic"
        conn.close()


async def test_our_client_10mb(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(120), aioquic_server(server_tls) as port:
        conn = await quic.dial_addr(f"127.0.0.1:{port}", our_client_tls())
        payload = os.urandom(10_000_000)
        assert await echo_via(conn, payload) == payload
        conn.close()


async def test_our_client_100_streams(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(30), aioquic_server(server_tls) as port:
        conn = await quic.dial_addr(f"127.0.0.1:{port}", our_client_tls())
        payloads = [os.urandom(1000 + i) for i in range(100)]
        assert await asyncio.gather(*(echo_via(conn, p) for p in payloads)) == payloads
        conn.close()


async def test_our_client_through_retry(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), aioquic_server(server_tls, retry=True) as port:
        conn = await quic.dial_addr(f"127.0.0.1:{port}", our_client_tls())
        assert await echo_via(conn, b"after retry") == b"after retry"
        conn.close()


async def test_our_client_chacha20_only(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), aioquic_server(server_tls) as port:
        tls = our_client_tls(cipher_suites=[CipherSuite.CHACHA20_POLY1305_SHA256])
        conn = await quic.dial_addr(f"127.0.0.1:{port}", tls)
        assert await echo_via(conn, b"chacha") == b"chacha"
        conn.close()


async def test_our_client_version_2(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), aioquic_server(server_tls) as port:
        conn = await quic.dial_addr(f"127.0.0.1:{port}", our_client_tls(), quic.Config(versions=(VERSION_2,)))
        assert conn.connection_state().version == VERSION_2
        assert await echo_via(conn, b"v2") == b"v2"
        conn.close()


async def test_our_client_resumption_and_0rtt(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20), aioquic_server(server_tls) as port:
        tls = our_client_tls(session_ticket_store=MemorySessionTicketStore())
        first = await quic.dial_addr(f"127.0.0.1:{port}", tls)
        assert await echo_via(first, b"first") == b"first"  # the ticket arrives after the handshake
        first.close()
        assert len(tls.session_ticket_store) >= 1  # type: ignore[arg-type]
        second = await quic.dial_addr_early(f"127.0.0.1:{port}", tls)
        # data written before the handshake completes travels as 0-RTT
        assert await echo_via(second, b"early") == b"early"
        await second.wait_handshake()
        state = second.connection_state()
        assert state.session_resumed
        assert state.used_0rtt
        second.close()


# --- aioquic as the client ---------------------------------------------------------------------------


def aio_client_config(**options: Any) -> QuicConfiguration:
    return QuicConfiguration(
        alpn_protocols=["TEST"], verify_mode=ssl.CERT_NONE, server_name="localhost", **options
    )


async def test_aioquic_client_handshake_and_echo(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(15),
        our_echo_server(server_tls) as (listener, _),
        connect("127.0.0.1", listener.local_addr[1], configuration=aio_client_config()) as client,
    ):
        assert await stream_echo(client, b"hello quicsilver") == b"hello quicsilver"


async def test_aioquic_client_10mb(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(120),
        our_echo_server(server_tls) as (listener, _),
        connect("127.0.0.1", listener.local_addr[1], configuration=aio_client_config()) as client,
    ):
        payload = os.urandom(10_000_000)
        assert await stream_echo(client, payload) == payload


async def test_aioquic_client_100_streams(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(30),
        our_echo_server(server_tls) as (listener, _),
        connect("127.0.0.1", listener.local_addr[1], configuration=aio_client_config()) as client,
    ):
        payloads = [os.urandom(1000 + i) for i in range(100)]
        assert await asyncio.gather(*(stream_echo(client, p) for p in payloads)) == payloads


async def test_aioquic_client_through_retry(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(15),
        our_echo_server(server_tls, verify_source_address=lambda addr: True) as (listener, _),
    ):
        async with connect("127.0.0.1", listener.local_addr[1], configuration=aio_client_config()) as client:
            assert await stream_echo(client, b"retried") == b"retried"
        assert listener.stats().retries_sent >= 1


async def test_aioquic_client_chacha20_only(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), our_echo_server(server_tls) as (listener, _):
        config = aio_client_config(cipher_suites=[AioCipherSuite.CHACHA20_POLY1305_SHA256])
        async with connect("127.0.0.1", listener.local_addr[1], configuration=config) as client:
            assert await stream_echo(client, b"chacha") == b"chacha"


async def test_aioquic_client_version_2(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), our_echo_server(server_tls) as (listener, _):
        config = aio_client_config(supported_versions=[VERSION_2])
        async with connect("127.0.0.1", listener.local_addr[1], configuration=config) as client:
            assert await stream_echo(client, b"v2") == b"v2"
            assert client._quic._version == VERSION_2


async def test_aioquic_client_resumption_and_0rtt(server_tls: quic.TLSConfig) -> None:
    config = quic.Config(allow_0rtt=True)
    async with asyncio.timeout(20), our_echo_server(server_tls, config, early=True) as (listener, _):
        tickets: list[SessionTicket] = []
        port = listener.local_addr[1]
        async with connect(
            "127.0.0.1", port, configuration=aio_client_config(), session_ticket_handler=tickets.append
        ) as client:
            assert await stream_echo(client, b"first") == b"first"
            await asyncio.sleep(0.05)
        assert tickets, "our server issued no session ticket"
        resumed = aio_client_config(session_ticket=tickets[-1])
        async with connect("127.0.0.1", port, configuration=resumed, wait_connected=False) as client:
            echoed = await stream_echo(client, b"early data")  # sent as 0-RTT
            assert echoed == b"early data"
            # (aioquic's wait_connected() never returns once the handshake finished without a waiter)
            while client._quic.tls.state != TLSState.CLIENT_POST_HANDSHAKE:
                await asyncio.sleep(0.01)
            assert client._quic.tls.session_resumed
            assert client._quic.tls.early_data_accepted


async def test_aioquic_client_against_seed_server() -> None:
    from tests.io.test_seed_example import free_udp_port, load

    seed = load("seed_server")
    port = free_udp_port()
    task = asyncio.create_task(seed.main(f"127.0.0.1:{port}"))
    try:
        async with asyncio.timeout(15):
            await asyncio.sleep(0.1)
            async with connect("127.0.0.1", port, configuration=aio_client_config()) as client:
                assert await stream_echo(client, b"seed") == b"seed"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, quic.QuicError):
            await task
