"""RTT estimator against the formulas of RFC 9002 §5 and the PTO of §6.2.1."""

from __future__ import annotations

import pytest

from quicsilver.congestion.rtt import RTTStats


def test_initial_values_rfc9002_6_2_2() -> None:
    rtt = RTTStats()
    assert not rtt.has_measurement
    assert rtt.smoothed_rtt == pytest.approx(0.333)
    assert rtt.rttvar == pytest.approx(0.1665)
    # kInitialRtt 333 ms gives a first PTO of about 1 s.
    assert rtt.pto(False) == pytest.approx(0.999)
    assert rtt.pto(True) == pytest.approx(0.999 + 0.025)


def test_first_sample_ignores_ack_delay() -> None:
    rtt = RTTStats()
    rtt.update(0.1, 0.05, now=1.0)
    assert rtt.has_measurement
    assert rtt.min_rtt == pytest.approx(0.1)
    assert rtt.smoothed_rtt == pytest.approx(0.1)
    assert rtt.rttvar == pytest.approx(0.05)
    assert rtt.latest_rtt == pytest.approx(0.1)


def test_ewma_with_ack_delay_subtracted() -> None:
    rtt = RTTStats()
    rtt.update(0.1, 0.0, now=1.0)
    rtt.update(0.2, 0.02, now=2.0)
    adjusted = 0.18
    assert rtt.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * abs(0.1 - adjusted))
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * adjusted)
    assert rtt.min_rtt == pytest.approx(0.1)
    assert rtt.latest_rtt == pytest.approx(0.2)


def test_ack_delay_not_subtracted_below_min_rtt() -> None:
    rtt = RTTStats()
    rtt.update(0.1, 0.0, now=1.0)
    rtt.update(0.11, 0.02, now=2.0)  # 0.11 - 0.02 < min_rtt: use 0.11
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.11)


def test_min_rtt_is_not_adjusted_for_ack_delay() -> None:
    rtt = RTTStats()
    rtt.update(0.1, 0.0, now=1.0)
    rtt.update(0.09, 0.05, now=2.0)
    assert rtt.min_rtt == pytest.approx(0.09)


@pytest.mark.parametrize(
    ("confirmed", "adjusted"), [(False, 0.1), (True, 0.175)], ids=["unconfirmed", "confirmed"]
)
def test_ack_delay_clamped_to_max_ack_delay_once_confirmed(confirmed: bool, adjusted: float) -> None:
    rtt = RTTStats(max_ack_delay=0.025)
    rtt.handshake_confirmed = confirmed
    rtt.update(0.1, 0.0, now=1.0)
    rtt.update(0.2, 0.1, now=2.0)
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * adjusted)


def test_pto_formula_with_granularity_floor() -> None:
    rtt = RTTStats(max_ack_delay=0.02)
    rtt.update(0.1, 0.0, now=1.0)
    assert rtt.pto(False) == pytest.approx(0.1 + 4 * 0.05)
    assert rtt.pto(True) == pytest.approx(0.1 + 4 * 0.05 + 0.02)
    for i in range(200):  # converge: rttvar -> 0
        rtt.update(0.1, 0.0, now=2.0 + i)
    assert rtt.rttvar < 0.00025
    assert rtt.pto(False) == pytest.approx(rtt.smoothed_rtt + 0.001)


def test_non_positive_samples_ignored_and_initial_rtt_override() -> None:
    rtt = RTTStats()
    rtt.set_initial_rtt(0.05)
    assert rtt.smoothed_rtt == pytest.approx(0.05)
    assert rtt.pto(False) == pytest.approx(0.05 + 4 * 0.025)
    rtt.update(0.0, 0.0, now=1.0)
    rtt.update(-1.0, 0.0, now=1.0)
    assert not rtt.has_measurement
    rtt.update(0.2, 0.0, now=1.0)
    rtt.set_initial_rtt(0.01)  # ignored after a sample
    assert rtt.smoothed_rtt == pytest.approx(0.2)
    rtt.max_ack_delay = -1.0
    assert rtt.max_ack_delay == 0.0
    rtt.reset()
    assert not rtt.has_measurement
    assert rtt.smoothed_rtt == pytest.approx(0.05)
