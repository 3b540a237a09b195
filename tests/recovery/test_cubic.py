"""CUBIC against the equations of RFC 9438: K, W_cubic(t), the Reno-friendly W_est, fast convergence,
beta_cubic = 0.7, C = 0.4, and application-limited epochs."""

from __future__ import annotations

import pytest

from quicsilver.congestion import CubicSender, RTTStats
from quicsilver.congestion.cubic import ALPHA_CUBIC, BETA_CUBIC, C_CUBIC

MDS = 1200


def sender(srtt: float = 0.1) -> CubicSender:
    rtt = RTTStats()
    rtt.update(srtt, 0.0, now=0.0)
    return CubicSender(rtt, MDS)


def grow_to(cc: CubicSender, packets: int) -> int:
    """Slow start up to ``packets`` datagrams; returns the next free packet number."""
    pn = 0
    while cc.congestion_window < packets * MDS:
        cc.on_packet_sent(0.0, 0, pn, MDS, True)
        cc.on_packet_acked(pn, MDS, cc.congestion_window, 0.0)
        pn += 1
    assert cc.congestion_window == packets * MDS
    return pn


def lose(cc: CubicSender, pn: int, now: float) -> int:
    """Send a packet and declare it lost; then send one more whose ACK ends recovery."""
    cc.on_packet_sent(now, 0, pn, MDS, True)
    cc.on_congestion_event(pn, MDS, cc.congestion_window, now)
    cc.on_packet_sent(now, 0, pn + 1, MDS, True)
    return pn + 1


def test_constants() -> None:
    assert C_CUBIC == 0.4
    assert BETA_CUBIC == 0.7
    assert pytest.approx(3 * 0.3 / 1.7) == ALPHA_CUBIC


def test_multiplicative_decrease_and_k() -> None:
    cc = sender()
    pn = grow_to(cc, 100)
    pn = lose(cc, pn, 1.0)
    assert cc.w_max == 100 * MDS
    assert cc.congestion_window == 70 * MDS  # beta_cubic * cwnd (RFC 9438 §4.6)
    assert cc.ssthresh == 70 * MDS
    cc.on_packet_acked(pn, MDS, cc.congestion_window, 10.0)  # first ACK in congestion avoidance: epoch
    assert cc.epoch_start == 10.0
    # RFC 9438 §4.2 Figure 2: K = cbrt((W_max - cwnd_epoch) / C), in segments.
    assert cc.k == pytest.approx((30 / 0.4) ** (1 / 3))
    # Figure 1: W_cubic(t) = C (t - K)^3 + W_max; it starts at cwnd_epoch and plateaus at W_max at t = K.
    assert cc.w_cubic(0.0) == pytest.approx(70 * MDS)
    assert cc.w_cubic(cc.k) == pytest.approx(100 * MDS)
    for t in (0.5, 2.0, 6.0):
        assert cc.w_cubic(t) == pytest.approx((0.4 * (t - cc.k) ** 3 + 100) * MDS)


def test_concave_region_step() -> None:
    cc = sender(0.1)
    pn = grow_to(cc, 100)
    pn = lose(cc, pn, 1.0)
    cc.on_packet_acked(pn, MDS, cc.congestion_window, 10.0)  # epoch start
    before = cc.congestion_window
    w_est_before = cc.w_est
    cc.on_packet_sent(10.0, 0, pn + 1, MDS, True)
    cc.on_packet_acked(pn + 1, MDS, before, 12.0)
    t = 2.0
    k = (30 / 0.4) ** (1 / 3)
    w_cubic_t = (0.4 * (t - k) ** 3 + 100) * MDS
    w_est = w_est_before + ALPHA_CUBIC * MDS * MDS / before
    assert w_cubic_t > w_est  # not Reno-friendly here
    # RFC 9438 §4.4: target = W_cubic(t + RTT) within [cwnd, 1.5 cwnd]; (target - cwnd) / cwnd per segment.
    target = min(max((0.4 * (t + 0.1 - k) ** 3 + 100) * MDS, before), 1.5 * before)
    expected = before + (target - before) * MDS / before
    assert abs(cc.congestion_window - expected) <= 1


