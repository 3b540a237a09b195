"""ECN validation of the path (RFC 9000 §13.4.2, Appendix A.4).

The first ``ECN_TESTING_PACKETS`` 1-RTT packets are sent with ECT(0) ("testing"). Then marking stops
("unknown") until an ACK frame shows that marked packets arrived with their marks ("capable"), after
which every packet is marked again. Validation fails for good ("failed") when ACK frames omit or
decrease the counts, report more ECT marks than were sent, report fewer than the newly acknowledged
marked packets, or when every testing packet is lost or CE-marked (a path that remarks everything
to CE). CE marks count as congestion only once the path is capable.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Final

from quicsilver.ackhandler.packet import SentPacket
from quicsilver.protocol import ECN

__all__ = ["ECN_TESTING_PACKETS", "ECNState", "ECNTracker"]

ECN_TESTING_PACKETS: Final = 10  # RFC 9000 §A.4 suggests 10


class ECNState(Enum):
    INITIAL = "initial"
    TESTING = "testing"
    UNKNOWN = "unknown"
    CAPABLE = "capable"
    FAILED = "failed"


_INITIAL: Final = ECNState.INITIAL
_TESTING: Final = ECNState.TESTING
_UNKNOWN: Final = ECNState.UNKNOWN
_CAPABLE: Final = ECNState.CAPABLE
_FAILED: Final = ECNState.FAILED
# Module constants (Final: the compiled build reads them as C statics): Enum attribute access is slow.
_ECT0: Final = ECN.ECT0
_ECT1: Final = ECN.ECT1
_NOT_ECT: Final = ECN.NOT_ECT


class ECNTracker:
    """ECN validation state machine for the application data space."""

    __slots__ = (
        "_ce_base",
        "_first_testing",
        "_last_testing",
        "acked_ce",
        "acked_ect0",
        "acked_ect1",
        "failure_reason",
        "lost_testing",
        "sent_ect0",
        "sent_ect1",
        "sent_testing",
        "state",
    )

    def __init__(self) -> None:
        self.state = _INITIAL
        self.sent_ect0 = 0
        self.sent_ect1 = 0
        self.sent_testing = 0
        self.lost_testing = 0
        self.acked_ect0 = 0
        self.acked_ect1 = 0
        self.acked_ce = 0
        self._first_testing = -1
        self._last_testing = -1
        self._ce_base = 0
        self.failure_reason = ""

    def restart(self) -> None:
        """Validate again on a new path (RFC 9000 §13.4.2: "Endpoints validate ECN for packets sent on
        each network path independently ... on active connection migration to a new path"). The counts
        stay: the peer's ACK frames report totals for the whole packet number space."""
        self.state = _INITIAL
        self.sent_testing = 0
        self.lost_testing = 0
        self._first_testing = -1
        self._last_testing = -1
        self._ce_base = self.acked_ce
        self.failure_reason = ""

    def marking(self) -> ECN:
        """The codepoint for the next 1-RTT packet; the first call starts testing."""
        if self.state is _INITIAL:
            self.state = _TESTING
        if self.state is _TESTING or self.state is _CAPABLE:
            return _ECT0
        return _NOT_ECT

    def sent_packet(self, pn: int, ecn: ECN | int) -> None:
        if ecn == _ECT0:
            self.sent_ect0 += 1
        elif ecn == _ECT1:
            self.sent_ect1 += 1
        else:
            return
        if self.state is not _TESTING:
            return
        self.sent_testing += 1
        if self._first_testing < 0:
            self._first_testing = pn
        if self.sent_testing >= ECN_TESTING_PACKETS:
            self.state = _UNKNOWN
            self._last_testing = pn

    def lost_packet(self, pn: int) -> None:
        if self.state is not _TESTING and self.state is not _UNKNOWN:
            return
        if not self._is_testing_packet(pn):
            return
        self.lost_testing += 1
        if self.state is not _UNKNOWN:
            return
        if self.lost_testing >= self.sent_testing:
            self._fail("all testing packets lost")
            return
        self._fail_if_mangled()

    def handle_newly_acked(self, acked: Iterable[SentPacket], counts: tuple[int, int, int] | None) -> bool:
        """Validate the ECN counts of an ACK frame that increased the largest acknowledged packet.

        ``acked`` are the newly acknowledged packets (``pn`` and the ``ecn`` codepoint each was sent
        with). Returns True when the CE count grew on a capable path (a congestion signal, RFC 9002 §7.1).
        """
        if self.state is _FAILED or (self.sent_ect0 == 0 and self.sent_ect1 == 0):
            return False  # validation failed, or ECN was never used
        ect0, ect1, ce = counts if counts is not None else (0, 0, 0)
        # RFC 9000 §13.4.2.1: "validation also fails if the sum of ... counts exceeds the number of
        # packets sent with each corresponding ECT codepoint".
        if ect0 > self.sent_ect0 or ect1 > self.sent_ect1:
            self._fail("more ECT marks acknowledged than sent")
            return False
        acked_ect0 = 0
        acked_ect1 = 0
        testing_acked = False
        for p in acked:
            mark = p.ecn
            if mark == _ECT0:
                acked_ect0 += 1
            elif mark == _ECT1:
                acked_ect1 += 1
            if not testing_acked and self._is_testing_packet(p.pn):
                testing_acked = True
        # RFC 9000 §13.4.2.1: "If an ACK frame newly acknowledges a packet that the endpoint sent with
        # either the ECT(0) or ECT(1) codepoint set, ECN validation fails if the corresponding ECN
        # counts are not present in the ACK frame."
        if (acked_ect0 or acked_ect1) and counts is None:
            self._fail("ACK without ECN counts")
            return False
        new_ect0 = ect0 - self.acked_ect0
        new_ect1 = ect1 - self.acked_ect1
        new_ce = ce - self.acked_ce
        if new_ect0 < 0 or new_ect1 < 0 or new_ce < 0:
            self._fail("ECN counts decreased")
            return False
        # RFC 9000 §13.4.2.1: fails "if the sum of the increase in ECT(0) and ECN-CE counts is less
        # than the number of newly acknowledged packets that were originally sent with ECT(0)".
        if new_ect0 + new_ce < acked_ect0 or new_ect1 + new_ce < acked_ect1:
            self._fail("fewer ECT+CE marks than ECT packets acknowledged")
            return False
        self.acked_ect0 = ect0
        self.acked_ect1 = ect1
        self.acked_ce = ce
        if self.state is _UNKNOWN and self._fail_if_mangled():
            return False
        if (
            (self.state is _TESTING or self.state is _UNKNOWN)
            and testing_acked
            and (new_ect0 > 0 or new_ect1 > 0)
        ):
            self.state = _CAPABLE
        # CE marks are trusted only on a validated path; before, a remarking path would look congested.
        return self.state is _CAPABLE and new_ce > 0

    def _fail_if_mangled(self) -> bool:
        """Fail when every testing packet came back CE-marked or was lost; True if it failed."""
        if self.sent_testing > self.acked_ce - self._ce_base + self.lost_testing:
            return False
        self._fail("every testing packet CE-marked or lost")
        return True

    def _fail(self, reason: str) -> None:
        self.state = _FAILED
        self.failure_reason = reason

    def _is_testing_packet(self, pn: int) -> bool:
        if self._first_testing < 0:
            return False
        return pn >= self._first_testing and (self._last_testing < 0 or pn <= self._last_testing)
