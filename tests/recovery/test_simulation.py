"""Recovery end to end on a simulated path: SentPacketHandler + congestion controller + pacer on the
sending side, ReceivedPacketTracker on the receiving side, a bottleneck link with a drop-tail queue in
between, all on a virtual clock. The transfer must complete, use the link well, react to congestion,
survive a black hole (PTO backoff, persistent congestion) and leave nothing in flight."""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from quicsilver.ackhandler import ReceivedPacketTracker, SendMode, SentPacket, SentPacketHandler
from quicsilver.congestion import RTTStats, new_send_algorithm
from quicsilver.protocol import ECN, PacketNumberSpace, Perspective

APP = PacketNumberSpace.APPLICATION
MDS = 1200


@dataclass
class Path:
    rate: float = 1_250_000.0  # bytes/s (10 Mbit/s)
    one_way_delay: float = 0.025
    queue_packets: int = 60
    random_loss: float = 0.0
    blackhole: tuple[float, float] | None = None


@dataclass
class Sim:
    algorithm: str
    path: Path
    chunks: int
    seed: int = 1
    now: float = 0.0
    events: list[tuple[float, int, str, Any]] = field(default_factory=list)
    seq: int = 0
    link_free: float = 0.0
    pending: deque[int] = field(default_factory=deque)
    delivered: set[int] = field(default_factory=set)
    min_cwnd_seen: int = 1 << 62
    reductions: int = 0
    ptos: int = 0
    timer_at: float | None = None
    pump_at: float | None = None
    wrap_cc: Callable[[Any], Any] | None = None  # a test's spy around the congestion controller

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.rtt = RTTStats()
        self.cc = new_send_algorithm(self.algorithm, self.rtt, MDS)
        if self.wrap_cc is not None:
            self.cc = self.wrap_cc(self.cc)
        self.sender = SentPacketHandler(
            self.rtt, self.cc, Perspective.CLIENT, rng=random.Random(self.seed), enable_ecn=False
        )
        self.sender.drop_space(PacketNumberSpace.INITIAL, 0.0)
        self.sender.drop_space(PacketNumberSpace.HANDSHAKE, 0.0)
        self.sender.set_handshake_confirmed(0.0)
        self.receiver = ReceivedPacketTracker(APP)
        self.pending.extend(range(self.chunks))

    def at(self, t: float, kind: str, data: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, data))

    # -- sender ---------------------------------------------------------------------------------

    def pump(self) -> None:
        h = self.sender
        while True:
            mode = h.send_mode(self.now)
            if mode == SendMode.PACING_LIMITED:
                wake = h.time_until_send(self.now)
                assert wake > self.now
                if self.pump_at is None or wake < self.pump_at:
                    self.pump_at = wake
                    self.at(wake, "pump", wake)
                break
            if mode not in (SendMode.ANY, SendMode.PTO_APPLICATION):
                break
            frames: list[Any]
            if self.pending:
                frames = [self.pending.popleft()]
            elif mode == SendMode.PTO_APPLICATION:
                oldest = h.queue_probe_packet(APP)
                frames = oldest.frames if oldest is not None else ["PING"]
            else:
                break
            pkt = SentPacket(h.pop_packet_number(APP), APP, self.now, MDS, True, True, frames)
            h.sent_packet(pkt)
            self.transmit(pkt)
        self.arm_timer()

    def arm_timer(self) -> None:
        alarm = self.sender.loss_detection_timeout()
        if alarm is not None and alarm != self.timer_at:
            self.timer_at = alarm
            self.at(max(alarm, self.now), "loss_timer", alarm)

    def on_lost(self, lost: list[SentPacket]) -> None:
        for p in lost:
            self.pending.extend(c for c in p.frames if isinstance(c, int) and c not in self.delivered)

    def observe(self) -> None:
        cwnd = self.cc.congestion_window
        self.min_cwnd_seen = min(self.min_cwnd_seen, cwnd)

    # -- link -----------------------------------------------------------------------------------

    def transmit(self, pkt: SentPacket) -> None:
        path = self.path
        if path.blackhole is not None and path.blackhole[0] <= self.now < path.blackhole[1]:
            return
        if self.rng.random() < path.random_loss:
            return
        queued = max(0.0, self.link_free - self.now) * path.rate / MDS
        if queued >= path.queue_packets:
            return  # drop-tail
        self.link_free = max(self.link_free, self.now) + MDS / path.rate
        self.at(self.link_free + path.one_way_delay, "arrive", pkt.pn)
        self.at(self.link_free + path.one_way_delay, "deliver", pkt.frames)

    # -- receiver -------------------------------------------------------------------------------

    def receive(self, pn: int) -> None:
        r = self.receiver
        if r.is_potentially_duplicate(pn):
            return
        r.received_packet(pn, ECN.NOT_ECT, self.now, True)
        self.maybe_ack()

    def maybe_ack(self) -> None:
        frame = self.receiver.get_ack_frame(self.now)
        if frame is not None:
            self.at(self.now + self.path.one_way_delay, "ack", frame)
            return
        alarm = self.receiver.ack_alarm()
        if alarm is not None:
            self.at(alarm, "ack_alarm")

    # -- loop -----------------------------------------------------------------------------------

    def run(self, until: float = 120.0) -> None:
        self.pump()
        while self.events and len(self.delivered) < self.chunks:
            self.now, _, kind, data = heapq.heappop(self.events)
            assert self.now < until, "transfer stalled"
            h = self.sender
            if kind == "arrive":
                self.receive(data)
            elif kind == "deliver":
                self.delivered.update(c for c in data if isinstance(c, int))
            elif kind == "ack_alarm":
                self.maybe_ack()
            elif kind == "ack":
                before = self.cc.congestion_window
                result = h.received_ack(data, APP, self.now)
                if self.cc.congestion_window < before:
                    self.reductions += 1
                self.on_lost(result.lost)
                self.observe()
                self.pump()
            elif kind == "loss_timer":
                if data != self.timer_at:
                    continue  # superseded
                self.timer_at = None
                alarm = h.loss_detection_timeout()
                if alarm is not None and alarm <= self.now:
                    res = h.on_loss_detection_timeout(self.now)
                    self.ptos += res.probe_space is not None
                    self.on_lost(res.lost)
                    self.observe()
                self.pump()
            elif kind == "pump":
                if data != self.pump_at:
                    continue
                self.pump_at = None
                self.pump()
            assert h.bytes_in_flight >= 0
        # Drain: let the final ACKs arrive.
        while self.events:
            self.now, _, kind, data = heapq.heappop(self.events)
            if kind == "arrive":
                self.receive(data)
            elif kind == "ack_alarm":
                self.maybe_ack()
            elif kind == "ack":
                self.sender.received_ack(data, APP, self.now)
            if self.now > until:
                break


