"""Loss recovery (RFC 9002 §6, Appendix A) and ACK generation (RFC 9000 §13.2): sent and received packets."""

from __future__ import annotations

from quicsilver.ackhandler.ecn import ECNState, ECNTracker
from quicsilver.ackhandler.packet import AckResult, LossTimeoutResult, SentPacket
from quicsilver.ackhandler.received import ReceivedPacketTracker
from quicsilver.ackhandler.send_mode import SendMode
from quicsilver.ackhandler.sent import SentPacketHandler

__all__ = [
    "AckResult",
    "ECNState",
    "ECNTracker",
    "LossTimeoutResult",
    "ReceivedPacketTracker",
    "SendMode",
    "SentPacket",
    "SentPacketHandler",
]
