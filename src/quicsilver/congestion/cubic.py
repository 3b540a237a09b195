"""CUBIC congestion control (RFC 9438), on the NewReno skeleton of RFC 9002 §7.

Slow start, recovery periods, persistent congestion and pacing are shared with
:class:`~quicsilver.congestion.newreno.NewRenoSender`; CUBIC changes two things:

- on congestion (§4.6, §4.7): ``W_max`` remembers the window before the reduction (less with fast
  convergence when it shrank since the last event), and the window becomes ``beta_cubic * cwnd``
  with ``beta_cubic = 0.7``;
- in congestion avoidance (§4.2-§4.4) the window follows
  ``W_cubic(t) = C * (t - K)**3 + W_max`` with ``C = 0.4`` and ``K = cbrt((W_max - cwnd_epoch) / C)``
  (in segments), chasing ``W_cubic(t + RTT)`` at ``(target - cwnd) / cwnd`` per acknowledged
  segment, but never below the Reno-friendly estimate ``W_est`` (§4.3), which grows by
  ``alpha_cubic = 3 (1 - beta) / (1 + beta)`` segments per window until it reaches ``W_max``.

Application-limited periods (§5.8) end the growth epoch, so idle time is not counted in ``t``.
"""

from __future__ import annotations

from typing import Final

from quicsilver.congestion.newreno import NewRenoSender
from quicsilver.congestion.rtt import RTTStats
from quicsilver.protocol import INITIAL_PACKET_SIZE
from quicsilver.qlog.tracer import ConnectionTracer

__all__ = ["ALPHA_CUBIC", "BETA_CUBIC", "C_CUBIC", "CubicSender"]

C_CUBIC: Final = 0.4  # RFC 9438 §5.1
BETA_CUBIC: Final = 0.7  # RFC 9438 §4.6
ALPHA_CUBIC: Final = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)  # RFC 9438 §4.3


class CubicSender(NewRenoSender):
    """RFC 9438 CUBIC with a pacer; implements :class:`~quicsilver.congestion.interface.SendAlgorithm`.

    ``fast_convergence`` (default True) applies RFC 9438 §4.7.
    """

    def __init__(
        self,
        rtt: RTTStats,
        max_datagram_size: int = INITIAL_PACKET_SIZE,
        tracer: ConnectionTracer | None = None,
        *,
        fast_convergence: bool = True,
    ) -> None:
        super().__init__(rtt, max_datagram_size, tracer)
        self.fast_convergence = fast_convergence
        self.w_max = 0.0  # bytes
        self.k = 0.0  # seconds
        self.epoch_start: float | None = None
        self.cwnd_epoch = 0.0  # bytes
        self.w_est = 0.0  # bytes
        self._carry = 0.0  # fractional bytes of window growth not yet applied

    def w_cubic(self, t: float) -> float:
        """``W_cubic(t)`` of RFC 9438 §4.2 in bytes, ``t`` seconds into the current epoch."""
        return C_CUBIC * (t - self.k) ** 3 * self.max_datagram_size + self.w_max

    def _window_after_loss(self) -> int:
        cwnd = float(self._cwnd)
        # RFC 9438 §4.7: "if cwnd < W_max and fast convergence is enabled, further reduce W_max".
        if self.fast_convergence and cwnd < self.w_max:
            self.w_max = cwnd * (1 + BETA_CUBIC) / 2
        else:
            self.w_max = cwnd
        self.epoch_start = None
        self._carry = 0.0
        # RFC 9438 §4.6: ssthresh = cwnd = flight_size * beta_cubic (the window, as quic-go does).
        return int(cwnd * BETA_CUBIC)

    def _start_epoch(self, now: float) -> None:
        cwnd = float(self._cwnd)
        self.epoch_start = now
        self.cwnd_epoch = cwnd
        self.w_est = cwnd
        if self.w_max < cwnd:
            # Entering congestion avoidance above the last maximum (or with none, after slow start):
            # the curve starts at its plateau.
            self.w_max = cwnd
        # RFC 9438 §4.2, Figure 2: K = cubic_root((W_max - cwnd_epoch) / C), in segments.
        self.k = ((self.w_max - cwnd) / self.max_datagram_size / C_CUBIC) ** (1 / 3)

    def _increase_in_avoidance(self, acked_bytes: int, now: float) -> int:
        epoch_start = self.epoch_start
        if epoch_start is None:
            self._start_epoch(now)
            epoch_start = now
        cwnd = float(self._cwnd)
        mds = self.max_datagram_size
        t = now - epoch_start
        # RFC 9438 §4.3: W_est grows by alpha_cubic segments per window acknowledged; alpha is 1 once
        # W_est has reached W_max.
        alpha = ALPHA_CUBIC if self.w_est < self.w_max else 1.0
        self.w_est += alpha * acked_bytes * mds / cwnd
        if self.w_cubic(t) < self.w_est:
            # RFC 9438 §4.3: "in the Reno-friendly region ... set cwnd to W_est".
            new = self.w_est
        else:
            # RFC 9438 §4.4/§4.5: target = W_cubic(t + RTT), bounded to [cwnd, 1.5 * cwnd].
            target = self.w_cubic(t + self._rtt.smoothed_rtt)
            target = min(max(target, cwnd), 1.5 * cwnd)
            new = cwnd + (target - cwnd) * acked_bytes / cwnd
        new += self._carry
        whole = int(new)
        self._carry = new - whole
        return max(whole, self._cwnd)

    def _on_application_limited(self) -> None:
        # RFC 9438 §5.8: do not count application-limited time in t; the next epoch restarts the
        # curve from the window at that point.
        self.epoch_start = None

    def _reset_epoch(self) -> None:
        self.epoch_start = None
        self._carry = 0.0
