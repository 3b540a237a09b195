"""What recovery knows about a sent packet, and the results of ACK and timer processing (RFC 9002 §A.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quicsilver.protocol import ECN, PacketNumberSpace

__all__ = ["AckResult", "LossTimeoutResult", "SentPacket"]


@dataclass(slots=True, eq=False)
class SentPacket:
    """A packet we sent, as recovery sees it.

    ``in_flight`` packets count toward bytes_in_flight and congestion control (RFC 9002 §2: every
    ack-eliciting packet, and packets carrying only PADDING); ``frames`` belong to the connection.
    ``largest_acked`` is the largest packet number acknowledged by an ACK frame inside this packet
    (so that, once this packet is acknowledged, the receiver can stop acknowledging older packets).
    ``ecn`` is the codepoint it was sent with; ``is_0rtt`` marks 0-RTT packets.
    """

    pn: int
    space: PacketNumberSpace
    time_sent: float
    size: int
    ack_eliciting: bool
    in_flight: bool
    frames: list[Any] = field(default_factory=list)
    is_mtu_probe: bool = False
    ecn: ECN = ECN.NOT_ECT
    largest_acked: int | None = None
    is_0rtt: bool = False
    counted_in_flight: bool = False


@dataclass(slots=True)
class AckResult:
    """What an ACK frame did: packets newly acknowledged and declared lost (both ascending by pn).

    ``lost`` holds only ack-eliciting packets (their frames may need retransmission); ``ignore_below``
    is the packet number below which the receive tracker of this space may stop acknowledging (the
    peer has seen one of our ACK frames covering them), or None.
    """

    acked: list[SentPacket]
    lost: list[SentPacket]
    rtt_updated: bool
    ignore_below: int | None = None
    ecn_ce: bool = False


@dataclass(slots=True)
class LossTimeoutResult:
    """What the loss detection timer did: packets lost by the time threshold, or a PTO asking for
    ``probe_count`` ack-eliciting probe packets in ``probe_space``."""

    lost: list[SentPacket]
    probe_space: PacketNumberSpace | None
    probe_count: int
