"""Token-bucket pacer (RFC 9002 §7.7): rate 1.25 x cwnd / srtt, bursts, minimum pacing delay."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.congestion import NewRenoSender, Pacer, RTTStats

MDS = 1200


def test_rate_burst_and_refill() -> None:
    bw = 38_400 / 0.1  # cwnd 32 datagrams over a 100 ms RTT
    pacer = Pacer(MDS)
    rate = 1.25 * bw
    burst = max(int(rate * 0.002), 10 * MDS)
    assert burst == 10 * MDS
    assert pacer.budget(0.0, bw) == burst
    assert pacer.time_until_send(0.0, bw) == 0.0
    for _ in range(10):
        pacer.sent_packet(0.0, MDS, bw)
    assert pacer.budget(0.0, bw) == 0
    # The next datagram after MDS / rate = 2.5 ms (more than the 1 ms minimum).
    wake = pacer.time_until_send(0.0, bw)
    assert wake == pytest.approx((MDS + 1) / rate)  # the deficit plus one byte of rounding margin
    assert pacer.budget(wake, bw) >= MDS - 1
    assert pacer.budget(0.001, bw) == int(rate * 0.001)
    # Long idle: the bucket holds at most one burst.
    assert pacer.budget(100.0, bw) == burst


def test_minimum_pacing_delay_and_large_bursts() -> None:
    bw = 38_400 / 0.001  # 1 ms RTT: a high rate
    pacer = Pacer(MDS)
    burst = pacer.budget(0.0, bw)
    assert burst == int(1.25 * bw * 0.002)  # two milliseconds' worth exceeds ten datagrams
    sent = 0
    while pacer.budget(0.0, bw) >= MDS:
        pacer.sent_packet(0.0, MDS, bw)
        sent += 1
    assert sent == burst // MDS
    # Refill needs ~25 us, but timers are never armed closer than 1 ms apart.
    assert pacer.time_until_send(0.0, bw) == pytest.approx(0.001)


def test_sender_pacing_follows_window_and_rtt() -> None:
    rtt = RTTStats()
    rtt.update(0.05, 0.0, now=0.0)
    cc = NewRenoSender(rtt, MDS)
    assert cc.bandwidth_estimate() == pytest.approx(32 * MDS / 0.05)
    assert cc.has_pacing_budget(0.0)
    for pn in range(10):
        cc.on_packet_sent(0.0, 0, pn, MDS, True)
    assert not cc.has_pacing_budget(0.0)
    wake = cc.time_until_send(10 * MDS, 0.0)
    assert wake == pytest.approx((MDS + 1) / (1.25 * 32 * MDS / 0.05))
    assert cc.has_pacing_budget(wake + 1e-9)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.floats(min_value=1e4, max_value=1e10),
    st.lists(st.tuples(st.floats(min_value=0, max_value=0.01), st.integers(1, 1500)), max_size=40),
    st.floats(min_value=0, max_value=1e6),
)
def test_time_until_send_really_has_budget(bw: float, sends: list[tuple[float, int]], start: float) -> None:
    pacer = Pacer(MDS)
    now = start
    for gap, size in sends:
        now += gap
        pacer.sent_packet(now, size, bw)
        wake = pacer.time_until_send(now, bw)
        assert wake >= now
        assert pacer.budget(wake, bw) >= MDS
