"""Per packet-number-space state of a connection (RFC 9000 §12.3): the CRYPTO stream, receive
tracking and whether the space's keys were discarded (RFC 9001 §4.9). Packet numbers we send and the
peer's acknowledgments are the sent-packet handler's.
"""

from __future__ import annotations

from quicsilver.ackhandler.received import ReceivedPacketTracker
from quicsilver.core.crypto_stream import CryptoStream
from quicsilver.protocol import PacketNumberSpace

__all__ = ["PacketSpace"]


class PacketSpace:
    """One packet number space: Initial, Handshake or Application (0-RTT and 1-RTT share it)."""

    __slots__ = ("ack_tracker", "crypto", "discarded", "space")

    def __init__(self, space: PacketNumberSpace, ack_tracker: ReceivedPacketTracker) -> None:
        self.space = space
        self.crypto = CryptoStream()
        self.ack_tracker = ack_tracker
        self.discarded = False

    @property
    def largest_received(self) -> int | None:
        return self.ack_tracker.largest_received
