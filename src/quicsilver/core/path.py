"""The peer's network path: address changes, path validation and its anti-amplification limit
(RFC 9000 §8.1, §8.2, §9.3, §9.4, §9.5).

A connection has one current path (the peer's address). When a non-probing packet with the highest
packet number so far arrives from another address, the endpoint moves to it (§9.3) and validates it
with PATH_CHALLENGE (§8.2.1); until the matching PATH_RESPONSE arrives it sends at most three times
what it received on the new path (§9.3: "an endpoint MUST limit the amount of data it sends to the
unvalidated address"). Datagrams carrying a PATH_CHALLENGE are expanded to 1200 bytes unless that
limit forbids it (§8.2.1).
"""

from __future__ import annotations

import os
from typing import Any

from quicsilver.protocol import AMPLIFICATION_FACTOR

__all__ = ["MAX_PATH_CHALLENGES", "PathManager"]

MAX_PATH_CHALLENGES = 3
"""PATH_CHALLENGE frames sent on a new path before giving up on validating it (one per PTO)."""


class PathManager:
    """The current path, and the validation of a new one."""

    __slots__ = (
        "_challenge",
        "_challenges_sent",
        "_validated",
        "addr",
        "bytes_received",
        "bytes_sent",
        "migrations",
        "previous_addr",
    )

    def __init__(self) -> None:
        self.addr: Any = None
        self.previous_addr: Any = None
        self._validated = True  # the handshake validates the first path
        self._challenge: bytes | None = None
        self._challenges_sent = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.migrations = 0

    @property
    def validated(self) -> bool:
        return self._validated

    def on_datagram_received(self, size: int) -> None:
        if not self._validated:
            self.bytes_received += size

    def on_datagram_sent(self, size: int) -> None:
        if not self._validated:
            self.bytes_sent += size

    def amplification_budget(self) -> int | None:
        """Bytes we may still send on an unvalidated new path (None: no limit)."""
        if self._validated:
            return None
        return max(0, AMPLIFICATION_FACTOR * self.bytes_received - self.bytes_sent)

    def migrate(self, addr: Any, size: int) -> bool:
        """The peer moved to ``addr`` (its datagram of ``size`` bytes arrived from there).

        Returns True when only the port changed (NAT rebinding: §9.4 keeps the congestion state).
        """
        self.previous_addr = self.addr
        self.addr = addr
        self.migrations += 1
        self._validated = False
        self._challenge = None
        self._challenges_sent = 0
        self.bytes_received = size
        self.bytes_sent = 0
        return _same_host(self.previous_addr, addr)

    def start_validation(self) -> bool:
        """Whether a new PATH_CHALLENGE should go out now (sets its data)."""
        if self._validated or self._challenges_sent >= MAX_PATH_CHALLENGES:
            return False
        self._challenge = os.urandom(8)
        self._challenges_sent += 1
        return True

    @property
    def challenge(self) -> bytes | None:
        return self._challenge

    def on_path_response(self, data: bytes) -> bool:
        """RFC 9000 §8.2.3: a PATH_RESPONSE echoing our challenge validates the path."""
        if self._challenge is not None and data == self._challenge:
            self._validated = True
            self._challenge = None
            return True
        return False

    def abandon(self) -> bool:
        """§9.3.2: validation failed; go back to the previous (validated) address if there is one."""
        if self.previous_addr is None:
            return False
        self.addr = self.previous_addr
        self.previous_addr = None
        self._validated = True
        self._challenge = None
        return True


def _same_host(a: Any, b: Any) -> bool:
    try:
        return bool(a[0] == b[0])
    except (TypeError, IndexError):
        return False
