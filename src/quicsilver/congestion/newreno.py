"""NewReno congestion control exactly as RFC 9002 §7 (with quic-go's window sizes).

Slow start grows the window by the bytes acknowledged (§7.3.1); congestion avoidance by one
maximum datagram per window acknowledged (§7.3.3). A loss or an ECN-CE report starts a recovery
period (§7.3.2): the window is halved (kLossReductionFactor 0.5) once, and losses of packets sent
before the period began cause no further reduction. The window never grows while in recovery or
while the application does not fill it (§7.8). Persistent congestion (§7.6.2) collapses the window
to the minimum of two datagrams.

:class:`NewRenoSender` is also the base of :class:`~quicsilver.congestion.cubic.CubicSender`, which
only replaces the reduction and the congestion avoidance growth.
"""

from __future__ import annotations

from typing import Final

from quicsilver.congestion.interface import (
    INITIAL_WINDOW_PACKETS,
    MAX_BURST_PACKETS,
    MAX_WINDOW_PACKETS,
    MIN_WINDOW_PACKETS,
    CongestionState,
)
from quicsilver.congestion.pacer import Pacer
from quicsilver.congestion.rtt import RTTStats
from quicsilver.protocol import INITIAL_PACKET_SIZE, TIMER_GRANULARITY
from quicsilver.qlog.tracer import ConnectionTracer

__all__ = ["LOSS_REDUCTION_FACTOR", "NewRenoSender"]

LOSS_REDUCTION_FACTOR: Final = 0.5  # RFC 9002 §7.3.2 kLossReductionFactor
_INFINITE: Final = 1 << 62


