"""Connection behaviour in the simulated network: timers (RFC 9000 §10.1, RFC 9002 §6.2), closing
(RFC 9000 §10.2), hostile peers (RFC 9000 §12.4, §13.1, §5.1.1, §19.7, §19.20), Version Negotiation
and Retry (RFC 9000 §6, §17.2.5), stateless reset (§10.3), NEW_TOKEN, 0-RTT and key update."""

from __future__ import annotations

import random
from typing import Any

import pytest

from quicsilver.config import Config
from quicsilver.core.conn_id_generator import stateless_reset_token
from quicsilver.core.connection import QuicConnection
from quicsilver.core.events import (
    ConnectionTerminated,
    DatagramReceived,
    HandshakeCompleted,
    NewTokenReceived,
    SessionTicketReceived,
    StreamOpened,
    StreamReadable,
)
from quicsilver.core.packer import _Pending
from quicsilver.core.path import MigrationError, PathState
from quicsilver.errors import (
    ApplicationError,
    DatagramTooLargeError,
    HandshakeTimeoutError,
    IdleTimeoutError,
    StatelessResetError,
    TransportError,
    TransportErrorCode,
    VersionNegotiationError,
)
from quicsilver.handshake.protection import retry_integrity_tag
from quicsilver.handshake.tls.tickets import MemorySessionTicketStore
from quicsilver.protocol import VERSION_1, VERSION_2, EncryptionLevel, PacketNumberSpace
from quicsilver.qlog.tracer import ConnectionTracer
from quicsilver.wire.frames import (
    AckFrame,
    Frame,
    HandshakeDoneFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    StreamFrame,
)
from quicsilver.wire.header import build_retry_without_tag, build_version_negotiation, retry_pseudo_packet

from .sim import CLIENT_ADDR, SERVER_ADDR, Link, Sim, client_tls, send_all, server_tls
from .transfer import TransferSim

INF = float("inf")
_SPACE = {
    EncryptionLevel.INITIAL: PacketNumberSpace.INITIAL,
    EncryptionLevel.HANDSHAKE: PacketNumberSpace.HANDSHAKE,
    EncryptionLevel.ONE_RTT: PacketNumberSpace.APPLICATION,
}


def craft(sender: QuicConnection, level: EncryptionLevel, frames: list[Frame], now: float) -> bytes:
    """A packet from ``sender`` with exactly ``frames`` (a hostile peer built from a real one)."""
    packer = sender._packer
    pn = sender._sph.pop_packet_number(_SPACE[level])
    payload = bytearray()
    for f in frames:
        f.append(payload)
    if level == EncryptionLevel.INITIAL:
        payload += bytes(1100)
    pending = _Pending(level, pn, 4, packer._header_len(level, 4), payload, frames, True, False, None)
    buf, _ = packer._seal([pending], now)
    return bytes(buf)


def terminal(events: list[Any]) -> Exception:
    for e in events:
        if isinstance(e, ConnectionTerminated):
            return e.error
    raise AssertionError("no ConnectionTerminated event")


def confirmed_sim(**kwargs: Any) -> Sim:
    sim = Sim(**kwargs)
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    return sim


# -- timers --------------------------------------------------------------------------------------


def test_handshake_timeout_fires_at_handshake_idle_timeout() -> None:
    sim = Sim(to_client=Link(black_holes=[(0.0, INF)]))
    sim.run_until(lambda: sim.terminated("client") is not None, max_time=20)
    assert isinstance(terminal(sim.client_events), HandshakeTimeoutError)
    # quic-go: nothing received for handshake_idle_timeout (5 s) aborts the attempt.
    assert sim.now == pytest.approx(5.0)


def test_idle_timeout_fires_at_the_negotiated_value() -> None:
    cfg = Config(max_idle_timeout=3.0, disable_path_mtu_discovery=True)
    sim = confirmed_sim(config=cfg, server_config=Config(max_idle_timeout=5.0))
    start = sim.now
    sim.to_server.black_holes.append((start, INF))
    sim.to_client.black_holes.append((start, INF))
    deadline = sim.client._idle_deadline()
    assert deadline is not None
    sim.run_until(lambda: sim.terminated("client") is not None, max_time=start + 20)
    assert isinstance(terminal(sim.client_events), IdleTimeoutError)
    # RFC 9000 §10.1: min(3 s, 5 s), counted from the last packet received.
    assert sim.now == pytest.approx(deadline)
    assert deadline == pytest.approx(sim.client._last_received + 3.0)
    assert sim.client.is_closed  # silently: no closing period