def test_reno_friendly_region() -> None:
    cc = sender(0.1)
    pn = grow_to(cc, 100)
    pn = lose(cc, pn, 1.0)
    # Many ACKs at nearly the same instant: the cubic curve barely moves, W_est grows with each ACK.
    w_est = 70.0 * MDS
    cwnd = 70 * MDS
    for i in range(700):
        cc.on_packet_sent(5.0, 0, pn + i, MDS, True)
        cc.on_packet_acked(pn + i, MDS, cc.congestion_window, 5.0 + i * 1e-5)
        alpha = ALPHA_CUBIC if w_est < 100 * MDS else 1.0
        w_est += alpha * MDS * MDS / cwnd  # RFC 9438 §4.3
        cwnd = max(int(w_est), cwnd)
    assert cc.w_est == pytest.approx(w_est)
    assert cc.w_cubic(700e-5) < cc.w_est
    assert abs(cc.congestion_window - w_est) <= 1  # cwnd = W_est in the Reno-friendly region
    # About alpha_cubic segments per window of ACKs (10 windows of 70 datagrams).
    assert (cc.congestion_window - 70 * MDS) / MDS == pytest.approx(10 * ALPHA_CUBIC, rel=0.1)


def test_curve_reaches_w_max_at_k_then_probes_beyond() -> None:
    cc = sender(0.1)
    pn = grow_to(cc, 100)
    pn = lose(cc, pn, 1.0)
    t0 = 10.0
    k = (30 / 0.4) ** (1 / 3)
    now = t0
    samples: dict[float, int] = {}
    w_est: dict[float, float] = {}
    while now < t0 + k + 2.01:
        cc.on_packet_sent(now, 0, pn, MDS, True)
        cc.on_packet_acked(pn, MDS, cc.congestion_window, now)
        pn += 1
        for mark in (k / 2, k, k + 2.0):
            if mark not in samples and now - t0 >= mark:
                samples[mark] = cc.congestion_window
                w_est[mark] = cc.w_est
        now += 0.001
    # Concave growth toward W_max, the plateau near t = K, convex growth (probing) beyond it.
    assert 70 * MDS < samples[k / 2] < 100 * MDS
    assert samples[k / 2] == pytest.approx(cc.w_cubic(k / 2 + 0.1), rel=0.01)
    assert samples[k] == pytest.approx(100 * MDS, rel=0.01)
    assert samples[k + 2.0] > 100 * MDS
    # By then (1 ms per ACK, 100 ms RTT) the Reno-friendly estimate has overtaken the curve: cwnd = W_est.
    assert w_est[k + 2.0] > cc.w_cubic(k + 2.0)
    assert samples[k + 2.0] == pytest.approx(w_est[k + 2.0], abs=1)


def test_fast_convergence() -> None:
    cc = sender()
    pn = grow_to(cc, 100)
    pn = lose(cc, pn, 1.0)
    cc.on_packet_acked(pn, MDS, cc.congestion_window, 2.0)  # ends recovery
    cwnd = cc.congestion_window
    assert cwnd < cc.w_max
    lose(cc, pn + 1, 3.0)
    # RFC 9438 §4.7: the window shrank since the last event: W_max = cwnd * (1 + beta) / 2.
    assert cc.w_max == pytest.approx(cwnd * 1.7 / 2)
    assert cc.congestion_window == int(cwnd * 0.7)


def test_no_fast_convergence_when_disabled() -> None:
    rtt = RTTStats()
    cc = CubicSender(rtt, MDS, fast_convergence=False)
    pn = grow_to(cc, 100)
    pn = lose(cc, pn, 1.0)
    cc.on_packet_acked(pn, MDS, cc.congestion_window, 2.0)
    cwnd = cc.congestion_window
    lose(cc, pn + 1, 3.0)
    assert cc.w_max == cwnd


def test_application_limited_ends_the_epoch() -> None:
    cc = sender()
    pn = grow_to(cc, 100)
    pn = lose(cc, pn, 1.0)
    cc.on_packet_acked(pn, MDS, cc.congestion_window, 2.0)
    assert cc.epoch_start == 2.0
    cwnd = cc.congestion_window
    cc.on_packet_sent(2.0, 0, pn + 1, MDS, True)
    cc.on_packet_acked(pn + 1, MDS, MDS, 30.0)  # one packet in flight: application-limited
    assert cc.epoch_start is None
    assert cc.congestion_window == cwnd
    # The next cwnd-limited ACK starts a new epoch from the current window (idle time not counted).
    cc.on_packet_sent(30.0, 0, pn + 2, MDS, True)
    cc.on_packet_acked(pn + 2, MDS, cc.congestion_window, 31.0)
    assert cc.epoch_start == 31.0
    assert cc.congestion_window - cwnd < MDS


def test_persistent_congestion_resets_epoch() -> None:
    cc = sender()
    pn = grow_to(cc, 50)
    pn = lose(cc, pn, 1.0)
    cc.on_packet_acked(pn, MDS, cc.congestion_window, 2.0)
    cc.on_persistent_congestion()
    assert cc.congestion_window == 2 * MDS
    assert cc.epoch_start is None
    assert cc.in_slow_start()
