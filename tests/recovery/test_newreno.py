"""NewReno exactly as RFC 9002 §7: slow start, congestion avoidance, one reduction per recovery period,
persistent congestion, window bounds and ECN-CE."""

from __future__ import annotations

from quicsilver.congestion import NewRenoSender, RTTStats, new_send_algorithm
from quicsilver.congestion.cubic import CubicSender
from quicsilver.congestion.interface import CongestionState
from quicsilver.qlog.tracer import ConnectionTracer

MDS = 1200


def make() -> NewRenoSender:
    rtt = RTTStats()
    rtt.update(0.1, 0.0, now=0.0)
    return NewRenoSender(rtt, MDS)


def send(cc: NewRenoSender, pns: range, now: float = 0.0) -> None:
    for pn in pns:
        cc.on_packet_sent(now, 0, pn, MDS, True)


def test_initial_window_and_bounds() -> None:
    cc = make()
    assert cc.congestion_window == 32 * MDS
    assert cc.min_congestion_window == 2 * MDS
    assert cc.max_congestion_window == 10_000 * MDS
    assert cc.in_slow_start()
    assert not cc.in_recovery()
    assert cc.can_send(32 * MDS - 1)
    assert not cc.can_send(32 * MDS)


def test_slow_start_grows_by_bytes_acked() -> None:
    cc = make()
    send(cc, range(32))
    for pn in range(32):
        cc.on_packet_acked(pn, MDS, 32 * MDS, 0.1)
    assert cc.congestion_window == 64 * MDS  # doubled in one round trip


def test_no_growth_when_application_limited() -> None:
    cc = make()
    send(cc, range(4))
    for pn in range(4):
        cc.on_packet_acked(pn, MDS, 4 * MDS, 0.1)  # 4 of 32 packets in flight: underutilised (§7.8)
    assert cc.congestion_window == 32 * MDS


def test_loss_halves_once_per_recovery_period() -> None:
    cc = make()
    send(cc, range(40))
    cc.on_congestion_event(5, MDS, 40 * MDS, 0.2)
    assert cc.congestion_window == 16 * MDS  # kLossReductionFactor 0.5
    assert cc.ssthresh == 16 * MDS
    assert not cc.in_slow_start()
    # More losses of packets sent before recovery began: same congestion event.
    cc.on_congestion_event(20, MDS, 40 * MDS, 0.21)
    cc.on_congestion_event(39, MDS, 40 * MDS, 0.22)
    assert cc.congestion_window == 16 * MDS
    # Acknowledgments of pre-recovery packets do not grow the window and keep recovery going.
    cc.on_packet_acked(30, MDS, 40 * MDS, 0.25)
    assert cc.in_recovery()
    assert cc.congestion_window == 16 * MDS
    # A packet sent during recovery is acknowledged: recovery ends; its loss would be a new event.
    send(cc, range(40, 60), 0.3)
    cc.on_packet_acked(40, MDS, 16 * MDS, 0.4)
    assert not cc.in_recovery()
    cc.on_congestion_event(41, MDS, 16 * MDS, 0.41)
    assert cc.congestion_window == 8 * MDS


