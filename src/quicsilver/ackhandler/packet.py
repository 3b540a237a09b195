"""What recovery knows about a sent packet, and the results of ACK and timer processing (RFC 9002 §A.1)."""

from __future__ import annotations

from typing import Any

from quicsilver.protocol import ECN, PacketNumberSpace

__all__ = ["AckResult", "LossTimeoutResult", "SentPacket"]


# Plain slotted classes, not dataclasses: compiled with mypyc (setup.py) a dataclass keeps the
# interpreted, generated __init__ (~0.5 us), a plain class gets a native one (~0.06 us), and one
# SentPacket is made per packet sent.


class SentPacket:
    """A packet we sent, as recovery sees it.

    ``in_flight`` packets count toward bytes_in_flight and congestion control (RFC 9002 §2: every
    ack-eliciting packet, and packets carrying only PADDING); ``frames`` belong to the connection.
    ``largest_acked`` is the largest packet number acknowledged by an ACK frame inside this packet
    (so that, once this packet is acknowledged, the receiver can stop acknowledging older packets).
    ``ecn`` is the codepoint it was sent with; ``is_0rtt`` marks 0-RTT packets.
    """

    __slots__ = (
        "ack_eliciting",
        "counted_in_flight",
        "ecn",
        "frames",
        "in_flight",
        "is_0rtt",
        "is_mtu_probe",
        "largest_acked",
        "pn",
        "size",
        "space",
        "time_sent",
    )

    def __init__(
        self,
        pn: int,
        space: PacketNumberSpace,
        time_sent: float,
        size: int,
        ack_eliciting: bool,
        in_flight: bool,
        frames: list[Any] | None = None,
        is_mtu_probe: bool = False,
        ecn: ECN = ECN.NOT_ECT,
        largest_acked: int | None = None,
        is_0rtt: bool = False,
        counted_in_flight: bool = False,
    ) -> None:
        self.pn = pn
        self.space = space
        self.time_sent = time_sent
        self.size = size
        self.ack_eliciting = ack_eliciting
        self.in_flight = in_flight
        self.frames: list[Any] = [] if frames is None else frames
        self.is_mtu_probe = is_mtu_probe
        self.ecn = ecn
        self.largest_acked = largest_acked
        self.is_0rtt = is_0rtt
        self.counted_in_flight = counted_in_flight

    def __repr__(self) -> str:
        return (
            f"SentPacket(pn={self.pn}, space={self.space.name}, time_sent={self.time_sent}, "
            f"size={self.size}, ack_eliciting={self.ack_eliciting}, in_flight={self.in_flight})"
        )


class AckResult:
    """What an ACK frame did: packets newly acknowledged and declared lost (both ascending by pn).

    ``lost`` holds only ack-eliciting packets (their frames may need retransmission); ``ignore_below``
    is the packet number below which the receive tracker of this space may stop acknowledging (the
    peer has seen one of our ACK frames covering them), or None.
    """

    __slots__ = ("acked", "ecn_ce", "ignore_below", "lost", "rtt_updated")

    def __init__(
        self,
        acked: list[SentPacket],
        lost: list[SentPacket],
        rtt_updated: bool,
        ignore_below: int | None = None,
        ecn_ce: bool = False,
    ) -> None:
        self.acked = acked
        self.lost = lost
        self.rtt_updated = rtt_updated
        self.ignore_below = ignore_below
        self.ecn_ce = ecn_ce


class LossTimeoutResult:
    """What the loss detection timer did: packets lost by the time threshold, or a PTO asking for
    ``probe_count`` ack-eliciting probe packets in ``probe_space``."""

    __slots__ = ("lost", "probe_count", "probe_space")

    def __init__(
        self, lost: list[SentPacket], probe_space: PacketNumberSpace | None, probe_count: int
    ) -> None:
        self.lost = lost
        self.probe_space = probe_space
        self.probe_count = probe_count
