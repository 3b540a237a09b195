"""Round-trip time estimation (RFC 9002 §5).

One :class:`RTTStats` per connection (path). It keeps the four RFC 9002 variables — ``latest_rtt``,
``min_rtt``, ``smoothed_rtt`` and ``rttvar`` — and derives the probe timeout duration (§6.2.1).
"""

from __future__ import annotations

from quicsilver.protocol import INITIAL_RTT, MAX_ACK_DELAY, TIMER_GRANULARITY

__all__ = ["RTTStats"]


class RTTStats:
    """RTT estimator of RFC 9002 §5.

    Before the first sample, ``smoothed_rtt`` is ``initial_rtt`` (333 ms unless a resumed session or
    token suggests better) and ``rttvar`` half of it (§5.3, §6.2.2), so the first PTO is about 1 s.
    ``max_ack_delay`` is the peer's transport parameter (seconds, default 25 ms, RFC 9000 §18.2).
    """

    __slots__ = (
        "_initial_rtt",
        "_max_ack_delay",
        "handshake_confirmed",
        "has_measurement",
        "last_sample_time",
        "latest_rtt",
        "min_rtt",
        "rttvar",
        "smoothed_rtt",
    )

    def __init__(self, initial_rtt: float = INITIAL_RTT, max_ack_delay: float = MAX_ACK_DELAY) -> None:
        self._initial_rtt = initial_rtt
        self._max_ack_delay = max_ack_delay
        self.has_measurement = False
        #: Set by the SentPacketHandler once the handshake is confirmed: from then on the peer's
        #: ack delay is clamped to max_ack_delay (RFC 9002 §5.3).
        self.handshake_confirmed = False
        self.latest_rtt = 0.0
        self.min_rtt = 0.0
        self.smoothed_rtt = initial_rtt
        self.rttvar = initial_rtt / 2
        self.last_sample_time: float | None = None

    @property
    def max_ack_delay(self) -> float:
        """The peer's max_ack_delay in seconds (0 for Initial/Handshake ACKs is the caller's business)."""
        return self._max_ack_delay

    @max_ack_delay.setter
    def max_ack_delay(self, value: float) -> None:
        self._max_ack_delay = max(0.0, value)

    def set_initial_rtt(self, rtt: float) -> None:
        """Replace the initial RTT guess (e.g. from a resumed session); ignored after a sample."""
        if self.has_measurement or rtt <= 0:
            return
        self._initial_rtt = rtt
        self.smoothed_rtt = rtt
        self.rttvar = rtt / 2

    def update(self, latest_rtt: float, ack_delay: float, now: float) -> None:
        """Feed one RTT sample (RFC 9002 §5.1-§5.3).

        ``latest_rtt`` is ack receive time minus send time of the largest newly acknowledged packet;
        ``ack_delay`` the peer's reported delay in seconds (callers pass 0 for Initial packets).
        Non-positive samples are ignored.
        """
        if latest_rtt <= 0:
            return
        self.latest_rtt = latest_rtt
        self.last_sample_time = now
        if not self.has_measurement:
            # RFC 9002 §5.3: the first sample initialises the estimator, ack delay is not used.
            self.has_measurement = True
            self.min_rtt = latest_rtt
            self.smoothed_rtt = latest_rtt
            self.rttvar = latest_rtt / 2
            return
        # RFC 9002 §5.2: min_rtt is the minimum over all samples, without ack delay adjustment.
        if latest_rtt < self.min_rtt:
            self.min_rtt = latest_rtt
        # RFC 9002 §5.3: "MUST use the lesser of the acknowledgment delay and the peer's max_ack_delay
        # after the handshake is confirmed".
        if self.handshake_confirmed and ack_delay > self._max_ack_delay:
            ack_delay = self._max_ack_delay
        adjusted = latest_rtt
        # RFC 9002 §5.3: "MUST NOT subtract the acknowledgment delay ... if the resulting value is
        # smaller than the min_rtt".
        if latest_rtt >= self.min_rtt + ack_delay:
            adjusted = latest_rtt - ack_delay
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.smoothed_rtt - adjusted)
        self.smoothed_rtt = 0.875 * self.smoothed_rtt + 0.125 * adjusted

    def pto(self, include_max_ack_delay: bool) -> float:
        """The probe timeout duration without backoff (RFC 9002 §6.2.1).

        ``smoothed_rtt + max(4 * rttvar, kGranularity)``, plus ``max_ack_delay`` for the application
        data space.
        """
        pto = self.smoothed_rtt + max(4 * self.rttvar, TIMER_GRANULARITY)
        if include_max_ack_delay:
            pto += self._max_ack_delay
        return pto

    def reset(self) -> None:
        """Forget all samples (a new path, RFC 9000 §9.4)."""
        self.has_measurement = False
        self.latest_rtt = 0.0
        self.min_rtt = 0.0
        self.smoothed_rtt = self._initial_rtt
        self.rttvar = self._initial_rtt / 2
        self.last_sample_time = None
