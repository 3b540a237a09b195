"""Datagram Packetization Layer PMTU Discovery for QUIC (RFC 8899 §5 as applied by RFC 9000 §14.3).

After the handshake is confirmed, PING+PADDING probe packets of growing size search between the
size known to work (the base, ``initial_packet_size``) and the largest the peer accepts
(max_udp_payload_size, capped at 1452 as quic-go): a binary search, one probe in flight, the next
one five smoothed RTTs after the last (quic-go's pacing of probes). A size is confirmed when its
probe is acknowledged and abandoned after three lost probes (RFC 8899 MAX_PROBES = 3); the search
ends when the window is within 20 bytes. Lost probes are never congestion signals (RFC 9000 §14.4).

Black-hole detection (RFC 8899 §4.3): if several packets larger than the base are lost in a row
with none acknowledged, or the PTO fires twice in a row, the path may have shrunk; fall back to the
base size and search again later.
"""

from __future__ import annotations

__all__ = ["MAX_PROBES", "PROBE_DELAY_RTTS", "SEARCH_DONE_WINDOW", "PathMTUSearch"]

MAX_PROBES = 3  # RFC 8899 §5.1.2
SEARCH_DONE_WINDOW = 20  # bytes: quic-go stops when the search window is this small
PROBE_DELAY_RTTS = 5  # a probe every 5 smoothed RTTs
BLACK_HOLE_LOSSES = 6  # consecutive lost packets above the base size that reveal a smaller path MTU


class PathMTUSearch:
    """The path MTU search of one connection (sizes are UDP payload bytes)."""

    __slots__ = (
        "_bad",
        "_good",
        "_large_losses",
        "_lost_at_size",
        "_next_probe",
        "_probe_in_flight",
        "base",
        "current",
        "enabled",
        "max_size",
        "resets",
    )

    def __init__(self, base: int, max_size: int) -> None:
        self.base = base
        self.max_size = max(base, max_size)
        self.current = base
        self.enabled = False
        self._good = base
        self._bad = self.max_size + 1
        self._probe_in_flight: int | None = None
        self._lost_at_size = 0
        self._next_probe: float | None = None
        self._large_losses = 0
        self.resets = 0

    def start(self, now: float, srtt: float) -> None:
        """The handshake is confirmed: begin probing (RFC 9000 §14.3)."""
        self.enabled = self.max_size > self.base
        self._next_probe = now + PROBE_DELAY_RTTS * srtt

    def set_max_size(self, max_size: int) -> None:
        """The peer's max_udp_payload_size (or our cap) bounds the search."""
        self.max_size = max(self.base, max_size)
        self._bad = min(self._bad, self.max_size + 1)

    @property
    def done(self) -> bool:
        return self._bad - self._good <= SEARCH_DONE_WINDOW

    def next_probe_time(self) -> float | None:
        if not self.enabled or self.done or self._probe_in_flight is not None:
            return None
        return self._next_probe

    def probe_size(self, now: float) -> int | None:
        """The size of the probe to send now, or None."""
        t = self.next_probe_time()
        if t is None or now < t:
            return None
        return (self._good + self._bad) // 2

    def on_probe_sent(self, size: int) -> None:
        self._probe_in_flight = size

    def on_probe_acked(self, size: int, now: float, srtt: float) -> bool:
        """Returns True when ``current`` grew."""
        self._probe_in_flight = None
        self._lost_at_size = 0
        self._next_probe = now + PROBE_DELAY_RTTS * srtt
        if size <= self._good:
            return False
        self._good = size
        self.current = size
        return True

    def on_probe_lost(self, size: int, now: float, srtt: float) -> None:
        self._probe_in_flight = None
        self._lost_at_size += 1
        self._next_probe = now + PROBE_DELAY_RTTS * srtt
        if self._lost_at_size >= MAX_PROBES:
            # RFC 8899 §5.1.2: after MAX_PROBES lost probes the size is considered too big.
            self._bad = min(self._bad, size)
            self._lost_at_size = 0

    def on_packet_acked(self, size: int) -> None:
        if size > self.base:
            self._large_losses = 0

    def on_packet_lost(self, size: int, now: float, srtt: float) -> bool:
        """A regular packet was lost; True when the path MTU is deemed to have shrunk (fall back)."""
        if size <= self.base or not self.enabled:
            return False
        self._large_losses += 1
        if self._large_losses < BLACK_HOLE_LOSSES:
            return False
        return self.on_black_hole(now, srtt)

    def on_black_hole(self, now: float, srtt: float) -> bool:
        """RFC 8899 §4.3: packets above the base size vanish; restart from the base size.
        Returns True when the size changed."""
        if self.current <= self.base:
            return False
        self._large_losses = 0
        self.resets += 1
        self._bad = self.current
        self.current = self.base
        self._good = self.base
        self._probe_in_flight = None
        self._next_probe = now + PROBE_DELAY_RTTS * srtt
        return True