def test_idle_timeout_is_at_least_three_ptos() -> None:
    # 50 ms of idle timeout on a 20 ms RTT path: RFC 9000 §10.1 stretches it to 3 x PTO.
    cfg = Config(max_idle_timeout=0.05, disable_path_mtu_discovery=True)
    sim = confirmed_sim(config=cfg)
    sim.run_until(lambda: False, max_time=sim.now + 0.01)
    start = sim.now
    sim.to_server.black_holes.append((start, INF))
    sim.to_client.black_holes.append((start, INF))
    pto = sim.client._rtt.pto(True)
    assert 3 * pto > 0.05
    last = sim.client._last_received
    assert last is not None
    sim.run_until(lambda: sim.terminated("client") is not None, max_time=start + 5)
    assert isinstance(terminal(sim.client_events), IdleTimeoutError)
    assert sim.now == pytest.approx(last + 3 * pto, abs=1e-6)


def test_keep_alive_keeps_an_idle_connection_open() -> None:
    cfg = Config(max_idle_timeout=2.0, keep_alive_period=0.5)
    sim = confirmed_sim(config=cfg)
    sim.run_until(lambda: False, max_time=sim.now + 20)
    assert sim.terminated("client") is None and sim.terminated("server") is None


def test_pto_fires_at_the_probe_timeout() -> None:
    sim = confirmed_sim()
    sid = sim.client.open_stream()
    sim.run_until(lambda: False, max_time=sim.now + 1)  # settle RTT estimates
    sent: list[float] = []
    sim.to_server.black_holes.append((sim.now, INF))
    sim.to_server.drop_if = lambda data: sent.append(sim.now) is not None
    expected_pto = sim.client._rtt.pto(True)
    sim.client.stream_write(sid, b"x" * 100)
    sim.run_until(lambda: len(sent) >= 2, max_time=sim.now + 5)
    # RFC 9002 §6.2.1: the first probe goes one PTO after the ack-eliciting packet.
    assert sent[1] - sent[0] == pytest.approx(expected_pto, abs=1e-6)


# -- closing -------------------------------------------------------------------------------------


def test_application_close_after_handshake() -> None:
    sim = confirmed_sim()
    sim.client.close(0x42, "bye")
    sim.run_until(lambda: sim.terminated("server") is not None, max_time=sim.now + 1)
    err = terminal(sim.server_events)
    assert isinstance(err, ApplicationError) and err.code == 0x42 and err.reason == "bye" and err.remote
    local = terminal(sim.client_events)
    assert isinstance(local, ApplicationError) and not local.remote
    # RFC 9000 §10.2: closing and draining last three PTOs, then the connections are gone.
    sim.run_until(lambda: sim.client.is_closed and sim.server.is_closed, max_time=sim.now + 5)
    assert sim.client.get_timer() is None


def test_application_close_before_handshake_becomes_application_error() -> None:
    sim = Sim()
    sim.client.close(0x42, "secret reason")
    sim.run_until(lambda: sim.terminated("server") is not None, max_time=2)
    err = terminal(sim.server_events)
    # RFC 9000 §10.2.3: in an Initial packet the close is a 0x1c with APPLICATION_ERROR, no reason.
    assert isinstance(err, TransportError)
    assert err.code == TransportErrorCode.APPLICATION_ERROR and err.reason == "" and err.remote


def test_closing_endpoint_repeats_close_rate_limited() -> None:
    sim = confirmed_sim()
    sim.server.close(1, "x")
    closes = sim.server.datagrams_to_send(sim.now)
    assert len(closes) == 1
    # Datagrams arriving during the closing period get the close packet again, after 1, 2, 4, ...
    answers = 0
    for _ in range(8):
        sim.server.receive_datagram(b"\x40" + bytes(40), CLIENT_ADDR, sim.now)
        answers += len(sim.server.datagrams_to_send(sim.now))
    assert answers == 4  # after the 1st, 2nd, 4th and 8th


# -- hostile peers -------------------------------------------------------------------------------


def test_ack_of_unsent_packet_is_protocol_violation() -> None:
    sim = confirmed_sim()
    data = craft(sim.server, EncryptionLevel.ONE_RTT, [AckFrame(((10_000, 10_000),))], sim.now)
    sim.client.receive_datagram(data, SERVER_ADDR, sim.now)
    err = terminal([*sim.client_events, *iter(sim.client.next_event, None)])
    assert isinstance(err, TransportError) and err.code == TransportErrorCode.PROTOCOL_VIOLATION
    sim.run_until(lambda: sim.terminated("server") is not None, max_time=sim.now + 1)
    remote = terminal(sim.server_events)
    assert isinstance(remote, TransportError) and remote.remote
    assert remote.code == TransportErrorCode.PROTOCOL_VIOLATION