class NewRenoSender:
    """RFC 9002 §7 NewReno with a pacer; implements :class:`~quicsilver.congestion.interface.SendAlgorithm`.

    ``max_datagram_size`` (bytes, default 1280) sets the window units: initial window 32 datagrams,
    minimum 2, maximum 10,000.
    """

    def __init__(
        self,
        rtt: RTTStats,
        max_datagram_size: int = INITIAL_PACKET_SIZE,
        tracer: ConnectionTracer | None = None,
    ) -> None:
        self._rtt = rtt
        self._tracer = tracer
        self.max_datagram_size = max_datagram_size
        self._cwnd = INITIAL_WINDOW_PACKETS * max_datagram_size
        self.ssthresh = _INFINITE
        self._largest_sent = -1
        self._largest_acked = -1
        # The largest packet sent when the window was last reduced: acknowledging a packet above it
        # ends the recovery period (RFC 9002 §7.3.2, tracked by packet number instead of send time).
        self._largest_sent_at_cutback = -1
        self._bytes_acked_in_avoidance = 0
        self._state = CongestionState.SLOW_START
        self.pacer = Pacer(max_datagram_size)
        if tracer is not None:
            tracer.updated_congestion_state(self._state)

    # ---- window sizes -------------------------------------------------------------------------

    @property
    def congestion_window(self) -> int:
        return self._cwnd

    @property
    def min_congestion_window(self) -> int:
        return MIN_WINDOW_PACKETS * self.max_datagram_size

    @property
    def max_congestion_window(self) -> int:
        return MAX_WINDOW_PACKETS * self.max_datagram_size

    def bandwidth_estimate(self) -> float:
        """``cwnd / smoothed_rtt`` in bytes per second (the pacer's base rate)."""
        srtt = self._rtt.smoothed_rtt
        return self._cwnd / (srtt if srtt > TIMER_GRANULARITY else TIMER_GRANULARITY)

    def in_slow_start(self) -> bool:
        return self._cwnd < self.ssthresh

    def in_recovery(self) -> bool:
        return self._largest_acked != -1 and self._largest_acked <= self._largest_sent_at_cutback

    def can_send(self, bytes_in_flight: int) -> bool:
        return bytes_in_flight < self._cwnd

    # ---- events -------------------------------------------------------------------------------

    def on_packet_sent(self, now: float, bytes_in_flight: int, pn: int, size: int, in_flight: bool) -> None:
        self.pacer.sent_packet(now, size, self.bandwidth_estimate())
        if in_flight:
            self._largest_sent = pn

    def on_burst_sent(self, now: float, bytes_in_flight: int, largest_pn: int, size: int) -> None:
        # The pacer's bucket at one instant: taking the sizes one by one (each clamped at 0) leaves
        # what taking their sum once leaves.
        self.pacer.sent_packet(now, size, self.bandwidth_estimate())
        self._largest_sent = largest_pn

    def on_packet_acked(self, pn: int, size: int, prior_in_flight: int, now: float) -> None:
        if pn > self._largest_acked:
            self._largest_acked = pn
        # RFC 9002 §7.3.2: "the congestion window does not increase while in recovery"; a packet sent
        # before the recovery period began is acknowledged inside it (Appendix B.5).
        if pn <= self._largest_sent_at_cutback:
            return
        # RFC 9002 §7.8: "When bytes in flight is smaller than the congestion window and sending is
        # not pacing limited, the congestion window is underutilized ... [it] SHOULD NOT be increased".
        if not self._is_cwnd_limited(prior_in_flight):
            self._on_application_limited()
            self._set_state(CongestionState.APPLICATION_LIMITED)
            return
        if self._cwnd >= self.max_congestion_window:
            return
        if self.in_slow_start():
            # RFC 9002 §7.3.1: "increases by the number of bytes acknowledged".
            self._cwnd = min(self._cwnd + size, self.max_congestion_window)
            self._set_state(CongestionState.SLOW_START)
            return
        self._set_state(CongestionState.CONGESTION_AVOIDANCE)
        self._cwnd = min(self._increase_in_avoidance(size, now), self.max_congestion_window)

    def on_congestion_event(self, pn: int, lost_bytes: int, prior_in_flight: int, now: float) -> None:
        # RFC 9002 §7.3.2: one reduction per recovery period; losses of packets sent before it began
        # are part of the same congestion event.
        if pn <= self._largest_sent_at_cutback:
            return
        self._reduce()

    def on_ecn_ce(self, now: float, pn: int | None = None) -> None:
        # RFC 9002 §B.7: an increase in ECN-CE is a congestion event for the largest acknowledged
        # packet; it does not reduce again within the same recovery period.
        if pn is None:
            pn = self._largest_acked
        if pn <= self._largest_sent_at_cutback:
            return
        self._reduce()

    def on_retransmission_timeout(self, packets_retransmitted: bool) -> None:
        self._largest_sent_at_cutback = -1
        if not packets_retransmitted:
            return
        self._reset_epoch()
        self.ssthresh = max(self._cwnd // 2, self.min_congestion_window)
        self._cwnd = self.min_congestion_window

    def on_persistent_congestion(self) -> None:
        # RFC 9002 §7.6.2: "the sender's congestion window MUST be reduced to the minimum congestion
        # window"; the recovery period ends (congestion_recovery_start_time = 0 in Appendix B.8).
        self._cwnd = self.min_congestion_window
        self._largest_sent_at_cutback = -1
        self._bytes_acked_in_avoidance = 0
        self._reset_epoch()
        self._set_state(CongestionState.SLOW_START)

    def set_max_datagram_size(self, size: int) -> None:
        if size <= self.max_datagram_size:
            return
        was_min = self._cwnd == self.min_congestion_window
        self.max_datagram_size = size
        self.pacer.max_datagram_size = size
        if was_min or self._cwnd < self.min_congestion_window:
            self._cwnd = self.min_congestion_window

    def time_until_send(self, bytes_in_flight: int, now: float) -> float:
        return self.pacer.time_until_send(now, self.bandwidth_estimate())

    def has_pacing_budget(self, now: float) -> bool:
        return self.pacer.budget(now, self.bandwidth_estimate()) >= self.max_datagram_size

    def pacing_room(self, now: float) -> int:
        return self.pacer.budget(now, self.bandwidth_estimate()) - self.max_datagram_size

    # ---- internals shared with CUBIC ----------------------------------------------------------

    def _is_cwnd_limited(self, bytes_in_flight: int) -> bool:
        if bytes_in_flight >= self._cwnd:
            return True
        available = self._cwnd - bytes_in_flight
        slow_start_limited = self.in_slow_start() and bytes_in_flight > self._cwnd // 2
        return slow_start_limited or available <= MAX_BURST_PACKETS * self.max_datagram_size

    def _reduce(self) -> None:
        """Enter recovery: one multiplicative decrease (RFC 9002 §7.3.2)."""
        self._set_state(CongestionState.RECOVERY)
        self._cwnd = max(self._window_after_loss(), self.min_congestion_window)
        self.ssthresh = self._cwnd
        self._largest_sent_at_cutback = self._largest_sent
        self._bytes_acked_in_avoidance = 0

    def _window_after_loss(self) -> int:
        return int(self._cwnd * LOSS_REDUCTION_FACTOR)

    def _increase_in_avoidance(self, acked_bytes: int, now: float) -> int:
        # RFC 9002 §7.3.3: "increases by one maximum datagram size ... per congestion window
        # acknowledged" (byte counting, RFC 3465).
        self._bytes_acked_in_avoidance += acked_bytes
        if self._bytes_acked_in_avoidance >= self._cwnd:
            self._bytes_acked_in_avoidance -= self._cwnd
            return self._cwnd + self.max_datagram_size
        return self._cwnd

    def _on_application_limited(self) -> None:
        """Hook for CUBIC: time spent application-limited does not count toward window growth."""

    def _reset_epoch(self) -> None:
        """Hook for CUBIC: forget the current growth epoch."""

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            if self._tracer is not None:
                self._tracer.updated_congestion_state(state)
