"""Interop with qh3 (an aioquic fork with a Rust QUIC core and its own TLS 1.3 stack) over loopback, both
directions: our client ↔ qh3 server and qh3 client ↔ our server, for the handshake (ALPN and the
X25519MLKEM768 key exchange), a 10 MB echo, 100 concurrent streams, resumption with 0-RTT, QUIC v2
(RFC 9369), and key updates (RFC 9001 §6) started by qh3 and by us during a transfer.

qh3 does not report the key exchange group it negotiated; the server side is the only one that creates
a key for the group it selected alone (``Context._x25519_kyber_768_private_key``), so that private
attribute is checked there, and our ``connection_state()`` is checked on both sides. qh3 has no key
phase counter either: its key updates are counted as our side saw them (``ConnectionTracer``).

Our client dials with 8-byte connection IDs: qh3 2.1.0 cannot handshake with a client whose source
connection ID is empty (allowed, RFC 9000 §5.1, §7.3), our single-use ``dial_addr`` default as quic-go's.
Its server learns the client's initial_source_connection_id from the Initial's Source Connection ID only
when that is non-empty (``QuicConnection._learn_remote_source_cid``), so it refuses our transport
parameter (TRANSPORT_PARAMETER_ERROR) and answers nothing: the dial times out. No test pins that bug
(a fixed qh3 release must not fail this suite); pass ``connection_id_length`` to dial a qh3 server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

pytest.importorskip("qh3", reason="qh3 (optional QUIC peer) is not installed")

from cryptography.hazmat.primitives import serialization
from qh3.asyncio.client import connect
from qh3.asyncio.protocol import QuicConnectionProtocol
from qh3.asyncio.server import serve
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived
from qh3.quic.packet import QuicProtocolVersion
from qh3.tls import SessionTicket, load_pem_private_key, load_pem_x509_certificates

import quicsilver as quic
from quicsilver.handshake.tls import NamedGroup
from quicsilver.protocol import VERSION_1, VERSION_2, Perspective
from quicsilver.qlog.tracer import ConnectionTracer, DropReason

from .peers import PeerTicketStore, our_echo_server, stream_echo

pytestmark = pytest.mark.interop

ALPN = "TEST"
MB10 = 10 * 1024 * 1024
KEY_UPDATE_EVERY = 100_000
"""Bytes qh3 receives between two of its key update requests. qh3's ``request_key_update()`` raises
ValueError("invalid key phase") while no packet of its current phase has been acknowledged (RFC 9001
§6.5); such a refusal is counted and retried on the next data."""


@pytest.fixture(scope="module")
def server_tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=[ALPN])


def sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


class KeyTracer(ConnectionTracer):
    """Counts the key updates our side started (``local``) and followed (``remote``), and drops."""

    def __init__(self) -> None:
        self.local = 0
        self.remote = 0
        self.generation = 0
        self.drops: Counter[tuple[str, str]] = Counter()

    def updated_key(self, generation: int, remote: bool) -> None:
        self.generation = generation
        if remote:
            self.remote += 1
        else:
            self.local += 1

    def dropped_packet(self, packet_type: str, pn: int | None, size: int, reason: str) -> None:
        self.drops[(packet_type, reason)] += 1


def traced(tracers: list[KeyTracer], **options: Any) -> quic.Config:
    def factory(perspective: Perspective, odcid: bytes) -> KeyTracer:
        tracers.append(KeyTracer())
        return tracers[-1]

    return quic.Config(tracer=factory, **options)


OUR_KEY_UPDATES = {"first_key_update_interval": 10, "key_update_interval": 50}
"""Our side starts an update after 10 packets of the 1-RTT phase, then every 50."""
NO_KEY_UPDATES = {"first_key_update_interval": 1 << 62, "key_update_interval": 1 << 62}
"""Our side starts none (by default it starts one after 100 packets, as quic-go)."""


# --- qh3 as the server -------------------------------------------------------------------------------


class Qh3Peer(QuicConnectionProtocol):
    """qh3's side of a connection: echoes stream data (as a server) or collects it (as a client) at the
    QUIC event level, and, when ``key_updates`` is set, asks for a key update each time another
    ``KEY_UPDATE_EVERY`` bytes arrived (counting those qh3 accepted and those it refused)."""

    echo = True
    key_updates = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.since_update = 0
        self.updates_requested = 0
        self.updates_refused = 0
        self.received: dict[int, bytearray] = {}
        self.finished = asyncio.get_running_loop().create_future()
        self.error: ConnectionTerminated | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            self.since_update += len(event.data)
            if self.echo:
                self._quic.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)
            else:
                self.received.setdefault(event.stream_id, bytearray()).extend(event.data)
                if event.end_stream and not self.finished.done():
                    self.finished.set_result(event.stream_id)
            if self.key_updates and self.since_update >= KEY_UPDATE_EVERY:
                try:
                    self._quic.request_key_update()
                except ValueError:
                    # "invalid key phase": qh3 refuses while no packet of its current phase has been
                    # acknowledged (RFC 9001 §6.5); a client that only receives sends ACK-only packets,
                    # which are never acknowledged, so it sends a PING. It retries on the next data.
                    self.updates_refused += 1
                    self._quic.send_ping(0)
                else:
                    self.since_update = 0
                    self.updates_requested += 1
            self.transmit()
        elif isinstance(event, ConnectionTerminated):
            self.error = event
            if not self.finished.done():
                self.finished.set_result(None)


class Qh3KeyUpdatingPeer(Qh3Peer):
    key_updates = True


class Qh3Collector(Qh3Peer):
    echo = False


class Qh3KeyUpdatingCollector(Qh3Peer):
    echo = False
    key_updates = True


def qh3_credentials(config: QuicConfiguration, tls: quic.TLSConfig) -> None:
    """qh3 takes its own certificate and key types, loaded from PEM."""
    assert tls.private_key is not None
    pem = tls.certificate_chain[0].public_bytes(serialization.Encoding.PEM)
    config.certificate = load_pem_x509_certificates(pem)[0]
    config.private_key = load_pem_private_key(
        tls.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@contextlib.asynccontextmanager
async def qh3_server(
    tls: quic.TLSConfig, protocol: type[Qh3Peer] = Qh3Peer, **options: Any
) -> AsyncIterator[tuple[int, list[Qh3Peer]]]:
    """A qh3 echo server on a free loopback port; yields the port and its connections' protocols."""
    config = QuicConfiguration(is_client=False, alpn_protocols=[ALPN], **options)
    qh3_credentials(config, tls)
    store = PeerTicketStore()
    peers: list[Qh3Peer] = []

    def make_peer(*args: Any, **kwargs: Any) -> Qh3Peer:
        peers.append(protocol(*args, **kwargs))
        return peers[-1]

    server = await serve(
        "127.0.0.1",
        0,
        configuration=config,
        create_protocol=make_peer,
        session_ticket_fetcher=store.pop,
        session_ticket_handler=store.add,
    )
    assert server._transport is not None
    try:
        yield int(server._transport.get_extra_info("sockname")[1]), peers
    finally:
        server.close()  # type: ignore[no-untyped-call]


