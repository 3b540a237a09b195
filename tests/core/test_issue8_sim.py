"""Issue 8's proofs on the simulated network: key update (RFC 9001 §6) under loss and reordering,
invalid updates and AEAD limits, NAT rebinding and active client migration (RFC 9000 §9), path MTU
discovery (RFC 9000 §14.3, RFC 8899), ECN validation and CE response (RFC 9000 §13.4, RFC 9002 §7.1).

``PathSim`` extends the shared simulator by composition: it routes each client datagram by the local
address the core chose (``datagrams_to_send_paths``) through a NAT table, so a rebinding (the NAT
maps the same socket to a new port) and an active migration (a second local interface) are modelled
separately, and the server's datagrams reach only addresses that still map to a client socket.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import pytest

from quicsilver.config import Config
from quicsilver.core.connection import QuicConnection
from quicsilver.core.events import ConnectionTerminated, Event, StreamReadable, StreamWritable
from quicsilver.core.mtu_discoverer import PROBE_DELAY_RTTS
from quicsilver.core.path import PathState
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import PacketNumberSpace, Perspective
from quicsilver.qlog.tracer import ConnectionTracer, DropReason

from .sim import CLIENT_ADDR, SERVER_ADDR, Link, Sim
from .transfer import TransferSim

LOSSY = {"loss": 0.05, "reorder": 0.1, "reorder_delay": 0.03}
"""5 % loss; a tenth of the datagrams arrive up to 30 ms late (more than the 20 ms RTT, so packets
of an old key phase arrive after the new phase began)."""


class Recorder(ConnectionTracer):
    """Counts what one side did: its own key updates, drops by (type, reason), MTU changes."""

    def __init__(self, perspective: Perspective) -> None:
        self.perspective = perspective
        self.local_key_updates = 0
        self.drops: Counter[tuple[str, str]] = Counter()
        self.mtus: list[int] = []

    def updated_key(self, generation: int, remote: bool) -> None:
        if not remote:
            self.local_key_updates += 1

    def dropped_packet(self, packet_type: str, pn: int | None, size: int, reason: str) -> None:
        self.drops[(packet_type, reason)] += 1

    def updated_mtu(self, mtu: int, done: bool) -> None:
        self.mtus.append(mtu)


def traced(config_kwargs: dict[str, Any]) -> tuple[Config, dict[Perspective, Recorder]]:
    recorders: dict[Perspective, Recorder] = {}

    def factory(perspective: Perspective, odcid: bytes) -> Recorder:
        recorders[perspective] = Recorder(perspective)
        return recorders[perspective]

    return Config(tracer=factory, **config_kwargs), recorders


def error_of(events: list[Any]) -> Exception | None:
    for e in events:
        if isinstance(e, ConnectionTerminated):
            return e.error  # type: ignore[no-any-return]
    return None


def confirmed(sim: Sim) -> Sim:
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    return sim


class BothWaysSim(TransferSim):
    """The client uploads ``payload``; at the same time the server sends ``download`` on a
    unidirectional stream (so both sides send enough packets to initiate key updates)."""

    def __init__(self, payload: bytes, download: bytes, **kwargs: Any) -> None:
        super().__init__(payload, **kwargs)
        self.download = download
        self.down_sent = 0
        self.down_stream: int | None = None
        self.down_received = bytearray()
        self.down_fin = False

    def pump_server(self) -> None:
        if self.down_stream is None:
            if not self.server._handshake_complete:
                return
            self.down_stream = self.server.open_stream(bidi=False)
        while self.down_sent < len(self.download):
            chunk = memoryview(self.download)[self.down_sent : self.down_sent + 65536]
            n = self.server.stream_write(self.down_stream, chunk)
            if n == 0:
                return
            self.down_sent += n
            if self.down_sent == len(self.download):
                self.server.stream_close(self.down_stream)

    def on_server_event(self, ev: Event) -> None:
        super().on_server_event(ev)
        if isinstance(ev, StreamWritable):
            self.pump_server()

    def on_client_event(self, ev: Event) -> None:
        super().on_client_event(ev)
        if isinstance(ev, StreamReadable) and ev.stream_id == self.down_stream and not self.down_fin:
            try:
                while data := self.client.stream_read(ev.stream_id, 1 << 20):
                    self.down_received += data
                self.down_fin = self.client.stream_at_eof(ev.stream_id)
            except ValueError:
                # The core forgets a receive-only stream once its FIN was read (INTERNALS.md).
                self.down_fin = True

    def step(self, limit: float = float("inf")) -> bool:
        self.pump_server()
        return super().step(limit)

    def done(self) -> bool:
        return self.fin and self.down_fin

    def digest_ok(self) -> bool:
        return super().digest_ok() and bytes(self.down_received) == self.download


# -- key update (RFC 9001 §6) ---------------------------------------------------------------------


def key_update_transfer(size: int, interval: int, seed: int) -> None:
    config, rec = traced({"first_key_update_interval": interval, "key_update_interval": interval})
    rng = random.Random(seed)
    up, down = rng.randbytes(size // 2), rng.randbytes(size // 2)
    lossy = {"to_server": Link(**LOSSY), "to_client": Link(**LOSSY)}  # type: ignore[arg-type]
    sim = BothWaysSim(up, down, seed=seed, config=config, **lossy)
    assert sim.run_until(sim.done, max_time=600)
    assert sim.digest_ok()
    assert sim.client.terminal_error is None and sim.server.terminal_error is None
    client, server = rec[Perspective.CLIENT], rec[Perspective.SERVER]
    packets = sim.client.stats()["datagrams_sent"] + sim.server.stats()["datagrams_sent"]
    # One update every `interval` packets at the earliest, and no later than a few round trips after
    # (§6.5: only once a packet of the current phase was acknowledged). Both sides initiate.
    phase = sim.client.stats()["key_phase"]
    assert phase >= packets // (4 * interval), (phase, packets)
    assert client.local_key_updates > 0 and server.local_key_updates > 0
    # Both sides may roll at the same time (each initiates, §6.5): phases still agree.
    assert abs(phase - sim.server.stats()["key_phase"]) <= 1
    assert phase <= client.local_key_updates + server.local_key_updates
    # §6.3 / §6.5: late packets of the previous phase are opened with the retained keys; with no
    # corruption on the links, not one 1-RTT packet failed to decrypt.
    for r in (client, server):
        assert r.drops[("ONE_RTT", DropReason.PAYLOAD_DECRYPT_ERROR)] == 0, r.drops


def test_key_update_every_50_packets_4mb_5_percent_loss_with_reordering() -> None:
    key_update_transfer(4_000_000, 50, seed=21)


@pytest.mark.slow
def test_key_update_every_100_packets_20mb_5_percent_loss_with_reordering() -> None:
    key_update_transfer(20_000_000, 100, seed=22)


def one_rtt_keys(conn: QuicConnection) -> Any:
    keys = conn._packer.one_rtt
    assert keys is not None
    return keys


def deliver(sim: Sim, sender: QuicConnection, receiver: QuicConnection) -> None:
    """Hand everything ``sender`` has due straight to ``receiver`` (no network, no loss)."""
    src = CLIENT_ADDR if sender is sim.client else SERVER_ADDR
    for data, _, ecn in sender.datagrams_to_send_ecn(sim.now):
        receiver.receive_datagram(data, src, sim.now, ecn)


def test_peer_updating_twice_before_we_answered_is_key_update_error() -> None:
    sim = confirmed(Sim())
    sim.run_until(lambda: False, max_time=sim.now + 0.2)
    client, server = sim.client, sim.server
    ckeys = one_rtt_keys(client)
    # The client rolls to phase 1; the server follows on the first packet of that phase.
    ckeys.initiate_update(sim.now, 0.1)
    client._ping_pending = True
    deliver(sim, client, server)
    assert one_rtt_keys(server).key_phase == 1 and server.terminal_error is None
    # Before the server sent anything with the phase-1 keys, the client rolls again (§6.5 forbids it:
    # no packet of phase 1 was acknowledged). The phase-2 packet carries the key phase bit of phase 0.
    ckeys.initiate_update(sim.now, 0.1)
    client._ping_pending = True
    deliver(sim, client, server)
    # RFC 9001 §6.2: "an endpoint that receives a second update before it has sent any packets with
    # updated keys ... [MAY] treat this as a connection error of type KEY_UPDATE_ERROR".
    error = server.terminal_error
    assert isinstance(error, TransportError), error
    assert error.code == TransportErrorCode.KEY_UPDATE_ERROR
    # The client learns it from the CONNECTION_CLOSE.
    deliver(sim, server, client)
    remote = client.terminal_error
    assert isinstance(remote, TransportError) and remote.code == TransportErrorCode.KEY_UPDATE_ERROR


def test_no_key_update_before_the_handshake_is_confirmed() -> None:
    sim = Sim(config=Config(first_key_update_interval=10, key_update_interval=10))
    assert sim.run_until(lambda: sim.client._handshake_complete and sim.client._packer.one_rtt is not None)
    assert not sim.client._handshake_confirmed
    # RFC 9001 §6.1: "An endpoint MUST NOT initiate a key update prior to having confirmed the handshake".
    sim.client.initiate_key_update()
    assert one_rtt_keys(sim.client).key_phase == 0
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    sim.client.initiate_key_update()
    assert one_rtt_keys(sim.client).key_phase == 1


def test_we_do_not_initiate_again_before_the_current_phase_is_acknowledged() -> None:
    sim = confirmed(Sim())
    sim.run_until(lambda: False, max_time=sim.now + 0.2)
    sim.client.initiate_key_update()
    sim.client.initiate_key_update()  # RFC 9001 §6.5: MUST NOT before an ACK of a phase-1 packet
    assert one_rtt_keys(sim.client).key_phase == 1
    sim.client._ping_pending = True
    sim.run_until(lambda: False, max_time=sim.now + 0.2)
    sim.client.initiate_key_update()
    assert one_rtt_keys(sim.client).key_phase == 2
    sim.client._ping_pending = True
    sim.run_until(lambda: False, max_time=sim.now + 0.2)
    assert one_rtt_keys(sim.server).key_phase == 2
    assert sim.client.terminal_error is None and sim.server.terminal_error is None


def test_old_keys_outlive_three_pto_until_the_peer_uses_the_new_ones() -> None:
    config, rec = traced({})
    sim = confirmed(Sim(config=config))
    sim.run_until(lambda: False, max_time=sim.now + 0.2)
    client, server = sim.client, sim.server
    # The server's next datagram is still protected with the phase-0 keys...
    server._ping_pending = True
    held = server.datagrams_to_send_ecn(sim.now)
    assert held
    # ... while the client starts an update, and the server stays silent (a busy or slow peer).
    client.initiate_key_update()
    assert one_rtt_keys(client).key_phase == 1
    client._ping_pending = True
    phase_one = client.datagrams_to_send_ecn(sim.now)
    pto = client._rtt.pto(True)
    later = sim.now + 10 * pto
    for data, _, ecn in held:
        client.receive_datagram(data, SERVER_ADDR, later, ecn)
    # RFC 9001 §6.5: old read keys are kept "no more than three times the PTO after having received
    # a packet protected using the new keys": none came yet, so the phase-0 packet still opens.
    assert rec[Perspective.CLIENT].drops[("ONE_RTT", DropReason.PAYLOAD_DECRYPT_ERROR)] == 0
    assert client.terminal_error is None
    # Once the peer's first phase-1 packet arrived, the old keys go three PTOs later.
    for data, _, ecn in phase_one:
        server.receive_datagram(data, CLIENT_ADDR, later, ecn)
    assert one_rtt_keys(server).key_phase == 1
    server._ping_pending = True
    for data, _, ecn in server.datagrams_to_send_ecn(later):
        client.receive_datagram(data, SERVER_ADDR, later, ecn)
    expiry = one_rtt_keys(client).previous_keys_expiry
    assert expiry is not None and later < expiry <= later + 3 * client._rtt.pto(True) + 1e-9


def forged_one_rtt(dcid: bytes, rng: random.Random) -> bytes:
    """A short-header packet with the right DCID and a random (unauthenticated) rest."""
    return bytes([0x40 | rng.randrange(0x40)]) + dcid + rng.randbytes(60)


def test_integrity_limit_of_failed_decryptions_is_aead_limit_reached() -> None:
    sim = confirmed(Sim())
    server = sim.server
    dcid = sim.client._packer.dcid
    keys = one_rtt_keys(server)
    # RFC 9001 §6.6: the AES-GCM integrity limit is 2^52 forged packets; shrink it to see it enforced.
    keys._integrity_limit = 20
    rng = random.Random(5)
    for _ in range(19):
        server.receive_datagram(forged_one_rtt(dcid, rng), CLIENT_ADDR, sim.now)
    assert server.terminal_error is None  # forgeries below the limit are dropped, nothing more
    server.receive_datagram(forged_one_rtt(dcid, rng), CLIENT_ADDR, sim.now)
    error = server.terminal_error
    assert isinstance(error, TransportError), error
    # "If the total number of received packets that fail authentication ... exceeds the integrity
    # limit ..., the endpoint MUST immediately close the connection with ... AEAD_LIMIT_REACHED".
    assert error.code == TransportErrorCode.AEAD_LIMIT_REACHED


def test_a_short_header_without_the_fixed_bit_is_discarded_before_decryption() -> None:
    config, rec = traced({})
    sim = confirmed(Sim(config=config))
    # Zero bytes after coalesced packets (aioquic pads its server flight this way) read as a short
    # header whose Fixed Bit is 0. RFC 9000 §17.3.1: such packets "are not valid packets in this
    # version and MUST be discarded" (we do not advertise grease_quic_bit): no decryption attempt, so
    # nothing counts as a failed authentication against the integrity limit (RFC 9001 §6.6).
    for _ in range(3):
        sim.server.receive_datagram(bytes(300), CLIENT_ADDR, sim.now)
    assert one_rtt_keys(sim.server)._invalid_packets == 0
    assert rec[Perspective.SERVER].drops[("ONE_RTT", DropReason.PAYLOAD_DECRYPT_ERROR)] == 0
    assert rec[Perspective.SERVER].drops[("ONE_RTT", DropReason.HEADER_PARSE_ERROR)] == 3
    assert sim.server.terminal_error is None


def test_confidentiality_limit_forces_a_key_update() -> None:
    never = Config(first_key_update_interval=1 << 40, key_update_interval=1 << 40)
    payload = random.Random(3).randbytes(400_000)
    sim = TransferSim(payload, config=never)
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    # RFC 9001 §6.6: "Endpoints MUST initiate a key update before reaching the confidentiality limit";
    # with the configured interval out of reach, only the limit (shrunk here) can trigger it.
    one_rtt_keys(sim.client)._confidentiality_limit = 40
    assert sim.run_until(sim.done, max_time=60)
    assert sim.digest_ok()
    # ~330 packets: an update once 40 were sent with a key and one of them was acknowledged (§6.5),
    # at most one per round trip while the window grows.
    assert one_rtt_keys(sim.client).key_phase >= 3
    assert sim.client.terminal_error is None and sim.server.terminal_error is None


# -- NAT rebinding and active migration (RFC 9000 §9) ---------------------------------------------


class PathSim(BothWaysSim):
    """Client datagrams leave from the local address the core chose; ``nat`` maps each client local
    address (None = the first socket) to the address the server sees. Server datagrams reach the
    client socket whose mapping matches their destination, or nobody (``to_stale_address``)."""

    def __init__(self, payload: bytes, download: bytes, **kwargs: Any) -> None:
        super().__init__(payload, download, **kwargs)
        self.nat: dict[Any, tuple[str, int]] = {None: CLIENT_ADDR}
        self.client_sources: Counter[tuple[str, int]] = Counter()
        self.client_sent: list[tuple[int, Any]] = []  # (size, local address the core chose)

    def _flush(self) -> None:
        for data, addr, ecn, local in self.client.datagrams_to_send_paths(self.now):
            assert addr == SERVER_ADDR
            self.client_sent.append((len(data), local))
            source = self.nat.get(local)
            if source is None:
                continue  # that interface is gone
            self.client_sources[source] += 1
            self._transmit(self.to_server, ("server", source), data, ecn)  # type: ignore[arg-type]
        for data, addr, ecn, _ in self.server.datagrams_to_send_paths(self.now):
            self.server_bytes_sent += len(data)
            local = next((k for k, v in self.nat.items() if v == addr), _GONE)
            if local is _GONE:
                self.to_stale_address += 1
                continue
            self._transmit(self.to_client, ("client", local, addr), data, ecn)  # type: ignore[arg-type]

    def _deliver(self, dst: Any, data: bytes, ecn: int) -> None:
        # Datagrams carry their addresses: ("server", client address) or ("client", local, remote).
        if dst[0] == "server":
            self.server_bytes_received += len(data)
            self.server.receive_datagram(data, dst[1], self.now, ecn)
        elif self.nat.get(dst[1]) == dst[2]:  # the mapping still holds
            self.client.receive_datagram(data, SERVER_ADDR, self.now, ecn, local_addr=dst[1])


_GONE = object()
REBOUND = ("10.0.0.1", 50001)
WIFI = ("10.9.9.9", 40000)


def on_wifi(sim: PathSim) -> bool:
    paths = sim.client._paths
    return paths is not None and paths.active.local_addr == "wifi"


def path_sim(seed: int) -> PathSim:
    rng = random.Random(seed)
    up, down = rng.randbytes(1_500_000), rng.randbytes(1_500_000)
    config = Config(first_key_update_interval=200, key_update_interval=200)
    return PathSim(up, down, seed=seed, config=config, to_server=Link(**LOSSY), to_client=Link(**LOSSY))  # type: ignore[arg-type]


def test_nat_rebinding_mid_transfer_completes_and_keeps_congestion_state() -> None:
    sim = path_sim(31)
    assert sim.run_until(lambda: len(sim.received) > 500_000, max_time=60)
    controller = sim.server._sph.congestion
    # The NAT gives the client's socket a new port; the old mapping is gone at once.
    sim.nat[None] = REBOUND
    assert sim.run_until(sim.done, max_time=300)
    assert sim.digest_ok()
    assert sim.client.terminal_error is None and sim.server.terminal_error is None
    paths = sim.server._paths
    assert paths is not None
    # RFC 9000 §9.3: the server validated the new address and sends there now.
    assert sim.server._peer_addr == REBOUND
    assert paths.active.remote_addr == REBOUND and paths.active.state is PathState.VALIDATED
    # §9.4: a port-only change keeps the congestion controller and its state.
    assert sim.server._sph.congestion is controller
    # Key updates went on across the rebinding.
    assert sim.client.stats()["key_phase"] >= 5


def test_active_client_migration_mid_transfer() -> None:
    sim = path_sim(32)
    assert sim.run_until(lambda: len(sim.received) > 500_000, max_time=60)
    old_cid = sim.client._packer.dcid
    controller = sim.server._sph.congestion
    # A second interface comes up; the client probes from it and moves once the server answered.
    sim.nat["wifi"] = WIFI
    sim.client.migrate(sim.now, local_addr="wifi")
    assert sim.run_until(lambda: on_wifi(sim))
    # Now the old interface goes away.
    old_sources = sim.client_sources[CLIENT_ADDR]
    del sim.nat[None]
    assert sim.run_until(sim.done, max_time=300)
    assert sim.digest_ok()
    assert sim.client.terminal_error is None and sim.server.terminal_error is None
    assert sim.client_sources[CLIENT_ADDR] == old_sources and sim.client_sources[WIFI] > 500
    paths = sim.server._paths
    assert paths is not None
    assert sim.server._peer_addr == WIFI
    assert paths.active.remote_addr == WIFI and paths.active.state is PathState.VALIDATED
    # RFC 9000 §9.5: a connection ID never used on the old path.
    assert sim.client._packer.dcid != old_cid
    # §9.4: a new host: the server restarted congestion control on the new path.
    assert sim.server._sph.congestion is not controller


def test_migration_probes_are_padded_and_the_old_path_carries_data_until_validation() -> None:
    sim = path_sim(33)
    assert sim.run_until(lambda: len(sim.received) > 200_000, max_time=60)
    sim.nat["wifi"] = WIFI
    start = len(sim.client_sent)
    sim.client.migrate(sim.now, local_addr="wifi")
    assert sim.run_until(lambda: on_wifi(sim))
    sent = sim.client_sent[start:]
    wifi_sizes = [size for size, local in sent if local == "wifi"]
    # RFC 9000 §8.2.1: a datagram carrying PATH_CHALLENGE is expanded to at least 1200 bytes.
    assert wifi_sizes and wifi_sizes[0] >= 1200
    # §9.2: non-probing packets stay on the old path until the new one is validated.
    assert sum(1 for _, local in sent if local is None) > 0


def outage_then_rebinding(sim: PathSim) -> None:
    """Two seconds of silence (the NAT mapping times out), then the client comes back on a new port."""
    t = sim.now
    sim.to_server.black_holes.append((t, t + 2))
    sim.to_client.black_holes.append((t, t + 2))
    sim.run_until(lambda: False, max_time=t + 2)
    sim.nat[None] = REBOUND


def rebinding_twice_within_a_round_trip(sim: PathSim) -> None:
    sim.nat[None] = REBOUND
    sim.run_until(lambda: False, max_time=sim.now + 0.005)
    sim.nat[None] = ("10.0.0.1", 50002)


def migration_while_the_old_interface_dies(sim: PathSim) -> None:
    sim.nat["wifi"] = WIFI
    sim.client.migrate(sim.now, local_addr="wifi")
    del sim.nat[None]


def migration_twice(sim: PathSim) -> None:
    sim.nat["wifi"] = WIFI
    sim.client.migrate(sim.now, local_addr="wifi")
    assert sim.run_until(lambda: on_wifi(sim))
    sim.run_until(lambda: False, max_time=sim.now + 0.3)
    sim.nat["lte"] = ("10.7.7.7", 30000)
    sim.client.migrate(sim.now, local_addr="lte")
    del sim.nat[None]
    del sim.nat["wifi"]


@pytest.mark.parametrize(
    "change",
    [
        outage_then_rebinding,
        rebinding_twice_within_a_round_trip,
        migration_while_the_old_interface_dies,
        migration_twice,
    ],
)
def test_harder_path_changes_mid_transfer_complete(change: Any) -> None:
    rng = random.Random(71)
    lossy = {"loss": 0.02, "reorder": 0.05}
    config = Config(first_key_update_interval=200, key_update_interval=200)
    sim = PathSim(
        rng.randbytes(1_000_000),
        rng.randbytes(3_000_000),
        seed=71,
        config=config,
        to_server=Link(**lossy),  # type: ignore[arg-type]
        to_client=Link(**lossy),  # type: ignore[arg-type]
    )
    assert sim.run_until(lambda: len(sim.received) > 300_000, max_time=60)
    change(sim)
    assert sim.run_until(sim.done, max_time=sim.now + 200)
    assert sim.digest_ok()
    assert sim.client.terminal_error is None and sim.server.terminal_error is None
    # The server ends on the client's current address, validated.
    paths = sim.server._paths
    assert paths is not None and paths.active.state is PathState.VALIDATED
    assert sim.server._peer_addr in sim.nat.values()


# -- path MTU discovery (RFC 9000 §14.3, RFC 8899) ------------------------------------------------


def test_pmtud_reaches_the_path_mtu_within_a_few_probe_rounds_and_recovers_when_it_shrinks() -> None:
    config, rec = traced({})
    payload = random.Random(41).randbytes(4_000_000)
    sim = TransferSim(payload, config=config, to_server=Link(mtu=1400), to_client=Link(mtu=1400))
    sim.paused = True  # a ping-pong connection: the search runs on its own timer
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    start = sim.now
    assert sim.run_until(lambda: sim.client._pmtud.done, max_time=30)
    rtts = (sim.now - start) / sim.client._rtt.smoothed_rtt
    # The opening probe of 1452 bytes is lost (one loss abandons it), then the binary search over
    # 1280..1452 to within 20 bytes takes 3 acknowledged probes (an RTT each) and 3 lost ones of 1409
    # bytes (a size is abandoned after MAX_PROBES; each loss is known 9/8 RTT after the probe, as the
    # PING behind it makes the peer acknowledge at once). Probes go back to back: 7.5 RTTs, after the
    # 5 RTTs the first probe waits once the handshake is confirmed (quic-go's mtuProbeDelay).
    assert rtts <= 8 + PROBE_DELAY_RTTS, rtts
    assert 1400 - 20 <= sim.client._max_datagram_size <= 1400
    sizes = rec[Perspective.CLIENT].mtus
    assert sizes and sizes[-1] == sim.client._max_datagram_size
    # The path shrinks below the discovered size mid-transfer: full-size datagrams vanish.
    sim.to_server.mtu = sim.to_client.mtu = 1300
    sim.paused = False
    assert sim.run_until(sim.done, max_time=300)
    assert sim.digest_ok()
    # RFC 8899 §4.3: the black hole was detected, the size fell back within the new path MTU, and the
    # connection survived (a lost probe or a black hole is never a reason to close).
    assert sim.client._pmtud.black_holes >= 1
    assert 1200 <= sim.client._max_datagram_size <= 1300
    assert sim.client.terminal_error is None and sim.server.terminal_error is None


def test_lost_mtu_probes_are_not_congestion() -> None:
    payload = random.Random(42).randbytes(2_000_000)
    # Every datagram above 1290 bytes is lost: all probes fail, nothing else does.
    sim = TransferSim(payload, seed=42, config=Config(congestion_control="newreno"), to_server=Link(mtu=1290))
    assert sim.run_until(lambda: sim.done() and sim.client._pmtud.done, max_time=120)
    assert sim.digest_ok()
    assert 1280 <= sim.client._max_datagram_size <= 1290
    # RFC 9000 §14.4: "loss of a QUIC packet that is carried in a PMTU probe is ... not a reliable
    # indication of congestion and SHOULD NOT trigger a congestion control reaction".
    assert sim.client._sph.congestion.in_slow_start()


# -- ECN (RFC 9000 §13.4) ------------------------------------------------------------------------


def ecn_state(conn: QuicConnection) -> str:
    tracker = conn._sph.ecn
    assert tracker is not None
    return str(tracker.state.value)


def test_ecn_validation_passes_both_ways_on_a_path_that_passes_marks() -> None:
    rng = random.Random(51)
    sim = BothWaysSim(rng.randbytes(300_000), rng.randbytes(300_000), seed=51)
    assert sim.run_until(sim.done, max_time=30)
    assert ecn_state(sim.client) == ecn_state(sim.server) == "capable"
    # Validated: every 1-RTT datagram is marked ECT(0) and the receivers counted them.
    app = PacketNumberSpace.APPLICATION
    assert sim.server._spaces[app].ack_tracker.ect0 > 100 and sim.client._spaces[app].ack_tracker.ect0 > 100
    sim.client._ping_pending = True
    assert {ecn for _, _, ecn in sim.client.datagrams_to_send_ecn(sim.now)} == {0b10}


def test_ecn_is_disabled_on_a_path_that_bleaches_marks() -> None:
    rng = random.Random(52)
    bleach = {"to_server": Link(bleach_ecn=True), "to_client": Link(bleach_ecn=True)}
    sim = BothWaysSim(rng.randbytes(300_000), rng.randbytes(300_000), seed=52, **bleach)  # type: ignore[arg-type]
    assert sim.run_until(sim.done, max_time=30)
    assert sim.digest_ok()
    assert ecn_state(sim.client) == ecn_state(sim.server) == "failed"
    # RFC 9000 §13.4.2: "If validation fails, then the endpoint MUST disable ECN": no more marks.
    sim.client._ping_pending = True
    out = sim.client.datagrams_to_send_ecn(sim.now)
    assert out and all(ecn == 0 for _, _, ecn in out)


@pytest.mark.parametrize(("old_bleaches", "expected"), [(True, "capable"), (False, "failed")])
def test_ecn_is_validated_again_after_migrating_to_a_new_path(old_bleaches: bool, expected: str) -> None:
    rng = random.Random(61)
    links = {"to_server": Link(bleach_ecn=old_bleaches), "to_client": Link(bleach_ecn=old_bleaches)}
    sim = PathSim(rng.randbytes(1_500_000), rng.randbytes(1_500_000), seed=61, **links)  # type: ignore[arg-type]
    assert sim.run_until(lambda: len(sim.received) > 300_000, max_time=60)
    before = "failed" if old_bleaches else "capable"
    assert ecn_state(sim.client) == ecn_state(sim.server) == before
    sim.nat["wifi"] = WIFI
    sim.client.migrate(sim.now, local_addr="wifi")
    assert sim.run_until(lambda: on_wifi(sim))
    del sim.nat[None]
    # The new path treats ECN the other way round.
    sim.to_server.bleach_ecn = sim.to_client.bleach_ecn = not old_bleaches
    assert sim.run_until(sim.done, max_time=300)
    assert sim.digest_ok()
    # RFC 9000 §13.4.2: "Endpoints validate ECN for packets sent on each network path independently.
    # An endpoint thus validates ECN ... on active connection migration to a new path."
    assert ecn_state(sim.client) == ecn_state(sim.server) == expected


def test_ce_marks_halve_the_window_once_per_round_trip() -> None:
    payload = random.Random(53).randbytes(6_000_000)
    sim = TransferSim(payload, seed=53, config=Config(congestion_control="newreno"))
    assert sim.run_until(lambda: len(sim.received) > 1_000_000, max_time=60)
    assert ecn_state(sim.client) == "capable"
    cc = sim.client._sph.congestion
    rtt = sim.client._rtt
    # From now on the path marks every ECT datagram CE, for 10 round trips, then stops.
    sim.to_server.ce = 1.0
    begin = sim.now
    cuts: list[tuple[float, int, int]] = []
    window = cc.congestion_window
    while sim.now < begin + 10 * rtt.min_rtt:
        assert sim.step()
        if cc.congestion_window < window:
            cuts.append((sim.now, window, cc.congestion_window))
        window = cc.congestion_window
    sim.to_server.ce = 0.0
    assert sim.run_until(sim.done, max_time=300)
    assert sim.digest_ok()
    assert sim.client._sph.packets_lost == 0  # every reduction came from CE marks
    # RFC 9002 §7.1 / §B.7: each cut halves the window (down to the minimum of 2 packets)...
    minimum = 2 * sim.client._max_datagram_size
    for _, before, after in cuts:
        assert after == max(before // 2, minimum), (before, after)
    # ... at most once per round trip: a new recovery period begins only with a packet sent after the
    # previous cut, whose CE mark needs a round trip to come back.
    assert len(cuts) >= 3
    for (t1, _, _), (t2, _, _) in itertools.pairwise(cuts):
        assert t2 - t1 >= rtt.min_rtt, cuts
