"""Per packet-number-space state of loss recovery (RFC 9002 §A.2, §A.3).

The packets neither acknowledged nor lost live in a dict keyed by packet number; a lowest-outstanding
pointer advances lazily over numbers that left the dict, so nothing is ever removed from the front of
a list and ACK processing only touches the numbers it acknowledges.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from quicsilver.ackhandler.packet import SentPacket
from quicsilver.ackhandler.packet_number_generator import (
    SequentialPacketNumberGenerator,
    SkippingPacketNumberGenerator,
)
from quicsilver.protocol import PacketNumberSpace

__all__ = ["MAX_SKIPPED_PACKETS", "MAX_TRACKED_ACK_ONLY_PACKETS", "SpaceHistory"]

MAX_SKIPPED_PACKETS: Final = 4  # skipped packet numbers remembered per space
# ACK-only packets are acknowledged only when the peer happens to send an ACK frame; if it never does,
# the oldest of them are forgotten beyond this many, so the history stays bounded.
MAX_TRACKED_ACK_ONLY_PACKETS: Final = 256
NEVER: Final = float("inf")


class SpaceHistory:
    """Per packet-number-space recovery state."""

    __slots__ = (
        "dropped",
        "eliciting_outstanding",
        "largest_acked",
        "largest_sent",
        "last_ack_eliciting_time",
        "loss_time",
        "lowest",
        "packets",
        "pc_broken_above",
        "pc_first_time",
        "pc_last_pn",
        "pc_last_time",
        "pn_generator",
        "skipped",
        "space",
        "unreliable",
    )

    def __init__(
        self,
        space: PacketNumberSpace,
        pn_generator: SequentialPacketNumberGenerator | SkippingPacketNumberGenerator,
    ) -> None:
        self.space = space
        self.packets: dict[int, SentPacket] = {}
        # Every packet number below ``lowest`` is acknowledged, lost or skipped; above it, entries may be
        # missing (acknowledged out of order). Advanced lazily: amortised O(1) per packet number.
        self.lowest = 0
        self.largest_sent = -1
        self.largest_acked = -1
        self.eliciting_outstanding = 0
        self.loss_time: float | None = None
        self.last_ack_eliciting_time: float | None = None
        self.pn_generator = pn_generator
        # A list, not a deque: an empty deque costs ~760 bytes, and at most 4 are kept (issue 9).
        self.skipped: list[int] = []
        # Packet numbers of packets that are neither ack-eliciting nor in flight, oldest first (some may
        # have left ``packets`` already).
        self.unreliable: deque[int] | None = None  # created with the first ACK-only packet
        self.dropped = False
        # The current run of lost packets for persistent congestion (RFC 9002 §7.6.2): the send times of
        # its first and last ack-eliciting packets, and the smallest acknowledged pn above the last one.
        self.pc_first_time: float | None = None
        self.pc_last_time = 0.0
        self.pc_last_pn = -1
        self.pc_broken_above = NEVER

    def first_outstanding(self) -> int:
        packets = self.packets
        if not packets:
            self.lowest = self.largest_sent + 1
            return self.lowest
        pn = self.lowest
        while pn not in packets:
            pn += 1
        self.lowest = pn
        return pn

    def clear(self) -> None:
        self.packets.clear()
        self.unreliable = None
        self.lowest = self.largest_sent + 1
        self.eliciting_outstanding = 0
        self.loss_time = None
        self.last_ack_eliciting_time = None
        self.pc_first_time = None

    def remember_skipped(self, pn: int) -> None:
        """A packet number we skipped; the oldest is forgotten beyond MAX_SKIPPED_PACKETS."""
        skipped = self.skipped
        skipped.append(pn)
        if len(skipped) > MAX_SKIPPED_PACKETS:
            del skipped[0]

    def track_ack_only(self, pn: int) -> None:
        """Remember an ACK-only packet, forgetting the oldest beyond MAX_TRACKED_ACK_ONLY_PACKETS."""
        queue = self.unreliable
        if queue is None:
            queue = self.unreliable = deque()
        queue.append(pn)
        if len(queue) > MAX_TRACKED_ACK_ONLY_PACKETS:
            old = self.packets.get(queue.popleft())
            if old is not None and not old.ack_eliciting and not old.in_flight:
                del self.packets[old.pn]