def test_too_many_connection_ids_is_connection_id_limit_error() -> None:
    sim = confirmed_sim()
    frames: list[Frame] = [
        NewConnectionIdFrame(seq, 0, bytes([seq]) * 8, bytes([seq]) * 16) for seq in range(10, 14)
    ]
    sim.client.receive_datagram(
        craft(sim.server, EncryptionLevel.ONE_RTT, frames, sim.now), SERVER_ADDR, sim.now
    )
    err = terminal(list(iter(sim.client.next_event, None)))
    assert isinstance(err, TransportError) and err.code == TransportErrorCode.CONNECTION_ID_LIMIT_ERROR


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (HandshakeDoneFrame(), TransportErrorCode.PROTOCOL_VIOLATION),
        (NewTokenFrame(b"t"), TransportErrorCode.PROTOCOL_VIOLATION),
    ],
    ids=["handshake-done-from-client", "new-token-from-client"],
)
def test_server_only_frames_from_client(frame: Frame, code: int) -> None:
    sim = confirmed_sim()
    sim.server.receive_datagram(
        craft(sim.client, EncryptionLevel.ONE_RTT, [frame], sim.now), CLIENT_ADDR, sim.now
    )
    err = terminal(list(iter(sim.server.next_event, None)))
    assert isinstance(err, TransportError) and err.code == code


def test_stream_frame_in_initial_packet_is_protocol_violation() -> None:
    client = QuicConnection(Config(), client_tls(), is_client=True, server_name="x")
    client.connect(SERVER_ADDR, 0.0)
    server = QuicConnection(Config(), server_tls(), is_client=False)
    bad = craft(client, EncryptionLevel.INITIAL, [StreamFrame(0, 0, b"hi")], 0.0)
    server.receive_datagram(bad, CLIENT_ADDR, 0.0)
    err = terminal(list(iter(server.next_event, None)))
    # RFC 9000 §12.4: a frame not permitted in its packet type is a PROTOCOL_VIOLATION.
    assert isinstance(err, TransportError) and err.code == TransportErrorCode.PROTOCOL_VIOLATION
    # The close goes out in an Initial packet the client can read.
    out = server.datagrams_to_send(0.0)
    assert out
    client.receive_datagram(out[0][0], SERVER_ADDR, 0.01)
    remote = terminal(list(iter(client.next_event, None)))
    assert isinstance(remote, TransportError) and remote.remote


def test_garbage_datagrams_never_raise() -> None:
    sim = confirmed_sim()
    rng = random.Random(5)
    for _ in range(300):
        n = rng.randrange(1, 1400)
        data = bytes(rng.getrandbits(8) for _ in range(n))
        sim.client.receive_datagram(data, SERVER_ADDR, sim.now)
        sim.server.receive_datagram(data, CLIENT_ADDR, sim.now)
    # Undecryptable packets are dropped silently (RFC 9001 §5.5).
    assert sim.terminated("client") is None and sim.terminated("server") is None
    assert not any(isinstance(e, ConnectionTerminated) for e in iter(sim.client.next_event, None))


# -- amplification -------------------------------------------------------------------------------


def test_server_respects_amplification_limit_when_client_goes_silent() -> None:
    # The client's first flight arrives, nothing after it: the server may only send 3x what it got.
    sim = Sim(to_server=Link(black_holes=[(0.001, INF)]))
    sim.run_until(lambda: sim.terminated("server") is not None, max_time=30)
    assert sim.server_bytes_sent <= 3 * sim.server_bytes_received
    assert sim.max_amplification_seen <= 3.0


# -- versions ------------------------------------------------------------------------------------


def test_version_2_handshake() -> None:
    cfg = Config(versions=(VERSION_2,))
    sim = confirmed_sim(config=cfg)
    done = next(e for e in sim.client_events if isinstance(e, HandshakeCompleted))
    assert done.version == VERSION_2


def test_version_negotiation_without_common_version() -> None:
    sim = Sim(to_server=Link(black_holes=[(0.0, INF)]))
    sim.step()
    vn = build_version_negotiation(
        sim.client.host_cid, sim.client.original_destination_connection_id, [0x1A2A3A4A]
    )
    sim.client.receive_datagram(vn, SERVER_ADDR, sim.now)
    err = terminal(list(iter(sim.client.next_event, None)))
    assert isinstance(err, VersionNegotiationError)
    assert err.theirs == [0x1A2A3A4A] and err.ours == [VERSION_1, VERSION_2]


