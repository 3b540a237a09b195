"""Handshakes in the simulated network (RFC 9000 §7, §8.1, §14.1; RFC 9001 §4; RFC 9002 §6.2)."""

from __future__ import annotations

import pytest

from quicsilver.config import Config
from quicsilver.core.conn_id_generator import RandomConnectionIDGenerator, stateless_reset_token
from quicsilver.core.connection import QuicConnection
from quicsilver.core.events import ConnectionIdIssued, HandshakeCompleted, NewTokenReceived
from quicsilver.errors import TransportError
from quicsilver.handshake.protection import CipherSuite
from quicsilver.protocol import VERSION_1, EncryptionLevel, PacketNumberSpace
from quicsilver.wire.frames import CryptoFrame

from .sim import CLIENT_ADDR, SERVER_ADDR, Link, Sim, client_tls, send_all, server_tls


def test_handshake_no_loss_takes_about_one_rtt() -> None:
    sim = Sim()
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    # One RTT (20 ms) for the client to complete, the server completes on the client Finished.
    done = [e for e in sim.client_events if isinstance(e, HandshakeCompleted)]
    assert done and done[0].alpn == "sim" and done[0].version == VERSION_1
    assert sim.now < 0.1
    # RFC 9000 §5.1.1: both sides issued extra connection IDs up to the peer's limit (4).
    assert sum(isinstance(e, ConnectionIdIssued) for e in sim.client_events) == 3
    assert sim.client._state is sim.server._state


@pytest.mark.parametrize("loss", [0.10, 0.30])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_handshake_completes_under_loss(loss: float, seed: int) -> None:
    sim = Sim(seed=seed, to_server=Link(loss=loss), to_client=Link(loss=loss))
    assert sim.run_until(sim.handshake_confirmed, max_time=30)
    assert sim.terminated("client") is None and sim.terminated("server") is None


def test_handshake_with_whole_first_flight_lost() -> None:
    # Everything the client sends at t=0 (its ClientHello spans two datagrams with ML-KEM) is lost.
    sim = Sim(to_server=Link(black_holes=[(0.0, 0.001)]))
    assert sim.run_until(sim.handshake_confirmed, max_time=10)
    # RFC 9002 §6.2.1: resent when the PTO fires: 333 ms + 4 * 166.5 ms = 999 ms with the initial RTT.
    assert 0.999 <= sim.now < 1.2


def test_handshake_with_server_first_flight_lost() -> None:
    sim = Sim(to_client=Link(black_holes=[(0.0, 0.015)]))
    assert sim.run_until(sim.handshake_confirmed, max_time=10)


def test_client_initial_datagrams_are_padded() -> None:
    sizes: list[int] = []

    def record(data: bytes) -> bool:
        if data[0] & 0x80 and (data[0] & 0x30) == 0:  # v1 Initial
            sizes.append(len(data))
        return False

    sim = Sim(to_server=Link(drop_if=record))
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    # RFC 9000 §14.1: every datagram carrying an Initial packet is at least 1200 bytes.
    assert sizes and min(sizes) >= 1200


def test_corrupted_packets_are_dropped_silently() -> None:
    sim = Sim(seed=7, to_server=Link(corrupt=0.3), to_client=Link(corrupt=0.3))
    assert sim.run_until(sim.handshake_confirmed, max_time=30)
    assert sim.terminated("client") is None and sim.terminated("server") is None


def test_packets_arriving_before_their_keys_are_buffered() -> None:
    # The server's flight spans several datagrams; delivered in reverse order, the Handshake packets
    # come before the Initial that carries the keys for them, and are kept until then.
    sim = Sim(start=False)
    sim.client.connect(SERVER_ADDR, 0.0)
    for data, _ in sim.client.datagrams_to_send(0.0):
        sim.server.receive_datagram(data, CLIENT_ADDR, 0.01)
    flight = [data for data, _, _ in send_all(sim.server, 0.01)]
    assert len(flight) >= 2
    for data in reversed(flight):
        sim.client.receive_datagram(data, SERVER_ADDR, 0.02)
    events = list(iter(sim.client.next_event, None))
    assert any(isinstance(e, HandshakeCompleted) for e in events)


