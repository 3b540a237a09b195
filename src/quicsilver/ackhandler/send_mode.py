"""What the connection may send right now (quic-go's SendMode; RFC 9002 §6.2.4, §7; RFC 9000 §8.1)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["SendMode"]


class SendMode(IntEnum):
    """Answer of ``SentPacketHandler.send_mode(now)``.

    - NONE: nothing at all (anti-amplification limit reached, or too many packets tracked).
    - ACK_ONLY: only packets without ack-eliciting frames (congestion window full).
    - PTO_INITIAL / PTO_HANDSHAKE / PTO_APPLICATION: send probe packets in that space, ignoring the
      congestion window (RFC 9002 §6.2.4, §7.5).
    - ANY: anything the window allows.
    - PACING_LIMITED: the window has room but the pacer does not; ask ``time_until_send``.
    """

    NONE = 0
    ACK_ONLY = 1
    PTO_INITIAL = 2
    PTO_HANDSHAKE = 3
    PTO_APPLICATION = 4
    ANY = 5
    PACING_LIMITED = 6
