"""Received-packet tracking and ACK generation for one packet number space (RFC 9000 §13.2).

A :class:`ReceivedPacketTracker` remembers which packet numbers arrived as a short ascending list of
inclusive ranges (at most ``MAX_ACK_RANGES``; the oldest are forgotten, a defence against peers that
open endless gaps), counts ECN codepoints (RFC 9000 §13.4.1) and decides when an ACK frame is due:

- Initial and Handshake: immediately after every ack-eliciting packet (RFC 9000 §13.2.1);
- Application data: after every second ack-eliciting packet, within ``max_ack_delay`` of the first
  unacknowledged one, and immediately when a packet arrives out of order, opens a gap, or carries an
  ECN-CE mark (RFC 9000 §13.2.1, §13.2.2).

The ACK Delay field is the time since the largest packet arrived, in microseconds shifted right by
``ack_delay_exponent`` (RFC 9000 §19.3).
"""

from __future__ import annotations

from typing import Final

from quicsilver.protocol import ACK_DELAY_EXPONENT, ECN, MAX_ACK_DELAY, MAX_ACK_RANGES, PacketNumberSpace
from quicsilver.wire.frames import AckFrame

__all__ = ["ACK_ELICITING_THRESHOLD", "ReceivedPacketTracker"]

# Module constants (Final: the compiled build reads them as C statics): Enum attribute access is slow.
_ECT0: Final = ECN.ECT0
_ECT1: Final = ECN.ECT1
_CE: Final = ECN.CE
_APPLICATION: Final = PacketNumberSpace.APPLICATION
ACK_ELICITING_THRESHOLD: Final = (
    2  # RFC 9000 §13.2.2: "SHOULD send an ACK frame after receiving at least two"
)