def test_version_negotiation_restarts_in_common_version() -> None:
    sim = Sim(server_config=Config(versions=(VERSION_2,)), server_kwargs={"version": VERSION_2})
    sim.step()  # the v1 Initial reaches the v2-only server, which drops it
    vn = build_version_negotiation(
        sim.client.host_cid, sim.client.original_destination_connection_id, [VERSION_2]
    )
    sim.client.receive_datagram(vn, SERVER_ADDR, sim.now)
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    assert next(e for e in sim.client_events if isinstance(e, HandshakeCompleted)).version == VERSION_2


def test_version_negotiation_listing_our_version_is_ignored() -> None:
    sim = Sim()
    vn = build_version_negotiation(
        sim.client.host_cid, sim.client.original_destination_connection_id, [VERSION_1]
    )
    sim.client.receive_datagram(vn, SERVER_ADDR, 0.0)
    assert sim.run_until(sim.handshake_confirmed, max_time=5)


# -- Retry ---------------------------------------------------------------------------------------


def _retry_sim(tamper: bool = False) -> tuple[Sim, bytes]:
    sim = Sim(to_server=Link(drop_first=2))  # the first flight goes to the "I/O layer" instead
    first = sim.client.datagrams_to_send(0.0)
    odcid = sim.client.original_destination_connection_id
    retry_scid = b"\x77" * 8
    body = build_retry_without_tag(VERSION_1, sim.client.host_cid, retry_scid, b"retry-token")
    tag = retry_integrity_tag(VERSION_1, retry_pseudo_packet(odcid, body))
    if tamper:
        tag = bytes([tag[0] ^ 1]) + tag[1:]
    assert first
    sim.client.receive_datagram(body + tag, SERVER_ADDR, 0.005)
    sim.server = QuicConnection(
        Config(),
        server_tls(),
        is_client=False,
        original_destination_connection_id=odcid,
        retry_source_connection_id=retry_scid,
    )
    sim.to_server.drop_first = 0
    return sim, retry_scid


def test_retry_flow_completes_with_token() -> None:
    seen_tokens: list[bytes] = []

    def spy(data: bytes) -> bool:
        if data[0] & 0xB0 == 0x80 | 0x00 and data[0] & 0x40:
            dcid_len = data[5]
            scid_len = data[6 + dcid_len]
            pos = 7 + dcid_len + scid_len
            seen_tokens.append(data[pos + 1 : pos + 1 + data[pos]])
        return False

    sim, retry_scid = _retry_sim()
    sim.to_server.drop_if = spy
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    assert sim.client._retry_scid == retry_scid
    # RFC 9000 §17.2.5.2: the new Initial carries the token and goes to the Retry's SCID.
    assert b"retry-token" in seen_tokens


def test_retry_with_bad_integrity_tag_is_ignored() -> None:
    sim, _ = _retry_sim(tamper=True)
    # The client ignored the Retry: it still uses its original DCID, which this server does not know
    # the keys for (they derive from the Retry SCID), so no handshake.
    assert sim.client._retry_scid is None


# -- stateless reset, tokens, datagrams, 0-RTT, key update, tracer ------------------------------


def test_stateless_reset_is_detected() -> None:
    key = b"k" * 32
    sim = confirmed_sim(server_kwargs={"stateless_reset_key": key})
    token = stateless_reset_token(key, sim.client._conn_ids_peer.active)
    reset = bytes([0x40 | 0x1F]) + random.Random(1).randbytes(30) + token
    sim.client.receive_datagram(reset, SERVER_ADDR, sim.now)
    assert isinstance(terminal(list(iter(sim.client.next_event, None))), StatelessResetError)
    assert sim.client.datagrams_to_send(sim.now) == []


def test_new_token_is_delivered_to_client() -> None:
    sim = confirmed_sim(server_kwargs={"new_token_provider": lambda addr: b"new-token:" + addr[0].encode()})
    sim.run_until(
        lambda: any(isinstance(e, NewTokenReceived) for e in sim.client_events), max_time=sim.now + 1
    )
    assert NewTokenReceived(b"new-token:10.0.0.1") in sim.client_events


