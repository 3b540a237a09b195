"""The seam between loss recovery and congestion control (RFC 9002 §7, quic-go's SendAlgorithm).

The :class:`~quicsilver.ackhandler.sent.SentPacketHandler` drives any object satisfying
:class:`SendAlgorithm`; :mod:`.newreno` and :mod:`.cubic` are the two implementations, and
:func:`quicsilver.congestion.new_send_algorithm` picks one by the ``Config.congestion_control``
name.
"""

from __future__ import annotations

from typing import Final, Protocol

from quicsilver.protocol import INITIAL_PACKET_SIZE

__all__ = [
    "INITIAL_WINDOW_PACKETS",
    "MAX_BURST_PACKETS",
    "MAX_WINDOW_PACKETS",
    "MIN_WINDOW_PACKETS",
    "CongestionState",
    "SendAlgorithm",
]

INITIAL_WINDOW_PACKETS: Final = 32  # quic-go's initial congestion window, in packets
MAX_WINDOW_PACKETS: Final = 10_000  # quic-go's MaxCongestionWindowPackets
MIN_WINDOW_PACKETS: Final = 2  # RFC 9002 §7.2 kMinimumWindow = 2 * max_datagram_size
MAX_BURST_PACKETS: Final = 3  # a window with this little room left still counts as fully used
DEFAULT_MAX_DATAGRAM_SIZE: Final = INITIAL_PACKET_SIZE


class CongestionState:
    """qlog congestion state names, passed to ``ConnectionTracer.updated_congestion_state``."""

    SLOW_START: Final = "slow_start"
    CONGESTION_AVOIDANCE: Final = "congestion_avoidance"
    APPLICATION_LIMITED: Final = "application_limited"
    RECOVERY: Final = "recovery"


class SendAlgorithm(Protocol):
    """A congestion controller with its pacer. All sizes are bytes, all times seconds."""

    @property
    def congestion_window(self) -> int:
        """The current congestion window in bytes."""

    def on_packet_sent(self, now: float, bytes_in_flight: int, pn: int, size: int, in_flight: bool) -> None:
        """A packet left; ``bytes_in_flight`` already includes it when ``in_flight``."""

    def can_send(self, bytes_in_flight: int) -> bool:
        """Whether the window has room for another packet."""

    def on_packet_acked(self, pn: int, size: int, prior_in_flight: int, now: float) -> None:
        """An in-flight packet was newly acknowledged; ``prior_in_flight`` is before this ACK."""

    def on_congestion_event(self, pn: int, lost_bytes: int, prior_in_flight: int, now: float) -> None:
        """Packets up to ``pn`` were declared lost (at most one reduction per round trip)."""

    def on_ecn_ce(self, now: float, pn: int | None = None) -> None:
        """The peer reported new ECN-CE marks in an ACK whose largest acknowledged packet is ``pn``
        (default: the largest acknowledged so far); like a loss, at most one reduction per round trip
        (RFC 9002 §7.1, §B.7)."""

    def on_retransmission_timeout(self, packets_retransmitted: bool) -> None:
        """A retransmission timeout fired (RFC 5681 §3.1 reaction when packets were retransmitted)."""

    def on_persistent_congestion(self) -> None:
        """Persistent congestion was established (RFC 9002 §7.6.2): collapse to the minimum window."""

    def in_slow_start(self) -> bool:
        """Whether the window is below the slow start threshold."""

    def in_recovery(self) -> bool:
        """Whether no packet sent after the last reduction has been acknowledged yet."""

    def set_max_datagram_size(self, size: int) -> None:
        """The path MTU grew (DPLPMTUD); windows counted in packets scale with it."""

    def time_until_send(self, bytes_in_flight: int, now: float) -> float:
        """The instant (same clock as ``now``) at which the pacer allows the next packet."""

    def has_pacing_budget(self, now: float) -> bool:
        """Whether the pacer allows a full-sized packet at ``now``."""

    def pacing_room(self, now: float) -> int:
        """The pacer's budget at ``now`` minus one full-sized packet: ``has_pacing_budget(now)`` is
        ``pacing_room(now) >= 0``, and a burst at ``now`` spends it packet by packet."""

    def on_burst_sent(self, now: float, bytes_in_flight: int, largest_pn: int, size: int) -> None:
        """In-flight packets up to ``largest_pn`` of ``size`` bytes in all left at ``now``: the same as
        ``on_packet_sent`` for each of them."""