class ReceivedPacketTracker:
    """Which packets of one space arrived, and the ACK frame that reports them.

    ``max_ack_delay`` (seconds, default 25 ms) is our own transport parameter minus the timer
    granularity; ``ack_delay_exponent`` (default 3) is the one we advertised.
    """

    __slots__ = (
        "_ack_alarm",
        "_ack_queued",
        "_deleted_below",
        "_eliciting_since_ack",
        "_largest",
        "_largest_eliciting",
        "_largest_time",
        "_ranges",
        "ack_delay_exponent",
        "ce",
        "ect0",
        "ect1",
        "has_new_ack",
        "max_ack_delay",
        "space",
    )

    def __init__(
        self,
        space: PacketNumberSpace,
        *,
        max_ack_delay: float = MAX_ACK_DELAY,
        ack_delay_exponent: int = ACK_DELAY_EXPONENT,
    ) -> None:
        self.space = space
        self.max_ack_delay = max_ack_delay
        self.ack_delay_exponent = ack_delay_exponent
        # Ascending, disjoint, non-adjacent inclusive [smallest, largest] ranges.
        self._ranges: list[list[int]] = []
        self._deleted_below = 0
        self._largest = -1
        self._largest_time = 0.0
        self._largest_eliciting = -1
        self.ect0 = 0
        self.ect1 = 0
        self.ce = 0
        self.has_new_ack = False
        """Read-only outside: a packet arrived since the last ACK frame (a cheap pre-check for packers)."""
        self._ack_queued = False
        self._ack_alarm: float | None = None
        self._eliciting_since_ack = 0

    @property
    def largest_received(self) -> int | None:
        """The largest packet number received so far (None before the first)."""
        return self._largest if self._largest >= 0 else None

    @property
    def ack_queued(self) -> bool:
        """Whether an ACK must go out now (not merely when the alarm fires)."""
        return self._ack_queued

    def is_potentially_duplicate(self, pn: int) -> bool:
        """Whether ``pn`` was already received (or is too old to be tracked): such a packet is dropped."""
        if pn > self._largest:
            return False  # the common case: a new largest packet number
        if pn < self._deleted_below:
            return True
        for smallest, largest in reversed(self._ranges):
            if pn > largest:
                return False
            if pn >= smallest:
                return True
        return False

    def received_packet(self, pn: int, ecn: ECN | int, now: float, ack_eliciting: bool) -> None:
        """Record a successfully decrypted packet and decide whether an ACK is due."""
        if pn < self._deleted_below or not self._add(pn):
            return
        if pn > self._largest:
            self._largest = pn
            self._largest_time = now
        if ecn == _ECT0:
            self.ect0 += 1
        elif ecn == _ECT1:
            self.ect1 += 1
        elif ecn == _CE:
            self.ce += 1
        if not ack_eliciting:
            # RFC 9000 §13.2.1: non-ack-eliciting packets are only acknowledged along with others.
            return
        self.has_new_ack = True
        self._eliciting_since_ack += 1
        previous_eliciting = self._largest_eliciting
        if pn > previous_eliciting:
            self._largest_eliciting = pn
        if self._ack_queued:
            return
        if self.space != _APPLICATION:
            # RFC 9000 §13.2.1: "MUST NOT delay acknowledgment of packets" in Initial and Handshake.
            self._queue_ack()
            return
        if (
            self._eliciting_since_ack >= ACK_ELICITING_THRESHOLD
            # RFC 9000 §13.2.1: ACK without delay when "the received packet has a packet number less
            # than another ack-eliciting packet that has been received" ...
            or pn < previous_eliciting
            # ... "or ... larger than the highest-numbered ack-eliciting packet that has been received
            # and there are missing packets between that packet and this packet".
            or (previous_eliciting >= 0 and self._range_start(pn) > previous_eliciting + 1)
            # RFC 9000 §13.2.1 / RFC 9002 §7.1: CE-marked packets are reported immediately.
            or ecn == _CE
        ):
            self._queue_ack()
        elif self._ack_alarm is None:
            # RFC 9000 §13.2.1: "MUST NOT intentionally delay acknowledgments ... beyond max_ack_delay".
            self._ack_alarm = now + self.max_ack_delay

    def ack_alarm(self) -> float | None:
        """When a delayed ACK must be sent (None when nothing is pending or it is already queued)."""
        return self._ack_alarm

    def get_ack_frame(self, now: float, only_if_queued: bool = True) -> AckFrame | None:
        """The ACK frame to send now, or None.

        With ``only_if_queued`` an ACK is returned only when one is due (queued, or the alarm expired);
        without it, whenever new ack-eliciting packets arrived since the last ACK (to piggyback on
        a packet that is sent anyway).
        """
        if not self.has_new_ack or not self._ranges:
            return None
        if only_if_queued and not self._ack_queued and (self._ack_alarm is None or self._ack_alarm > now):
            return None
        delay_us = round((now - self._largest_time) * 1_000_000)
        delay = delay_us >> self.ack_delay_exponent if delay_us > 0 else 0
        ecn = (self.ect0, self.ect1, self.ce) if (self.ect0 or self.ect1 or self.ce) else None
        ranges = tuple([(r[0], r[1]) for r in reversed(self._ranges)])
        self.has_new_ack = False
        self._ack_queued = False
        self._ack_alarm = None
        self._eliciting_since_ack = 0
        return AckFrame(ranges, delay, ecn)

    def ignore_below(self, pn: int) -> None:
        """Stop acknowledging packets below ``pn``: the peer has seen an ACK covering them."""
        if pn <= self._deleted_below:
            return
        self._deleted_below = pn
        ranges = self._ranges
        drop = 0
        while drop < len(ranges) and ranges[drop][1] < pn:
            drop += 1
        if drop:
            del ranges[:drop]
        if ranges and ranges[0][0] < pn:
            ranges[0][0] = pn

    def ranges(self) -> list[tuple[int, int]]:
        """The tracked ranges, ascending (for tests and stats)."""
        return [(r[0], r[1]) for r in self._ranges]

    # ---- internals ----------------------------------------------------------------------------

    def _queue_ack(self) -> None:
        self._ack_queued = True
        self._ack_alarm = None

    def _range_start(self, pn: int) -> int:
        for smallest, largest in reversed(self._ranges):
            if smallest <= pn <= largest:
                return smallest
        return pn

    def _add(self, pn: int) -> bool:
        """Insert ``pn`` into the ranges; False if it was already there."""
        ranges = self._ranges
        if not ranges:
            ranges.append([pn, pn])
            return True
        last = ranges[-1]
        if pn == last[1] + 1:  # the common case: in order
            last[1] = pn
            return True
        for i in range(len(ranges) - 1, -1, -1):
            current = ranges[i]
            if pn > current[1]:
                following = ranges[i + 1] if i + 1 < len(ranges) else None
                if pn == current[1] + 1:
                    current[1] = pn
                    if following is not None and following[0] == pn + 1:
                        current[1] = following[1]
                        del ranges[i + 1]
                elif following is not None and following[0] == pn + 1:
                    following[0] = pn
                else:
                    ranges.insert(i + 1, [pn, pn])
                    self._trim()
                return True
            if pn >= current[0]:
                return False
        first = ranges[0]
        if pn == first[0] - 1:
            first[0] = pn
        else:
            ranges.insert(0, [pn, pn])
            self._trim()
        return True

    def _trim(self) -> None:
        excess = len(self._ranges) - MAX_ACK_RANGES
        if excess > 0:
            # Forget the oldest ranges: the ACK frame carries at most MAX_ACK_RANGES of them.
            del self._ranges[:excess]
