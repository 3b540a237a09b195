"""Datagram Packetization Layer PMTU Discovery for QUIC (RFC 8899 §5 as used by RFC 9000 §14.3).

The discoverer owns one number, the largest UDP payload the connection may send on the current path
(``current_size``), and decides when to test a larger one. It never builds packets: the packer turns
``next_probe_size()`` into a PING + PADDING packet of exactly that size (``mtu_probe_frames``), sent
alone in its datagram, and recovery reports the probe's fate back.

The search: it starts at the base size (``initial_packet_size``, 1280), is armed once the handshake
is confirmed and sends its first probe 5 x SRTT later (both as quic-go's ``mtu_discoverer``: a
connection that ends within a few round trips pays for no probe), keeps one probe in flight at a
time, and binary-searches between the largest size known to work and the smallest size known (or
assumed) not to. A size is abandoned after three lost probes (RFC 8899 §5.1.2 MAX_PROBES); the
search stops once the window is under 20 bytes. Unlike quic-go, which spaces probes 5 x SRTT apart,
the next probe goes out as soon as the previous one's fate is known (RFC 8899 §5.2: an acknowledged
probe moves SEARCHING on at once, a lost one is retried at once until MAX_PROBES), as MsQuic does:
the search then finishes within a few RTTs instead of some thirty. The connection follows each probe
with a PING so that the peer acknowledges at once (two ack-eliciting packets, or a gap where a lost
probe was: RFC 9000 §13.2.1). Only the first probe, and the first after falling back to the base
size, wait 5 x SRTT. It opens optimistically with one probe of the largest size (most paths carry
1452 bytes, loopback more: one probe then ends the search; each probe also costs the peer a datagram
and an ACK on a short connection); if that probe is lost, the size is abandoned at once and the
binary search runs between the base and it.

Black holes (RFC 8899 §4.3): when regular packets above the base size
keep being lost while smaller packets still get through, or the PTO fires repeatedly while we send
above the base size, the path MTU has shrunk: fall back to the base size (RFC 8899 §5.2 "BASE") and
search again.
"""

from __future__ import annotations

from typing import Final, Protocol

from quicsilver.protocol import INITIAL_PACKET_SIZE, MAX_PACKET_BUFFER_SIZE, MIN_INITIAL_PACKET_SIZE
from quicsilver.qlog.tracer import ConnectionTracer
from quicsilver.wire.frames import Frame, PaddingFrame, PingFrame

__all__ = [
    "BLACK_HOLE_LOSSES",
    "BLACK_HOLE_PTO_COUNT",
    "MAX_PROBES",
    "MIN_SEARCH_WINDOW",
    "PROBE_DELAY_RTTS",
    "MTUDiscoverer",
    "mtu_probe_frames",
]

PROBE_DELAY_RTTS: Final = 5
"""Smoothed RTTs from handshake confirmation, or from a fall-back to the base size, to the first probe
(quic-go ``mtuProbeDelay``)."""
MIN_SEARCH_WINDOW: Final = 20
"""Bytes: the search stops when the untested window is smaller than this (quic-go ``maxMTUDiff``)."""
MAX_PROBES: Final = 3
"""Lost probes of one size before that size (and every larger one) is abandoned (RFC 8899 §5.1.2)."""
BLACK_HOLE_LOSSES: Final = 3
"""Lost regular packets above the base size, with a smaller packet getting through, that mean a black hole."""
BLACK_HOLE_PTO_COUNT: Final = 2
"""Consecutive PTO expiries, while sending above the base size, that suspect a black hole."""


class _SmoothedRTT(Protocol):
    @property
    def smoothed_rtt(self) -> float: ...


def mtu_probe_frames(payload_length: int) -> list[Frame]:
    """The frames of an MTU probe whose plaintext payload is exactly ``payload_length`` bytes.

    A PING makes the probe ack-eliciting; PADDING fills the rest (RFC 9000 §14.4: "PMTU probes are
    ack-eliciting packets"). The packer computes ``payload_length`` as the probe size minus the short
    header and the AEAD tag, so the protected datagram is exactly ``next_probe_size()`` bytes.
    """
    if payload_length < 1:
        raise ValueError(f"an MTU probe needs at least one payload byte, got {payload_length}")
    if payload_length == 1:
        return [PingFrame()]
    return [PingFrame(), PaddingFrame(payload_length - 1)]