def test_datagrams_round_trip_and_size_check() -> None:
    cfg = Config(enable_datagrams=True)
    sim = confirmed_sim(config=cfg)
    sim.client.send_datagram(b"ping!")
    sim.run_until(
        lambda: any(isinstance(e, DatagramReceived) for e in sim.server_events), max_time=sim.now + 1
    )
    assert DatagramReceived(b"ping!") in sim.server_events
    with pytest.raises(DatagramTooLargeError):
        sim.client.send_datagram(b"x" * 5000)


def test_zero_rtt_data_is_accepted_on_resumption() -> None:
    cfg = Config(allow_0rtt=True)
    # A client lists psk_dhe_ke, and so is sent tickets, only with a place to keep them.
    first = confirmed_sim(config=cfg, client_tls_kwargs={"session_ticket_store": MemorySessionTicketStore()})
    first.run_until(
        lambda: any(isinstance(e, SessionTicketReceived) for e in first.client_events), max_time=2
    )
    ticket = next(e for e in first.client_events if isinstance(e, SessionTicketReceived)).ticket
    sim = Sim(config=cfg, client_kwargs={"session_ticket": ticket}, start=False)
    sim.now = first.now + 1
    sim.client.connect(SERVER_ADDR, sim.now)
    sid = sim.client.open_stream()
    sim.client.stream_write(sid, b"early")
    sim.client.stream_close(sid)
    order: list[str] = []

    def on_server(ev: Any) -> None:
        if isinstance(ev, StreamReadable):
            order.append("data:" + sim.server.stream_read(ev.stream_id, 100).decode())
        elif isinstance(ev, HandshakeCompleted):
            order.append("complete")

    sim.on_server_event = on_server  # type: ignore[method-assign]
    assert sim.run_until(sim.handshake_confirmed, max_time=sim.now + 5)
    done = next(e for e in sim.client_events if isinstance(e, HandshakeCompleted))
    assert done.session_resumed and done.early_data_accepted
    # The data arrived in 0-RTT packets, before the handshake completed at the server.
    assert order[0] == "data:early"


@pytest.mark.parametrize("loss", [0.0, 0.05])
def test_key_updates_during_transfer(loss: float) -> None:
    cfg = Config(first_key_update_interval=100, key_update_interval=300)
    payload = random.Random(9).randbytes(2_000_000)
    link = {"loss": loss, "reorder": 0.05, "reorder_delay": 0.005}
    sim = TransferSim(payload, config=cfg, to_server=Link(**link), to_client=Link(**link))  # type: ignore[arg-type]
    assert sim.run_until(sim.done, max_time=120)
    assert sim.digest_ok()
    # RFC 9001 §6: several key phases went by, both sides agree.
    assert sim.client.stats()["key_phase"] >= 3
    assert sim.client.terminal_error is None and sim.server.terminal_error is None


class _Recorder(ConnectionTracer):
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def sent_packet(self, packet_type: str, pn: int, size: int, frames: Any) -> None:
        self._count("sent")

    def received_packet(self, packet_type: str, pn: int, size: int, frames: Any) -> None:
        self._count("received")

    def lost_packet(self, packet_type: str, pn: int, trigger: str) -> None:
        self._count("lost")

    def dropped_packet(self, packet_type: str, pn: int | None, size: int, reason: str) -> None:
        self._count("dropped")

    def updated_metrics(self, rtt: Any, cwnd: int, bytes_in_flight: int, packets_in_flight: int) -> None:
        self._count("metrics")


def test_tracer_sees_packets_losses_and_metrics() -> None:
    recorders: list[_Recorder] = []

    def factory(perspective: Any, odcid: bytes) -> _Recorder:
        recorders.append(_Recorder())
        return recorders[-1]

    cfg = Config(tracer=factory)
    payload = random.Random(2).randbytes(300_000)
    sim = TransferSim(
        payload, seed=3, config=cfg, to_server=Link(loss=0.1), to_client=Link(loss=0.1, corrupt=0.05)
    )
    assert sim.run_until(sim.done, max_time=60)
    client = recorders[0].calls
    assert client["sent"] > 100 and client["received"] > 10 and client["lost"] > 0 and client["metrics"] > 0
    assert recorders[0].calls.get("dropped", 0) + recorders[1].calls.get("dropped", 0) > 0


def test_padding_only_packet_is_rejected_frames_are_needed() -> None:
    sim = confirmed_sim()
    data = craft(sim.server, EncryptionLevel.ONE_RTT, [PaddingFrame(5)], sim.now)
    sim.client.receive_datagram(data, SERVER_ADDR, sim.now)
    # PADDING is a frame: the packet is valid and nothing happens.
    assert not any(isinstance(e, ConnectionTerminated) for e in iter(sim.client.next_event, None))