def test_a_server_frees_its_tls_engine_and_refuses_tls_messages_after_the_handshake() -> None:
    sim = Sim()
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    # The ticket is out and nothing is left for TLS to do on the server (memory per idle connection).
    assert sim.server._tls is None and sim.client._tls is not None  # the client may still get tickets
    # RFC 9001 §4.4: no post-handshake messages from a QUIC client; a CRYPTO frame with new data in
    # 1-RTT is an unexpected TLS message (alert 10 -> CRYPTO_ERROR 0x10a, RFC 9001 §4.8).
    sim.client._spaces[PacketNumberSpace.APPLICATION].crypto.write(b"\x0d\x00\x00\x00")
    sim.client._ping_pending = True
    assert sim.run_until(lambda: sim.terminated("server") is not None, max_time=5)
    terminated = sim.terminated("server")
    assert terminated is not None
    error = terminated.error
    assert isinstance(error, TransportError) and error.code == 0x10A, error


@pytest.mark.parametrize("side", ["client", "server"])
def test_crypto_data_left_unread_at_a_key_change_is_a_protocol_violation(side: str) -> None:
    # RFC 9001 §4.1.3: out-of-order Initial CRYPTO data beyond the ClientHello / ServerHello is still
    # buffered when TLS moves on to Handshake keys; it can never be read.
    sim = Sim()
    victim = sim.client if side == "client" else sim.server
    victim._spaces[PacketNumberSpace.INITIAL].crypto.handle_crypto_frame(CryptoFrame(5000, b"\x01"))
    assert sim.run_until(lambda: sim.terminated(side) is not None, max_time=5)
    terminated = sim.terminated(side)
    assert terminated is not None
    error = terminated.error
    assert isinstance(error, TransportError) and error.code == 0x0A, error  # PROTOCOL_VIOLATION
    assert "left unread" in error.reason


def _exchange(sender: QuicConnection, receiver: QuicConnection, source: tuple[str, int], now: float) -> None:
    for data, _, _ in send_all(sender, now):
        receiver.receive_datagram(data, source, now)


@pytest.mark.parametrize("ahead", [True, False], ids=["work-ahead", "no-work-ahead"])
def test_keys_for_the_peers_answer_are_derived_while_it_comes(ahead: bool) -> None:
    # Without work_ahead (no I/O layer to call it) every key is derived when first needed instead.
    config = Config()
    client = QuicConnection(config, client_tls(), is_client=True, server_name="localhost")
    server = QuicConnection(config, server_tls(), is_client=False)
    client.connect(SERVER_ADDR, 0.0)
    _exchange(client, server, CLIENT_ADDR, 0.0)
    # the client's ClientHello is out: the server's Initial keys are installed, not yet derived
    assert EncryptionLevel.INITIAL in client._unpacker.pending
    assert EncryptionLevel.INITIAL not in client._unpacker.keys
    assert client.wants_work_ahead
    if ahead:
        client.work_ahead()
        assert EncryptionLevel.INITIAL in client._unpacker.keys and not client._unpacker.pending
        assert not client.wants_work_ahead
    _exchange(server, client, SERVER_ADDR, 0.01)  # the server's flight is out
    assert server._unpacker.one_rtt is None  # RFC 9001 §5.7: no 1-RTT reads before the Finished
    # its Handshake keys, for the client's Finished, are installed and wait to be derived
    assert EncryptionLevel.HANDSHAKE in server._unpacker.pending
    assert server.wants_work_ahead
    made = None
    if ahead:
        server.work_ahead()
        assert EncryptionLevel.HANDSHAKE in server._unpacker.keys and not server._unpacker.pending
        made = server._one_rtt_ahead
        assert made is not None and made.next_prepared and made.recv_keys_derived
        assert not server.wants_work_ahead  # tried once: nothing more to do until the Finished
    assert server._unpacker.one_rtt is None  # made, not installed
    # the client installed its 1-RTT keys with its flight; the next phase's are a timer, about a
    # PTO later (RFC 9001 §6.3), not work on the path of its Finished and first request
    one_rtt = client._unpacker.one_rtt
    assert one_rtt is not None and not one_rtt.next_prepared and not client.wants_work_ahead
    # its 1-RTT receive keys wait for the first 1-RTT packet (the server's HANDSHAKE_DONE, which
    # comes while the client waits for its first answer), off the path of its Finished
    assert not one_rtt.recv_keys_derived
    due = one_rtt.next_keys_due
    assert due is not None and due > 0.01
    timer = client.get_timer()
    assert timer is not None and timer <= due
    client.handle_timer(due)
    assert one_rtt.next_prepared and one_rtt.next_keys_due is None
    _exchange(client, server, CLIENT_ADDR, 0.02)  # the client's Finished
    installed = server._unpacker.one_rtt
    assert installed is not None and server._packer.one_rtt is installed
    assert (installed is made) if ahead else (made is None and not installed.next_prepared)
    assert not server.wants_work_ahead  # once installed, nothing is left to do ahead
    # and the keys work: data both ways
    stream = client.open_stream()
    client.stream_write(stream, b"ping")
    client.stream_close(stream)
    _exchange(client, server, CLIENT_ADDR, 0.03)
    assert server.stream_read(stream) == b"ping"
    server.stream_write(stream, b"pong")
    _exchange(server, client, SERVER_ADDR, 0.04)
    assert client.stream_read(stream) == b"pong"