def test_congestion_avoidance_one_datagram_per_window() -> None:
    cc = make()
    send(cc, range(40))
    cc.on_congestion_event(0, MDS, 40 * MDS, 0.1)
    cwnd = cc.congestion_window
    assert cwnd == 16 * MDS
    send(cc, range(40, 100), 0.2)
    pn = 40
    # Acknowledge one window's worth of bytes (while cwnd-limited): exactly one datagram of growth.
    for _ in range(cwnd // MDS - 1):
        cc.on_packet_acked(pn, MDS, cwnd, 0.3)
        pn += 1
    assert cc.congestion_window == cwnd
    cc.on_packet_acked(pn, MDS, cwnd, 0.3)
    assert cc.congestion_window == cwnd + MDS
    assert not cc.in_slow_start()


def test_persistent_congestion_collapses_to_minimum_window() -> None:
    cc = make()
    send(cc, range(10))
    cc.on_congestion_event(9, MDS, 10 * MDS, 1.0)
    cc.on_persistent_congestion()
    assert cc.congestion_window == 2 * MDS
    assert cc.in_slow_start()  # ssthresh stays at the halved window (RFC 9002 §B.8)
    assert cc.ssthresh == 16 * MDS
    # The recovery period ended: the next loss is a new congestion event, floored at the minimum.
    send(cc, range(10, 12), 2.0)
    cc.on_congestion_event(11, MDS, 2 * MDS, 2.1)
    assert cc.congestion_window == 2 * MDS


def test_window_never_exceeds_maximum() -> None:
    cc = make()
    send(cc, range(20_000))
    for pn in range(20_000):
        cc.on_packet_acked(pn, MDS, cc.congestion_window, 0.1)
    assert cc.congestion_window == 10_000 * MDS


def test_ecn_ce_reduces_once_per_round_trip() -> None:
    cc = make()
    send(cc, range(10))
    cc.on_packet_acked(3, MDS, 32 * MDS, 0.1)
    cc.on_ecn_ce(0.1, 3)
    assert cc.congestion_window == 16 * MDS + MDS // 2  # (32 + 1) * 0.5 datagrams
    reduced = cc.congestion_window
    cc.on_ecn_ce(0.11, 5)  # sent before the reduction
    cc.on_ecn_ce(0.12)  # defaults to the largest acknowledged (3)
    assert cc.congestion_window == reduced
    send(cc, range(10, 12), 0.2)
    cc.on_ecn_ce(0.3, 11)
    assert cc.congestion_window == reduced // 2


def test_retransmission_timeout_reaction() -> None:
    cc = make()
    send(cc, range(5))
    cc.on_retransmission_timeout(False)
    assert cc.congestion_window == 32 * MDS
    cc.on_retransmission_timeout(True)
    assert cc.congestion_window == 2 * MDS
    assert cc.ssthresh == 16 * MDS


def test_larger_datagrams_scale_the_minimum_window() -> None:
    cc = make()
    send(cc, range(3))
    cc.on_congestion_event(2, MDS, 3 * MDS, 0.1)
    cc.on_persistent_congestion()
    cc.set_max_datagram_size(1400)
    assert cc.congestion_window == 2 * 1400
    cc.set_max_datagram_size(1300)  # never shrinks
    assert cc.max_datagram_size == 1400


class StateRecorder(ConnectionTracer):
    def __init__(self) -> None:
        self.states: list[str] = []

    def updated_congestion_state(self, state: str) -> None:
        self.states.append(state)


def test_tracer_sees_state_changes() -> None:
    tracer = StateRecorder()
    rtt = RTTStats()
    cc = NewRenoSender(rtt, MDS, tracer)
    send(cc, range(40))
    cc.on_packet_acked(0, MDS, 40 * MDS, 0.1)
    cc.on_congestion_event(1, MDS, 40 * MDS, 0.1)
    cc.on_packet_acked(2, MDS, 4 * MDS, 0.1)  # in recovery: no change
    send(cc, range(40, 42))
    cc.on_packet_acked(41, MDS, 2 * MDS, 0.2)
    assert tracer.states == [
        CongestionState.SLOW_START,
        CongestionState.RECOVERY,
        CongestionState.APPLICATION_LIMITED,
    ]


def test_factory() -> None:
    rtt = RTTStats()
    assert isinstance(new_send_algorithm("cubic", rtt), CubicSender)
    assert type(new_send_algorithm("newreno", rtt)) is NewRenoSender
    try:
        new_send_algorithm("bbr", rtt)
    except ValueError as e:
        assert "bbr" in str(e)
    else:
        raise AssertionError("unknown algorithm accepted")