# -- migration (RFC 9000 §9) --------------------------------------------------------------------


def _transfer_with_address_change(new_addr: tuple[str, int], active: bool) -> TransferSim:
    payload = random.Random(11).randbytes(2_000_000)
    sim = TransferSim(payload, seed=11, to_server=Link(loss=0.02), to_client=Link(loss=0.02))
    assert sim.run_until(lambda: len(sim.received) > 300_000, max_time=30)
    sim.client_addr = new_addr
    if active:
        sim.client.migrate(sim.now)
    assert sim.run_until(sim.done, max_time=120)
    assert sim.digest_ok()
    return sim


def test_server_follows_nat_rebinding() -> None:
    sim = _transfer_with_address_change(("10.0.0.1", 50001), active=False)
    paths = sim.server._paths
    assert paths is not None
    assert sim.server._peer_addr == ("10.0.0.1", 50001)
    assert paths.active.remote_addr == ("10.0.0.1", 50001) and paths.active.state is PathState.VALIDATED


def test_client_active_migration() -> None:
    sim = _transfer_with_address_change(("10.9.9.9", 40000), active=True)
    assert sim.server._peer_addr == ("10.9.9.9", 40000)
    paths = sim.server._paths
    assert paths is not None and paths.active.state is PathState.VALIDATED
    # RFC 9000 §9.5: the client moved to a connection ID not used before.
    assert sim.client._packer.dcid != sim.server.host_cid
    assert sim.terminated("client") is None and sim.terminated("server") is None


def test_migration_refused_when_server_disables_it() -> None:
    sim = confirmed_sim(server_config=Config(disable_active_migration=True))
    with pytest.raises(MigrationError):
        sim.client.migrate(sim.now)


def test_new_path_is_amplification_limited_until_validated() -> None:
    sim = confirmed_sim()
    sim.run_until(lambda: False, max_time=sim.now + 0.5)
    sid = sim.server.open_stream(bidi=False)
    sim.server.stream_write(sid, b"z" * 500_000)
    # The client moves, then everything it sends is lost: the server must stay within 3x of the one
    # datagram it got from the new address.
    sim.client_addr = ("10.0.0.1", 50002)
    sim.client._ping_pending = True
    sim.step()
    sim.to_server.black_holes.append((sim.now + 0.011, INF))
    # RFC 9000 §8.2.4: validation is abandoned after 3 x max(PTO, initial PTO) = 3 s.
    sim.run_until(lambda: False, max_time=sim.now + 4)
    paths = sim.server._paths
    assert paths is not None
    new = paths.get(None, ("10.0.0.1", 50002))
    assert new is not None and new.state is not PathState.VALIDATED
    assert 0 < new.bytes_sent <= 3 * new.bytes_received
    # RFC 9000 §9.3.2: validation failed, the server went back to the last validated address.
    assert sim.server._peer_addr == CLIENT_ADDR


# -- path MTU discovery (RFC 9000 §14.3, RFC 8899) ---------------------------------------------


def test_pmtud_finds_the_path_mtu() -> None:
    payload = random.Random(12).randbytes(1_000_000)
    sim = TransferSim(payload, to_server=Link(mtu=1400), to_client=Link(mtu=1400))
    assert sim.run_until(sim.done, max_time=60)
    assert sim.digest_ok()
    # A probe every 5 RTTs (100 ms here): the search needs a few of them, then it is done.
    assert sim.run_until(lambda: sim.client._pmtud.done and sim.server._pmtud.done, max_time=sim.now + 20)
    for conn in (sim.client, sim.server):
        size = conn._max_datagram_size
        # Binary search between 1280 and 1452 ends within 20 bytes below the path MTU.
        assert 1400 - 20 <= size <= 1400, size


def test_pmtud_reaches_the_cap_and_recovers_when_the_path_shrinks() -> None:
    payload = random.Random(13).randbytes(3_000_000)
    sim = TransferSim(payload)
    sim.paused = True
    assert sim.run_until(lambda: sim.client._pmtud.done, max_time=30)
    assert 1432 <= sim.client._max_datagram_size <= 1452
    # The path shrinks under the discovered size: full-size packets vanish (a black hole).
    sim.to_server.mtu = 1300
    sim.to_client.mtu = 1300
    sim.paused = False
    assert sim.run_until(sim.done, max_time=120)
    assert sim.digest_ok()
    assert sim.client._pmtud.black_holes >= 1 and sim.client._max_datagram_size <= 1300