def test_keys_installed_for_later_are_derived_once_and_dropped_with_their_space() -> None:
    client = QuicConnection(Config(), client_tls(), is_client=True, server_name="localhost")
    client.connect(SERVER_ADDR, 0.0)
    unpacker = client._unpacker
    secret = bytes(range(32))
    unpacker.install_later(EncryptionLevel.HANDSHAKE, CipherSuite.AES_128_GCM_SHA256, secret, VERSION_1)
    assert client._keys_generation() == 2  # counted as installed (Initial, Handshake)
    unpacker.derive_pending()
    keys = unpacker.keys[EncryptionLevel.HANDSHAKE]
    assert keys.secret == secret and not unpacker.pending
    unpacker.derive_pending()
    assert unpacker.keys[EncryptionLevel.HANDSHAKE] is keys  # not derived again
    # RFC 9001 §4.9.1: dropping a space drops its keys, derived or not
    unpacker.install_later(EncryptionLevel.HANDSHAKE, CipherSuite.AES_128_GCM_SHA256, secret, VERSION_1)
    client._discard_space(PacketNumberSpace.INITIAL)
    assert EncryptionLevel.INITIAL not in unpacker.keys and EncryptionLevel.INITIAL not in unpacker.pending
    unpacker.drop_keys(EncryptionLevel.HANDSHAKE)
    assert not unpacker.pending and EncryptionLevel.HANDSHAKE not in unpacker.keys


class _CountingGenerator:
    """The default generator, counting the CIDs it makes."""

    def __init__(self) -> None:
        self.made: list[bytes] = []
        self._random = RandomConnectionIDGenerator()

    def generate_connection_id(self) -> bytes:
        cid = self._random.generate_connection_id()
        self.made.append(cid)
        return cid

    @property
    def connection_id_len(self) -> int:
        return self._random.connection_id_len


