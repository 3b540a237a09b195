"""Token-bucket pacer (RFC 9002 §7.7, after quic-go's pacer).

The bucket holds bytes. It refills at ``1.25 * cwnd / smoothed_rtt`` (RFC 9002 §7.7's N = 1.25, so
pacing does not keep the window from being used up within one RTT) and holds at most one burst:
the larger of ten full-sized packets and what the rate yields in ``MIN_PACING_DELAY +
TIMER_GRANULARITY``. A sender that ran the bucket dry is told when the next packet may leave —
never sooner than ``MIN_PACING_DELAY`` after the last one — so the I/O layer arms one timer per
burst rather than per packet.
"""

from __future__ import annotations

from typing import Final

from quicsilver.protocol import TIMER_GRANULARITY

__all__ = ["MAX_BURST_SIZE_PACKETS", "MIN_PACING_DELAY", "PACING_GAIN", "Pacer"]

MIN_PACING_DELAY: Final = 0.001  # seconds; quic-go's MinPacingDelay
MAX_BURST_SIZE_PACKETS: Final = 10
PACING_GAIN: Final = 1.25  # RFC 9002 §7.7: N = 1.25
_BURST_INTERVAL: Final = MIN_PACING_DELAY + TIMER_GRANULARITY


class Pacer:
    """Token bucket in bytes. Each call takes the congestion controller's bandwidth estimate in
    bytes/s (``cwnd / srtt``); the pacer applies the 1.25 gain itself. The estimate is passed in,
    not called back: the controller owns the pacer, and a stored bound method of it would make a
    reference cycle per connection, left to the garbage collector."""

    __slots__ = ("_budget_at_last_sent", "_last_sent_time", "max_datagram_size")

    def __init__(self, max_datagram_size: int) -> None:
        self.max_datagram_size = max_datagram_size
        self._last_sent_time: float | None = None
        self._budget_at_last_sent = 0  # read only once a packet was sent

    def budget(self, now: float, bandwidth: float) -> int:
        """Bytes that may be sent at ``now`` without waiting."""
        # Called for every packet (twice): written without helper calls or min/max builtins.
        rate = PACING_GAIN * bandwidth
        max_burst = int(rate * _BURST_INTERVAL)
        floor = MAX_BURST_SIZE_PACKETS * self.max_datagram_size
        if max_burst < floor:
            max_burst = floor
        last = self._last_sent_time
        if last is None:
            return max_burst
        budget = self._budget_at_last_sent
        if now > last:
            budget += int(rate * (now - last))
        return budget if budget < max_burst else max_burst

    def sent_packet(self, now: float, size: int, bandwidth: float) -> None:
        """Take ``size`` bytes out of the bucket."""
        # budget(now, bandwidth), inlined: this runs for every packet sent.
        rate = PACING_GAIN * bandwidth
        max_burst = int(rate * _BURST_INTERVAL)
        floor = MAX_BURST_SIZE_PACKETS * self.max_datagram_size
        if max_burst < floor:
            max_burst = floor
        last = self._last_sent_time
        if last is None:
            budget = max_burst
        else:
            budget = self._budget_at_last_sent
            if now > last:
                budget += int(rate * (now - last))
            if budget > max_burst:
                budget = max_burst
        self._budget_at_last_sent = budget - size if size < budget else 0
        self._last_sent_time = now

    def time_until_send(self, now: float, bandwidth: float) -> float:
        """When a full-sized packet may leave: ``now`` if the bucket holds one, else the refill instant
        (at least MIN_PACING_DELAY after the last packet)."""
        if self._last_sent_time is None or self._budget_at_last_sent >= self.max_datagram_size:
            return now
        rate = PACING_GAIN * bandwidth
        if rate <= 0:
            return self._last_sent_time + MIN_PACING_DELAY
        # One byte more than the deficit: budget() truncates the refill to whole bytes, and the instant
        # returned must really have the budget (or the caller would spin at the same instant).
        wait = (self.max_datagram_size - self._budget_at_last_sent + 1) / rate
        return max(now, self._last_sent_time + max(MIN_PACING_DELAY, wait))