def test_pmtud_disabled() -> None:
    sim = confirmed_sim(config=Config(disable_path_mtu_discovery=True))
    sim.run_until(lambda: False, max_time=sim.now + 5)
    assert sim.client._max_datagram_size == 1280


# -- ECN (RFC 9000 §13.4) ----------------------------------------------------------------------


def _ecn_state(conn: QuicConnection) -> str:
    tracker = conn._sph.ecn
    assert tracker is not None
    return str(tracker.state.value)


def test_ecn_validated_on_a_path_that_passes_marks() -> None:
    payload = random.Random(14).randbytes(500_000)
    sim = TransferSim(payload)
    assert sim.run_until(sim.done, max_time=30)
    assert _ecn_state(sim.client) == "capable"
    assert sim.server._spaces[PacketNumberSpace.APPLICATION].ack_tracker.ect0 > 0


def test_ecn_disabled_on_a_path_that_bleaches_marks() -> None:
    payload = random.Random(15).randbytes(500_000)
    sim = TransferSim(payload, to_server=Link(bleach_ecn=True), to_client=Link(bleach_ecn=True))
    assert sim.run_until(sim.done, max_time=30)
    assert sim.digest_ok()
    assert _ecn_state(sim.client) == "failed"
    # Once failed, nothing is marked any more.
    assert all(ecn == 0 for _, _, ecn in sim.client.datagrams_to_send_ecn(sim.now))


def test_ecn_ce_marks_reduce_the_congestion_window() -> None:
    payload = random.Random(16).randbytes(3_000_000)
    clean = TransferSim(payload, seed=5)
    assert clean.run_until(clean.done, max_time=60)
    marked = TransferSim(payload, seed=5, to_server=Link(ce=0.02))
    assert marked.run_until(marked.done, max_time=60)
    assert marked.digest_ok()
    # RFC 9002 §7.1: a CE mark is a congestion signal, without any packet loss.
    assert marked.client._sph.congestion.congestion_window < clean.client._sph.congestion.congestion_window
    assert marked.now > clean.now


def test_zero_rtt_rejected_when_the_server_reduced_its_limits() -> None:
    cfg = Config(allow_0rtt=True)
    # A client lists psk_dhe_ke, and so is sent tickets, only with a place to keep them.
    first = confirmed_sim(config=cfg, client_tls_kwargs={"session_ticket_store": MemorySessionTicketStore()})
    first.run_until(
        lambda: any(isinstance(e, SessionTicketReceived) for e in first.client_events), max_time=2
    )
    ticket = next(e for e in first.client_events if isinstance(e, SessionTicketReceived)).ticket
    smaller = Config(allow_0rtt=True, initial_connection_receive_window=64 * 1024)
    sim = Sim(config=cfg, server_config=smaller, client_kwargs={"session_ticket": ticket}, start=False)
    sim.now = first.now + 1
    sim.client.connect(SERVER_ADDR, sim.now)
    sid = sim.client.open_stream()
    sim.client.stream_write(sid, b"early")
    sim.client.stream_close(sid)
    got = bytearray()

    def on_server(ev: Any) -> None:
        if isinstance(ev, StreamReadable):
            got.extend(sim.server.stream_read(ev.stream_id, 100))

    sim.on_server_event = on_server  # type: ignore[method-assign]
    assert sim.run_until(lambda: sim.handshake_confirmed() and bytes(got) == b"early", max_time=sim.now + 5)
    done = next(e for e in sim.client_events if isinstance(e, HandshakeCompleted))
    # RFC 9000 §7.4.1: resumed, but 0-RTT refused; the data came again in 1-RTT packets.
    assert done.session_resumed and not done.early_data_accepted


def test_compatible_version_negotiation_upgrades_to_v2() -> None:
    # RFC 9368 §2.3: the client starts in v1 offering v1 and v2; the server prefers v2 and answers in it.
    sim = confirmed_sim(
        config=Config(versions=(VERSION_1, VERSION_2)), server_config=Config(versions=(VERSION_2, VERSION_1))
    )
    for events in (sim.client_events, sim.server_events):
        assert next(e for e in events if isinstance(e, HandshakeCompleted)).version == VERSION_2


def test_compatible_version_negotiation_keeps_v1_when_preferred() -> None:
    sim = confirmed_sim(config=Config(versions=(VERSION_1, VERSION_2)))
    assert next(e for e in sim.server_events if isinstance(e, HandshakeCompleted)).version == VERSION_1