@pytest.mark.parametrize("ahead", [True, False], ids=["work-ahead", "no-work-ahead"])
def test_what_the_end_of_the_handshake_issues_is_made_while_the_peer_answers(ahead: bool) -> None:
    # A server issues CIDs (RFC 9000 §5.1.1) and a NEW_TOKEN token (§8.1.3) when its handshake
    # completes, on the client Finished's path; work_ahead makes them between its flight and that
    # Finished. Without work_ahead they are made at the end, as before: the frames are the same.
    key = b"k" * 32
    generator = _CountingGenerator()
    minted: list[tuple[object, float]] = []
    clock = [0.0]

    def provider(addr: object) -> bytes:
        minted.append((addr, clock[0]))
        return b"token-%d" % len(minted)

    config = Config()
    client = QuicConnection(config, client_tls(), is_client=True, server_name="localhost")
    server = QuicConnection(
        config,
        server_tls(),
        is_client=False,
        connection_id_generator=generator,
        stateless_reset_key=key,
        new_token_provider=provider,
    )
    client.connect(SERVER_ADDR, 0.0)
    _exchange(client, server, CLIENT_ADDR, 0.0)
    _exchange(server, client, SERVER_ADDR, 0.01)  # the server's flight is out
    assert len(generator.made) == 1 and minted == []  # only the server's own first CID
    if ahead:
        clock[0] = 0.011
        server.work_ahead()
        # the client's active_connection_id_limit (4) allows three more CIDs, our cap as well
        assert len(generator.made) == 4 and minted == [(CLIENT_ADDR, 0.011)]
    clock[0] = 0.02
    _exchange(client, server, CLIENT_ADDR, 0.02)  # the client's Finished
    assert any(isinstance(e, HandshakeCompleted) for e in iter(server.next_event, None))
    assert len(generator.made) == 4  # made once, whenever
    assert minted == [(CLIENT_ADDR, 0.011 if ahead else 0.02)]
    _exchange(server, client, SERVER_ADDR, 0.03)
    events = list(iter(client.next_event, None))
    assert NewTokenReceived(b"token-1") in events
    # the client holds the four CIDs, each with the reset token bound to it (RFC 9000 §10.3.2)
    assert client._conn_ids_peer._cids == {
        seq: (cid, stateless_reset_token(key, cid)) for seq, cid in enumerate(generator.made)
    }


def test_a_server_sends_its_server_hello_before_it_builds_the_rest_of_its_flight() -> None:
    # The client works on the ServerHello (key exchange, Handshake keys) while the server signs and
    # builds EncryptedExtensions .. Finished; the ServerHello's datagram is padded like any server
    # datagram with an ack-eliciting Initial packet (RFC 9000 §14.1).
    config = Config()
    client = QuicConnection(config, client_tls(), is_client=True, server_name="localhost")
    server = QuicConnection(config, server_tls(), is_client=False)
    client.connect(SERVER_ADDR, 0.0)
    _exchange(client, server, CLIENT_ADDR, 0.0)
    assert server.flight_pending and not server.wants_work_ahead  # the rest first, then the keys ahead
    first = server.datagrams_to_send_ecn(0.01)
    assert len(first) == 1 and len(first[0][0]) >= 1200
    assert server.flight_pending
    client.receive_datagram(first[0][0], SERVER_ADDR, 0.011)
    # the client has its Handshake keys from the ServerHello alone, and acknowledges the Initial at
    # once (RFC 9000 §13.2.1) in a padded datagram (§14.1)
    assert (
        EncryptionLevel.HANDSHAKE in client._unpacker.keys
        or EncryptionLevel.HANDSHAKE in client._unpacker.pending
    )
    ack = client.datagrams_to_send_ecn(0.011)
    assert len(ack) == 1 and len(ack[0][0]) >= 1200
    # a driver that knows nothing of flight_pending sees a timer due at once
    assert server.get_timer() == 0.01
    server.handle_timer(0.01)
    assert not server.flight_pending and server.wants_work_ahead
    rest = server.datagrams_to_send_ecn(0.01)
    assert rest and all(data[0] & 0x30 == 0x20 for data, _, _ in rest)  # Handshake packets only (v1)
    for data, _, _ in rest:
        client.receive_datagram(data, SERVER_ADDR, 0.012)
    server.receive_datagram(ack[0][0], CLIENT_ADDR, 0.012)
    assert any(isinstance(e, HandshakeCompleted) for e in iter(client.next_event, None))
    _exchange(client, server, CLIENT_ADDR, 0.013)  # the client's Finished
    assert any(isinstance(e, HandshakeCompleted) for e in iter(server.next_event, None))