@pytest.mark.parametrize("algorithm", ["newreno", "cubic"])
def test_bulk_transfer_through_a_bottleneck(algorithm: str) -> None:
    sim = Sim(algorithm, Path(), chunks=3000)
    sim.run()
    assert len(sim.delivered) == 3000
    ideal = 3000 * MDS / sim.path.rate
    finish = sim.now
    # Slow start overshoots the 60-packet queue, then the controller settles: the link stays mostly busy.
    assert finish < ideal * 1.5, f"{algorithm}: {finish:.2f}s vs ideal {ideal:.2f}s"
    assert sim.reductions >= 1
    assert sim.sender.bytes_in_flight == 0
    assert sim.rtt.min_rtt == pytest.approx(0.05 + MDS / sim.path.rate, rel=0.05)
    assert sim.min_cwnd_seen > 2 * MDS  # no persistent congestion on a merely congested path


@pytest.mark.parametrize("algorithm", ["newreno", "cubic"])
def test_random_loss_transfer_completes(algorithm: str) -> None:
    sim = Sim(algorithm, Path(random_loss=0.05, queue_packets=1000), chunks=1500, seed=3)
    sim.run()
    assert len(sim.delivered) == 1500
    assert sim.reductions >= 5
    assert sim.sender.bytes_in_flight == 0


def test_blackhole_triggers_pto_backoff_and_persistent_congestion() -> None:
    established: list[tuple[float, int]] = []

    class Spy:
        """The real controller (maybe compiled: wrapped, not patched), noting each collapse."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def on_persistent_congestion(self) -> None:
            self.inner.on_persistent_congestion()
            established.append((sim.now, self.inner.congestion_window))

    sim = Sim("newreno", Path(blackhole=(1.0, 4.0)), chunks=2500, wrap_cc=Spy)
    sim.run()
    assert len(sim.delivered) == 2500
    assert sim.ptos >= 3  # exponential backoff across a 3 s outage
    # RFC 9002 §7.6: once the path is back, the losses span more than 3 PTOs: minimum window.
    assert established and all(cwnd == 2 * MDS for _, cwnd in established)
    assert 4.0 <= established[0][0] < 10.0
    assert sim.min_cwnd_seen <= 3 * MDS
    assert sim.sender.bytes_in_flight == 0