def test_keep_alive_respects_a_shorter_peer_idle_timeout() -> None:
    # Our keep-alive period (10 s) is longer than half the negotiated idle timeout (min(30, 1) / 2).
    sim = confirmed_sim(config=Config(keep_alive_period=10.0), server_config=Config(max_idle_timeout=1.0))
    sim.run_until(lambda: False, max_time=sim.now + 10)
    assert sim.terminated("client") is None and sim.terminated("server") is None


def test_receive_datagrams_is_receive_datagram_for_each() -> None:
    # The Transport hands a receive batch's datagrams for one connection over in one call: the
    # outcome must be that of one receive_datagram per datagram, in order.
    servers = [QuicConnection(Config(), server_tls(), is_client=False) for _ in range(2)]
    client = QuicConnection(Config(), client_tls(), is_client=True, server_name="localhost")
    client.connect(SERVER_ADDR, 0.0)
    flight = [data for data, _, _ in client.datagrams_to_send_ecn(0.0)]
    assert len(flight) == 2  # the ClientHello with its post-quantum key share spans two datagrams
    batch = [(memoryview(data), CLIENT_ADDR, 0, None) for data in flight]
    assert servers[0].receive_datagrams(batch, 0.01) == sum(len(data) for data in flight)
    for data in flight:
        servers[1].receive_datagram(data, CLIENT_ADDR, 0.01)
    answers = [[len(data) for data, _, _ in send_all(server, 0.01)] for server in servers]
    # The server's Initial + Handshake flight, the same both ways (up to the few bytes by which the
    # DER encoding of an ECDSA signature varies).
    assert len(answers[0]) == len(answers[1]) >= 2 and sum(answers[0]) > 1500
    assert all(abs(a - b) <= 4 for a, b in zip(answers[0], answers[1], strict=True))


def _request_at_server(sim: Sim) -> int:
    """The client opens a stream and sends b"request" with its FIN; returns the stream once the
    server holds the seven bytes."""
    sid = sim.client.open_stream()
    sim.client.stream_write(sid, b"request")
    sim.client.stream_close(sid)
    assert sim.run_until(lambda: any(isinstance(e, StreamOpened) for e in sim.server_events))
    assert sim.run_until(lambda: sim.server.stream_readable(sid) >= 7, max_time=sim.now + 1)
    return sid


def test_the_read_that_takes_the_last_byte_says_so() -> None:
    # stream_read_fin tells the reader that a read took everything up to the FIN (RFC 9000 §3.2:
    # Data Read): the reader ends there, without a read to learn it (the core forgets the stream
    # once its sending side is done too).
    sim = confirmed_sim()
    sid = _request_at_server(sim)
    assert sim.server.stream_read_fin(sid, 3) == (b"req", False)
    assert sim.server.stream_read_fin(sid, 100) == (b"uest", True)
    assert sim.server.stream_read_fin(sid, 100) == (b"", True)  # its sending side still lives
    # a stream whose FIN comes after the data that was read: the end is its own (empty) read
    sid = sim.client.open_stream()
    sim.client.stream_write(sid, b"more")
    assert sim.run_until(lambda: StreamOpened(sid) in sim.server_events, max_time=sim.now + 1)
    assert sim.run_until(lambda: sim.server.stream_readable(sid) >= 4, max_time=sim.now + 1)
    assert sim.server.stream_read_fin(sid, 100) == (b"more", False)
    sim.client.stream_close(sid)
    start = sim.now
    sim.run_until(lambda: False, max_time=start + 0.05)  # the FIN arrives
    assert sim.server.stream_read_fin(sid, 100) == (b"", True)


# -- teardown ---------------------------------------------------------------------------------------


def test_a_finished_connection_is_freed_without_the_garbage_collector() -> None:
    """Nothing in a connection refers back to it (no stored bound methods of an owner in what it
    owns): once a request/response connection has closed and drained, dropping it frees everything
    by reference counting. A cycle per connection costs a collector pass over it later (issue 9: a
    few percent of a handshake's CPU)."""
    import gc

    def exchange() -> None:
        sim = confirmed_sim()
        sid = _request_at_server(sim)
        assert sim.server.stream_read(sid) == b"request"
        sim.server.stream_write(sid, b"response")
        sim.server.stream_close(sid)
        assert sim.run_until(lambda: sim.client.stream_readable(sid) >= 8, max_time=sim.now + 1)
        assert sim.client.stream_read(sid) == b"response"
        sim.client.close(0, "done", is_application=True)
        assert sim.run_until(lambda: sim.client.is_closed and sim.server.is_closed, max_time=sim.now + 10)

    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        exchange()
        gc.collect()
        left = [type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("quicsilver")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
    assert left == [], left
