"""Packet number assignment, with random skips against optimistic ACK attacks (RFC 9000 §21.4).

A peer that acknowledges packets it never received (to inflate our congestion window) is caught when
it acknowledges a packet number we skipped. :class:`SkippingPacketNumberGenerator` skips one number
at a random point of every period; the period starts at 256 packets and doubles up to 128 Ki packets
(quic-go's SkipPacketInitialPeriod / SkipPacketMaxPeriod), and two consecutive numbers are never
skipped.
"""

from __future__ import annotations

import os
import random
from typing import Final

__all__ = [
    "SKIP_PACKET_INITIAL_PERIOD",
    "SKIP_PACKET_MAX_PERIOD",
    "SequentialPacketNumberGenerator",
    "SkippingPacketNumberGenerator",
]

SKIP_PACKET_INITIAL_PERIOD: Final = 256
SKIP_PACKET_MAX_PERIOD: Final = 128 * 1024


# Shared: SystemRandom reads the OS for every draw and keeps no state of its own, while each instance
# carries an unused 2.5 KB Mersenne Twister state (memory per idle connection, issue 9).
_SYSTEM_RANDOM = random.SystemRandom()


class SequentialPacketNumberGenerator:
    """0, 1, 2, ... (Initial and Handshake spaces)."""

    __slots__ = ("next_pn",)

    def __init__(self, initial: int = 0) -> None:
        self.next_pn = initial

    def peek(self) -> int:
        return self.next_pn

    def pop(self) -> tuple[int | None, int]:
        """``(skipped packet number or None, packet number to use)``."""
        pn = self.next_pn
        self.next_pn = pn + 1
        return None, pn


class SkippingPacketNumberGenerator:
    """Like the sequential generator, but skips one number at a random point of each period.

    ``rng`` decides where; pass a seeded ``random.Random`` in tests. By default it is seeded from
    the OS (the skips must be unpredictable to the peer).
    """

    __slots__ = ("_max_period", "_next_to_skip", "_period", "_rng", "next_pn")

    def __init__(
        self,
        initial: int = 0,
        rng: random.Random | None = None,
        initial_period: int = SKIP_PACKET_INITIAL_PERIOD,
        max_period: int = SKIP_PACKET_MAX_PERIOD,
    ) -> None:
        self.next_pn = initial
        self._rng = rng if rng is not None else _SYSTEM_RANDOM
        self._period = initial_period
        self._max_period = max_period
        self._next_to_skip = 0
        self._new_skip()

    def peek(self) -> int:
        pn = self.next_pn
        return pn + 1 if pn == self._next_to_skip else pn

    def pop(self) -> tuple[int | None, int]:
        pn = self.next_pn
        if pn == self._next_to_skip:
            self.next_pn = pn + 2
            self._new_skip()
            return pn, pn + 1
        self.next_pn = pn + 1
        return None, pn

    def _new_skip(self) -> None:
        # At least two numbers after the next one, so two consecutive numbers are never skipped.
        rng = self._rng
        if isinstance(rng, random.SystemRandom):
            # One read of the OS per period (randrange makes several calls): 32 random bits reduced
            # modulo a period of at most 2^18, a bias below 2^-13 that no peer can exploit.
            offset = int.from_bytes(os.urandom(4), "big") % (2 * self._period)
        else:
            offset = rng.randrange(2 * self._period)
        self._next_to_skip = self.next_pn + 2 + offset
        self._period = min(2 * self._period, self._max_period)