def our_client_tls(**kwargs: Any) -> quic.TLSConfig:
    return quic.TLSConfig(alpn=[ALPN], verify=False, **kwargs)


async def dial(
    port: int, tls: quic.TLSConfig, config: quic.Config | None = None, *, early: bool = False
) -> quic.Connection:
    """Our client, with 8-byte connection IDs: qh3 2.1.0 cannot take a client's zero-length source
    connection ID, our ``dial_addr`` default (see the module docstring)."""
    dial_addr = quic.dial_addr_early if early else quic.dial_addr
    return await dial_addr(f"127.0.0.1:{port}", tls, config, connection_id_length=8)


async def echo_via(conn: quic.Connection, payload: bytes) -> bytes:
    stream = await conn.open_stream_sync()
    reader = asyncio.create_task(stream.read())
    view = memoryview(payload)
    for i in range(0, len(payload), 65536):
        await stream.write(view[i : i + 65536])
    await stream.close()
    return await reader


def qh3_selected_hybrid(peer: Qh3Peer) -> bool:
    """Whether qh3's server side chose X25519MLKEM768 (it makes a key only for the group it selects)."""
    assert peer._quic.tls is not None
    return peer._quic.tls._x25519_kyber_768_private_key is not None


async def test_our_client_handshake_and_echo(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(10), qh3_server(server_tls) as (port, peers):
        conn = await dial(port, our_client_tls())
        state = conn.connection_state()
        assert state.handshake_complete and state.alpn == ALPN and state.version == VERSION_1
        assert state.extra["group"] == NamedGroup.X25519MLKEM768
        assert await echo_via(conn, b"hello qh3") == b"hello qh3"
        (peer,) = peers
        assert peer._quic.tls is not None and peer._quic.tls.alpn_negotiated == ALPN
        assert qh3_selected_hybrid(peer)
        assert peer._quic.get_cipher() is not None
        assert int(peer._quic.get_cipher()) == state.extra["cipher_suite"]  # type: ignore[arg-type]
        conn.close()


async def test_our_client_x25519_only(server_tls: quic.TLSConfig) -> None:
    """Offered only X25519, qh3's server takes it (and does not make a hybrid key)."""
    async with asyncio.timeout(10), qh3_server(server_tls) as (port, peers):
        conn = await dial(port, our_client_tls(groups=[NamedGroup.X25519]))
        assert conn.connection_state().extra["group"] == NamedGroup.X25519
        assert await echo_via(conn, b"classic") == b"classic"
        assert not qh3_selected_hybrid(peers[0])
        conn.close()


async def test_our_client_10mb(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(30), qh3_server(server_tls) as (port, _):
        conn = await dial(port, our_client_tls())
        payload = os.urandom(MB10)
        assert sha256(await echo_via(conn, payload)) == sha256(payload)
        conn.close()


async def test_our_client_100_streams(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), qh3_server(server_tls) as (port, _):
        conn = await dial(port, our_client_tls())
        payloads = [os.urandom(1000 + i) for i in range(100)]
        assert await asyncio.gather(*(echo_via(conn, p) for p in payloads)) == payloads
        conn.close()


async def test_our_client_resumption_and_0rtt(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(15), qh3_server(server_tls) as (port, peers):
        tls = our_client_tls(session_ticket_store=quic.MemorySessionTicketStore())
        first = await dial(port, tls)
        assert await echo_via(first, b"first") == b"first"  # the ticket arrives after the handshake
        assert not first.connection_state().session_resumed
        first.close()
        assert len(tls.session_ticket_store) >= 1  # type: ignore[arg-type]
        second = await dial(port, tls, early=True)
        # data written before the handshake completes travels as 0-RTT
        assert await echo_via(second, b"early") == b"early"
        await second.wait_handshake()
        state = second.connection_state()
        assert state.session_resumed and state.used_0rtt and state.alpn == ALPN
        resumed = peers[1]._quic.tls
        assert resumed is not None and resumed.session_resumed and resumed.early_data_accepted
        second.close()


async def test_our_client_version_2(server_tls: quic.TLSConfig) -> None:
    assert QuicProtocolVersion.VERSION_2 == VERSION_2
    versions = [QuicProtocolVersion.VERSION_2, QuicProtocolVersion.VERSION_1]
    async with asyncio.timeout(10), qh3_server(server_tls, supported_versions=versions) as (port, peers):
        conn = await dial(port, our_client_tls(), quic.Config(versions=(VERSION_2,)))
        assert conn.connection_state().version == VERSION_2
        assert await echo_via(conn, b"v2") == b"v2"
        assert peers[0]._quic._version == VERSION_2
        conn.close()


async def our_client_key_update_transfer(
    server_tls: quic.TLSConfig, protocol: type[Qh3Peer], **options: Any
) -> tuple[KeyTracer, int, Qh3Peer]:
    """Echoes 2 MB from our client through a qh3 server; returns our tracer, key phase and qh3's peer."""
    tracers: list[KeyTracer] = []
    async with asyncio.timeout(20), qh3_server(server_tls, protocol) as (port, peers):
        conn = await dial(port, our_client_tls(), traced(tracers, **options))
        payload = os.urandom(2_000_000)
        assert sha256(await echo_via(conn, payload)) == sha256(payload)
        key_phase = conn.stats()["key_phase"]
        conn.close()
        await conn.wait_closed()
    (peer,) = peers
    assert peer.error is None or peer.error.error_code == 0, peer.error
    assert tracers[0].drops[("ONE_RTT", DropReason.PAYLOAD_DECRYPT_ERROR)] == 0, tracers[0].drops
    return tracers[0], key_phase, peer


def check_followed(ours: KeyTracer, key_phase: int, peer: Qh3Peer, at_least: int) -> None:
    """We started no update: every phase change is one qh3 started and we followed (RFC 9001 §6.2),
    each one of them but perhaps the last, whose first packet may not have arrived before the close.
    ``key_phase`` is our phase when the transfer completed (the tracer saw any later change too)."""
    assert peer.updates_requested >= at_least, (peer.updates_requested, peer.updates_refused)
    assert ours.local == 0
    assert ours.remote == ours.generation, (ours.remote, ours.generation)
    assert peer.updates_requested - 1 <= ours.generation <= peer.updates_requested, (
        ours.generation,
        peer.updates_requested,
    )
    assert peer.updates_requested - 1 <= key_phase <= ours.generation, (key_phase, ours.generation)


def check_started(ours: KeyTracer, key_phase: int, peer: Qh3Peer) -> None:
    """qh3 started no update: every phase change is one we started and qh3 followed."""
    assert peer.updates_requested == peer.updates_refused == 0
    assert ours.remote == 0
    assert ours.local == ours.generation >= 5, (ours.local, ours.generation)
    assert ours.generation - 1 <= key_phase <= ours.generation, (key_phase, ours.generation)


async def test_our_client_qh3_server_initiates_key_updates(server_tls: quic.TLSConfig) -> None:
    ours, key_phase, peer = await our_client_key_update_transfer(
        server_tls, Qh3KeyUpdatingPeer, **NO_KEY_UPDATES
    )
    check_followed(ours, key_phase, peer, at_least=10)


async def test_our_client_initiates_key_updates_with_qh3_server(server_tls: quic.TLSConfig) -> None:
    ours, key_phase, peer = await our_client_key_update_transfer(server_tls, Qh3Peer, **OUR_KEY_UPDATES)
    check_started(ours, key_phase, peer)


# --- qh3 as the client -------------------------------------------------------------------------------


def qh3_client_config(**options: Any) -> QuicConfiguration:
    return QuicConfiguration(
        alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE, server_name="localhost", **options
    )


@contextlib.asynccontextmanager
async def qh3_client(
    port: int,
    config: QuicConfiguration,
    *,
    protocol: Callable[..., QuicConnectionProtocol] = QuicConnectionProtocol,
    **options: Any,
) -> AsyncIterator[QuicConnectionProtocol]:
    async with connect(
        "127.0.0.1", port, configuration=config, create_protocol=protocol, **options
    ) as client:
        yield client


async def test_qh3_client_handshake_and_echo(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(10),
        our_echo_server(server_tls) as (listener, accepted),
        qh3_client(listener.local_addr[1], qh3_client_config()) as client,
    ):
        assert await stream_echo(client, b"hello quicsilver") == b"hello quicsilver"
        assert client._quic.tls is not None and client._quic.tls.alpn_negotiated == ALPN
        state = accepted[0].connection_state()
        assert state.handshake_complete and state.alpn == ALPN and state.version == VERSION_1
        # qh3 offers X25519MLKEM768 first (with a share): we take it
        assert state.extra["group"] == NamedGroup.X25519MLKEM768
        assert int(client._quic.get_cipher()) == state.extra["cipher_suite"]  # type: ignore[arg-type]


async def test_qh3_client_10mb(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(30),
        our_echo_server(server_tls) as (listener, _),
        qh3_client(listener.local_addr[1], qh3_client_config()) as client,
    ):
        payload = os.urandom(MB10)
        assert sha256(await stream_echo(client, payload)) == sha256(payload)


async def test_qh3_client_100_streams(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(15),
        our_echo_server(server_tls) as (listener, _),
        qh3_client(listener.local_addr[1], qh3_client_config()) as client,
    ):
        payloads = [os.urandom(1000 + i) for i in range(100)]
        assert await asyncio.gather(*(stream_echo(client, p) for p in payloads)) == payloads


async def test_qh3_client_resumption_and_0rtt(server_tls: quic.TLSConfig) -> None:
    config = quic.Config(allow_0rtt=True)
    async with asyncio.timeout(15), our_echo_server(server_tls, config, early=True) as (listener, accepted):
        tickets: list[SessionTicket] = []
        port = listener.local_addr[1]
        async with qh3_client(port, qh3_client_config(), session_ticket_handler=tickets.append) as client:
            assert await stream_echo(client, b"first") == b"first"
            assert client._quic.tls is not None and not client._quic.tls.session_resumed
            for _ in range(100):  # the ticket follows the handshake
                if tickets:
                    break
                await asyncio.sleep(0.01)
        assert tickets, "our server issued no session ticket"
        resumed = qh3_client_config(session_ticket=tickets[-1])
        async with qh3_client(port, resumed, wait_connected=False) as client:
            assert await stream_echo(client, b"early data") == b"early data"  # sent as 0-RTT
            await client.wait_connected()
            assert client._quic.tls is not None
            assert client._quic.tls.session_resumed and client._quic.tls.early_data_accepted
        state = accepted[1].connection_state()
        assert state.session_resumed and state.used_0rtt


async def test_qh3_client_version_2(server_tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(10), our_echo_server(server_tls) as (listener, accepted):
        config = qh3_client_config(supported_versions=[QuicProtocolVersion.VERSION_2])
        async with qh3_client(listener.local_addr[1], config) as client:
            assert await stream_echo(client, b"v2") == b"v2"
            assert client._quic._version == VERSION_2
            assert accepted[0].connection_state().version == VERSION_2


async def qh3_client_key_update_transfer(
    server_tls: quic.TLSConfig, protocol: type[Qh3Peer], **options: Any
) -> tuple[KeyTracer, int, Qh3Peer]:
    """A qh3 client sends 2 MB to our echo server and collects the echo; returns our tracer, our key
    phase and qh3's protocol."""
    tracers: list[KeyTracer] = []
    async with (
        asyncio.timeout(20),
        our_echo_server(server_tls, traced(tracers, **options)) as (listener, accepted),
        qh3_client(listener.local_addr[1], qh3_client_config(), protocol=protocol) as client,
    ):
        assert isinstance(client, Qh3Peer)
        payload = os.urandom(2_000_000)
        stream_id = client._quic.get_next_available_stream_id()
        client._quic.send_stream_data(stream_id, payload, end_stream=True)
        client.transmit()
        assert await client.finished == stream_id, client.error
        assert sha256(client.received[stream_id]) == sha256(payload)
        key_phase = accepted[0].stats()["key_phase"]
    assert tracers[0].drops[("ONE_RTT", DropReason.PAYLOAD_DECRYPT_ERROR)] == 0, tracers[0].drops
    return tracers[0], key_phase, client


async def test_qh3_client_initiates_key_updates_with_our_server(server_tls: quic.TLSConfig) -> None:
    ours, key_phase, client = await qh3_client_key_update_transfer(
        server_tls, Qh3KeyUpdatingCollector, **NO_KEY_UPDATES
    )
    check_followed(ours, key_phase, client, at_least=5)


async def test_our_server_initiates_key_updates_with_qh3_client(server_tls: quic.TLSConfig) -> None:
    ours, key_phase, client = await qh3_client_key_update_transfer(
        server_tls, Qh3Collector, **OUR_KEY_UPDATES
    )
    check_started(ours, key_phase, client)