class MTUDiscoverer:
    """DPLPMTUD state for the current path.

    ``rtt`` supplies ``smoothed_rtt`` (RTTStats). ``base_size`` is the size the path is assumed to carry
    (``Config.initial_packet_size``, at least 1200, RFC 9000 §14.1); ``max_size`` the largest size we
    may send (1452 by default; a caller may pass more for loopback). The peer's max_udp_payload_size
    lowers it through ``set_peer_max_udp_payload_size``. Nothing is probed before ``start(now)``.
    """

    def __init__(
        self,
        rtt: _SmoothedRTT,
        *,
        base_size: int = INITIAL_PACKET_SIZE,
        max_size: int = MAX_PACKET_BUFFER_SIZE,
        tracer: ConnectionTracer | None = None,
    ) -> None:
        if base_size < MIN_INITIAL_PACKET_SIZE:
            raise ValueError(f"base_size {base_size} is below the QUIC minimum of {MIN_INITIAL_PACKET_SIZE}")
        self._rtt = rtt
        self._tracer = tracer
        self._base = base_size
        self._local_max = max(max_size, base_size)
        self._peer_max: int | None = None
        self._current = base_size
        # The search window: _good is known to work, _bad is the smallest size that does not
        # (or the maximum + 1 while the maximum is untested).
        self._good = base_size
        self._bad = self._max_size() + 1
        self._armed = False
        self._next_probe_at = 0.0
        self._in_flight: int | None = None
        self._losses_at_size = 0
        self._tried_top = False  # the opening probe of the largest size has been sent
        self._opening = False  # the probe in flight is that opening one
        # Black hole detection (RFC 8899 §4.3): send times of the latest acknowledged large and small
        # packets, and of the large packets lost since the latest large one got through.
        self._large_acked_sent_time = float("-inf")
        self._small_acked_sent_time = float("-inf")
        self._large_losses: list[float] = []
        self.black_holes = 0
        """How many times a shrinking path MTU sent us back to the base size."""

    # -- state ---------------------------------------------------------------------------------------

    @property
    def current_size(self) -> int:
        """Bytes: the largest UDP payload to send on this path now."""
        return self._current

    @property
    def base_size(self) -> int:
        return self._base

    @property
    def max_size(self) -> int:
        """Bytes: the upper bound of the search (local limit and the peer's max_udp_payload_size)."""
        return self._max_size()

    @property
    def armed(self) -> bool:
        return self._armed

    @property
    def done(self) -> bool:
        """True when the search window is below ``MIN_SEARCH_WINDOW`` bytes (no more probes)."""
        return self._bad - self._good < MIN_SEARCH_WINDOW

    @property
    def probe_in_flight(self) -> int | None:
        """The size of the probe awaiting its fate, or None."""
        return self._in_flight

    def _max_size(self) -> int:
        limit = self._local_max if self._peer_max is None else min(self._local_max, self._peer_max)
        return max(limit, self._base)

    def set_peer_max_udp_payload_size(self, size: int) -> None:
        """The peer's max_udp_payload_size transport parameter (RFC 9000 §18.2) caps the search."""
        self._peer_max = size
        if size < self._base:
            # The peer cannot take even the base size: it becomes the base (never below 1200, §14.1).
            self._base = max(size, MIN_INITIAL_PACKET_SIZE)
        top = self._max_size()
        self._bad = min(self._bad, top + 1)
        if self._current > top:
            self._current = self._good = top
            self._trace()
        if self._in_flight is not None and self._in_flight > top:
            self._in_flight = None

    def start(self, now: float) -> None:
        """Arm the search: call it when the handshake is confirmed (quic-go starts PMTUD then).

        As in quic-go, the first probe waits ``PROBE_DELAY_RTTS`` smoothed RTTs: a connection that
        ends within a few round trips (one request, a health check) never pays for a probe, its
        ACK and the PING that follows it on either side.
        """
        if not self._armed:
            self._armed = True
            self._next_probe_at = now + PROBE_DELAY_RTTS * self._rtt.smoothed_rtt

    def reset(self, now: float) -> None:
        """A new path (RFC 9000 §9.4): back to the base size; an armed search starts over."""
        self._fall_back_to_base(now)

    # -- probing -------------------------------------------------------------------------------------

    def next_probe_time(self) -> float | None:
        """When ``should_send_probe`` next turns True (for the connection's timer), or None."""
        if not self._armed or self.done or self._in_flight is not None:
            return None
        return self._next_probe_at

    def should_send_probe(self, now: float) -> bool:
        """True when a probe is due: armed, search unfinished, none in flight, not backing off."""
        due = self.next_probe_time()
        return due is not None and now >= due

    def next_probe_size(self) -> int:
        """Bytes: the UDP payload size of the next probe: first the largest size, then the middle of
        the search window."""
        if not self._tried_top:
            return self._bad - 1
        return (self._good + self._bad) // 2

    def on_probe_sent(self, size: int, now: float) -> None:
        """The packer sent a probe of ``size`` bytes (its SentPacket carries ``is_mtu_probe=True``)."""
        self._in_flight = size
        self._opening = not self._tried_top
        self._tried_top = True

    def on_probe_acked(self, size: int, now: float) -> None:
        """The probe of ``size`` bytes was acknowledged: the path carries it (RFC 8899 §5.2 SEARCH)."""
        if size != self._in_flight:
            return  # a probe from before a reset says nothing about the current path
        self._in_flight = None
        self._losses_at_size = 0
        self._opening = False
        self._next_probe_at = now  # RFC 8899 §5.2: on to the next size at once
        if size <= self._good:
            return
        self._good = self._current = size
        self._large_losses.clear()
        self._trace()

    def on_probe_lost(self, size: int, now: float) -> None:
        """The probe of ``size`` bytes was declared lost; the third loss abandons that size.

        Lost probes are not congestion signals (RFC 9000 §14.4): recovery leaves the congestion
        controller alone for packets sent with ``is_mtu_probe``.
        """
        if size != self._in_flight:
            return
        self._in_flight = None
        self._next_probe_at = now  # retried (or the next smaller size tried) at once
        if self._opening:
            # The optimistic opening probe: one loss sends the search below it.
            self._opening = False
            self._bad = size
            if self.done:
                self._trace()
            return
        self._losses_at_size += 1
        # RFC 8899 §5.1.2: MAX_PROBES "is the maximum value of the PROBE_COUNT counter"; past it
        # the size, and with it every larger one, is taken as not supported.
        if self._losses_at_size >= MAX_PROBES:
            self._losses_at_size = 0
            self._bad = size
            if self.done:
                self._trace()

    # -- black hole detection (RFC 8899 §4.3) ---------------------------------------------------------

    def on_packet_acked(self, size: int, time_sent: float, now: float) -> None:
        """A regular (not probe) ack-eliciting packet of ``size`` bytes sent at ``time_sent`` was acked."""
        if size > self._base:
            if time_sent > self._large_acked_sent_time:
                self._large_acked_sent_time = time_sent
                # Large packets sent before this one got through were not lost to the path MTU.
                self._large_losses = [t for t in self._large_losses if t > time_sent]
            return
        self._small_acked_sent_time = max(self._small_acked_sent_time, time_sent)
        self._check_black_hole(now)

    def on_packet_lost(self, size: int, time_sent: float, now: float) -> None:
        """A regular ack-eliciting packet of ``size`` bytes sent at ``time_sent`` was declared lost."""
        if size <= self._base or size > self._current or time_sent <= self._large_acked_sent_time:
            return
        self._large_losses.append(time_sent)
        self._check_black_hole(now)

    def on_pto(self, pto_count: int, now: float) -> None:
        """The PTO fired for the ``pto_count``-th consecutive time (SentPacketHandler.pto_count).

        When nothing is acknowledged at all, no packet is ever declared lost, so repeated PTOs are the
        only sign of a black hole that swallows every packet of the current size. Falling back is cheap
        if it was an outage instead: the search simply runs again.
        """
        if pto_count >= BLACK_HOLE_PTO_COUNT and self._current > self._base:
            self._black_hole(now)

    def _check_black_hole(self, now: float) -> None:
        losses = self._large_losses
        if len(losses) >= BLACK_HOLE_LOSSES and self._small_acked_sent_time > losses[0]:
            # Large packets keep disappearing while a smaller one sent after them got through.
            self._black_hole(now)

    def _black_hole(self, now: float) -> None:
        self.black_holes += 1
        self._fall_back_to_base(now)

    def _fall_back_to_base(self, now: float) -> None:
        changed = self._current != self._base
        self._current = self._good = self._base
        self._bad = self._max_size() + 1
        self._in_flight = None
        self._losses_at_size = 0
        self._tried_top = self._opening = False
        self._large_losses.clear()
        self._large_acked_sent_time = now  # what was sent before the fall-back no longer counts
        self._small_acked_sent_time = float("-inf")
        # The path just changed under us: let a few RTT samples of it arrive before searching again.
        self._next_probe_at = now + PROBE_DELAY_RTTS * self._rtt.smoothed_rtt
        if changed:
            self._trace()

    def _trace(self) -> None:
        if self._tracer is not None:
            self._tracer.updated_mtu(self._current, self.done)
