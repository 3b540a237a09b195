"""Network paths: path validation and connection migration (RFC 9000 §8.2, §9).

A ``Path`` is one (local address, remote address) pair with its validation state, its
anti-amplification account (RFC 9000 §8, §9.3.1) and the PATH_CHALLENGE / PATH_RESPONSE frames it
owes. The ``PathManager`` owns the paths of one connection and decides, for every authenticated
packet, which path it arrived on and whether the peer migrated (§9.3): a non-probing packet that is
the highest-numbered so far, from a new address, moves the server's sending to that address at once
("it MUST send subsequent packets to the new peer address and MUST initiate path validation"), while
the last validated path is kept as the fallback that §9.3.2 requires when validation fails. Probing
packets (§9.1) never move anything. A client moves with ``migrate()``: it validates the new local
path first and switches once the peer answered.

Sans-IO: addresses are opaque hashable values (``(host, port)`` tuples in practice), time is
``now``, PTO comes from the RTT estimator given to the manager. Packets are built by the packer from
``pop_probe``: one datagram per probe, padded to ``PathProbe.min_size`` (§8.2.1, §8.2.2).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from quicsilver.errors import QuicError
from quicsilver.protocol import AMPLIFICATION_FACTOR, INITIAL_RTT, MIN_INITIAL_PACKET_SIZE, Perspective
from quicsilver.wire.frames import Frame, PathChallengeFrame, PathResponseFrame, is_probing_frame

__all__ = [
    "INITIAL_PTO",
    "MAX_PATHS",
    "MIN_PROBE_DATAGRAM_SIZE",
    "ActivePathChanged",
    "Address",
    "MigrationError",
    "Path",
    "PathEvent",
    "PathManager",
    "PathProbe",
    "PathState",
    "PathValidated",
    "PathValidationFailed",
    "is_probing_packet",
]

Address = Hashable
"""A transport address as the I/O layer reports it, e.g. ``("192.0.2.1", 4433)``; compared by value."""

INITIAL_PTO: Final = 3 * INITIAL_RTT
"""Seconds: the PTO of a path without RTT samples (kInitialRtt + 4 x kInitialRtt/2, RFC 9002 §6.2.2)."""
VALIDATION_TIMEOUT_PTOS: Final = 3
"""RFC 9000 §8.2.4: abandon validation after three times the larger of the current and initial PTO."""
MIN_PROBE_DATAGRAM_SIZE: Final = 64
"""Bytes: below this amplification budget a probe waits (a short header, an 8-byte frame and the tag)."""
MAX_PATHS: Final = 4
"""Paths remembered per connection: the active one, its fallback and a few probed or recent ones."""
MAX_PENDING_RESPONSES: Final = 4
"""PATH_RESPONSE frames owed per path; a flood of PATH_CHALLENGE frames only keeps the newest."""
MAX_OUTSTANDING_CHALLENGES: Final = 8
"""PATH_CHALLENGE payloads remembered per validation (older ones stop matching)."""


class MigrationError(QuicError):
    """``migrate()`` was refused: why is in the message (RFC 9000 §9)."""


class PathState(Enum):
    """Where a path stands in validation (RFC 9000 §8.2)."""

    UNVALIDATED = "unvalidated"
    VALIDATING = "validating"
    VALIDATED = "validated"
    FAILED = "failed"


class _RTT(Protocol):
    def pto(self, include_max_ack_delay: bool) -> float: ...


def is_probing_packet(frames: Iterable[Frame]) -> bool:
    """RFC 9000 §9.1: a packet with only PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID and PADDING."""
    return all(is_probing_frame(frame) for frame in frames)


def _same_host(a: Address, b: Address) -> bool:
    """True when ``a`` and ``b`` differ at most in the port (the first tuple element is the host)."""
    if isinstance(a, tuple) and isinstance(b, tuple) and a and b:
        return bool(a[0] == b[0])
    return a == b


def _probe_blocked(path: Path) -> bool:
    """Nothing can be sent on ``path`` now: no peer CID for it yet (§9.5), or no amplification budget."""
    if path.awaiting_peer_cid:
        return True
    budget = path.amplification_budget()
    return budget is not None and budget < MIN_PROBE_DATAGRAM_SIZE


class Path:
    """One network path: validation state, anti-amplification budget and pending path frames.

    ``peer_cid`` is the connection ID to send on this path when it must differ from the connection's
    current one (``needs_new_peer_cid``, RFC 9000 §9.5); ``local_cid`` the DCID the peer last used
    on it. ``mtu_validated`` says a 1200-byte PATH_CHALLENGE datagram was answered (§8.2.1).
    """

    def __init__(
        self,
        local_addr: Address,
        remote_addr: Address,
        *,
        state: PathState = PathState.UNVALIDATED,
        amplification_limited: bool = True,
    ) -> None:
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.state = state
        self.amplification_limited = amplification_limited
        self.bytes_received = 0
        self.bytes_sent = 0
        self.mtu_validated = state is PathState.VALIDATED
        self.needs_new_peer_cid = False
        self.peer_cid: bytes | None = None
        self.local_cid: bytes | None = None
        self.validated_at: float | None = None
        self.last_rtt: float | None = None
        """Seconds from the first PATH_CHALLENGE to the matching PATH_RESPONSE, once validated."""
        # Validation in progress: the payloads we sent and whether their datagram was padded.
        self._challenges: dict[bytes, tuple[float, bool]] = {}
        self._next_challenge: float | None = None
        self._retry_interval = 0.0
        self._deadline: float | None = None
        self._responses: deque[bytes] | None = None  # created with the first challenge (memory, issue 9)

    def __repr__(self) -> str:
        return f"Path({self.local_addr!r} -> {self.remote_addr!r}, {self.state.value})"

    @property
    def key(self) -> tuple[Address, Address]:
        return (self.local_addr, self.remote_addr)

    @property
    def is_validating(self) -> bool:
        """True while PATH_CHALLENGE frames are outstanding or due (address or MTU validation)."""
        return self._deadline is not None

    @property
    def validation_deadline(self) -> float | None:
        return self._deadline

    @property
    def awaiting_peer_cid(self) -> bool:
        """True when nothing may be sent on this path until the peer supplies an unused CID (§9.5)."""
        return self.needs_new_peer_cid and self.peer_cid is None

    # -- anti-amplification (RFC 9000 §8, §9.3.1) ----------------------------------------------------

    def amplification_budget(self) -> int | None:
        """Bytes still allowed to an unvalidated peer address, or None when unlimited."""
        if not self.amplification_limited:
            return None
        # §8: "an endpoint MUST limit the amount of data it sends to the unvalidated address to
        # three times the amount of data received from that address".
        return max(0, AMPLIFICATION_FACTOR * self.bytes_received - self.bytes_sent)

    def can_send(self, size: int) -> bool:
        budget = self.amplification_budget()
        return budget is None or size <= budget

    def on_datagram_received(self, size: int) -> None:
        self.bytes_received += size

    def on_datagram_sent(self, size: int) -> None:
        """Count every datagram sent on this path (all of them, not only probes)."""
        self.bytes_sent += size

    # -- validation ----------------------------------------------------------------------------------

    def _start_validation(self, now: float, pto: float) -> None:
        if self.state is not PathState.VALIDATED:
            self.state = PathState.VALIDATING
        self._challenges.clear()
        self._next_challenge = now
        self._retry_interval = pto
        # RFC 9000 §8.2.4: "three times the larger of the current PTO or the PTO for the new path
        # (using kInitialRtt ...) is RECOMMENDED".
        self._deadline = now + VALIDATION_TIMEOUT_PTOS * max(pto, INITIAL_PTO)

    def _stop_validation(self) -> None:
        self._challenges.clear()
        self._next_challenge = None
        self._deadline = None

    def _abandon(self) -> None:
        """§8.2.4: abandoned for another reason than failure (a migration elsewhere)."""
        self._stop_validation()
        if self.state is PathState.VALIDATING:
            self.state = PathState.UNVALIDATED

    def _challenge_due(self, now: float) -> bool:
        return self._next_challenge is not None and now >= self._next_challenge

    def _make_challenge(self, now: float, padded: bool, rng: Callable[[int], bytes]) -> PathChallengeFrame:
        # §8.2.1: "The endpoint MUST use unpredictable data in every PATH_CHALLENGE frame".
        data = rng(8)
        while data in self._challenges:
            data = rng(8)
        if len(self._challenges) >= MAX_OUTSTANDING_CHALLENGES:
            del self._challenges[next(iter(self._challenges))]
        self._challenges[data] = (now, padded)
        # Retries back off like Initial retransmissions (§8.2.1: "SHOULD NOT probe a new path ...
        # more frequently than it would send an Initial packet"); the deadline ends them.
        assert self._deadline is not None
        self._next_challenge = now + self._retry_interval
        if self._next_challenge >= self._deadline:
            self._next_challenge = None
        self._retry_interval *= 2
        return PathChallengeFrame(data)

    def _match_response(self, data: bytes, now: float) -> bool | None:
        """None if ``data`` is none of our challenges, else whether that challenge was padded."""
        entry = self._challenges.get(data)
        if entry is None:
            return None
        if self.last_rtt is None:
            self.last_rtt = now - entry[0]
        return entry[1]


@dataclass(frozen=True, slots=True)
class PathProbe:
    """Path frames to send now in one datagram on ``path`` (its addresses, its ``peer_cid`` if set).

    The packer puts ``frames`` in a 1-RTT packet (it may add an ACK) and pads the datagram to at
    least ``min_size`` bytes (RFC 9000 §8.2.1, §8.2.2: 1200, or less when the path's
    anti-amplification budget does not allow it), then calls ``path.on_datagram_sent(size)``.
    Neither frame is retransmitted when lost (§13.3): the manager sends fresh challenges itself.
    """

    path: Path
    frames: tuple[Frame, ...]
    min_size: int


@dataclass(frozen=True, slots=True)
class ActivePathChanged:
    """Send everything on ``path`` from now on (instead of ``previous``).

    ``reset_congestion``: reset the congestion controller, the RTT estimator and the MTU discoverer
    to their initial state (RFC 9000 §9.4: unless only the port changed, i.e. NAT rebinding).
    """

    path: Path
    previous: Path
    reset_congestion: bool


@dataclass(frozen=True, slots=True)
class PathValidated:
    """A PATH_RESPONSE echoed one of our challenges on ``path`` (RFC 9000 §8.2.3)."""

    path: Path


@dataclass(frozen=True, slots=True)
class PathValidationFailed:
    """Validation of ``path`` was abandoned after 3 x PTO (§8.2.4).

    ``reverted_to`` is the last validated path we went back to when ``path`` was active (§9.3.2);
    None with ``path`` active means there is no validated path left: the connection MUST be closed
    silently (§9.3.2, "by discarding all connection state").
    """

    path: Path
    reverted_to: Path | None
    was_active: bool


PathEvent = ActivePathChanged | PathValidated | PathValidationFailed


class PathManager:
    """The paths of one connection, their validation and the migration decisions (RFC 9000 §9).

    ``local_addr`` / ``remote_addr`` name the path of the handshake, validated by it (the handshake's
    own amplification limit is the SentPacketHandler's business). ``rtt`` supplies the PTO for
    validation timers. ``disable_active_migration`` is what *we* advertised (server).
    """

    def __init__(
        self,
        perspective: Perspective,
        local_addr: Address,
        remote_addr: Address,
        rtt: _RTT,
        *,
        disable_active_migration: bool = False,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._perspective = perspective
        self._rtt = rtt
        self._rng = rng
        self._disable_active_migration = disable_active_migration
        self._peer_disabled_migration = False
        self._preferred_cid: bytes | None = None
        self._handshake_confirmed = False
        initial = Path(local_addr, remote_addr, state=PathState.VALIDATED, amplification_limited=False)
        self._handshake_remote = remote_addr
        self._paths: dict[tuple[Address, Address], Path] = {initial.key: initial}
        self._active = initial
        self._fallback: Path | None = None
        self._events: deque[PathEvent] | None = None  # created with the first event (memory, issue 9)

    # -- state ---------------------------------------------------------------------------------------

    @property
    def active(self) -> Path:
        """The path all non-probing packets are sent on."""
        return self._active

    @property
    def fallback(self) -> Path | None:
        """The last validated path, kept while the active one is unvalidated (§9.3.2)."""
        return self._fallback

    @property
    def paths(self) -> list[Path]:
        return list(self._paths.values())

    @property
    def only_active(self) -> Path | None:
        """The active path when it is the only one (the common case: a cheap per-packet check)."""
        return self._active if len(self._paths) == 1 else None

    def get(self, local_addr: Address, remote_addr: Address) -> Path | None:
        return self._paths.get((local_addr, remote_addr))

    def set_handshake_confirmed(self) -> None:
        """From now on the peer may migrate and we may (RFC 9000 §9: not before confirmation)."""
        self._handshake_confirmed = True

    def set_peer_disable_active_migration(self, disabled: bool) -> None:
        """The peer's disable_active_migration transport parameter (client side, §18.2)."""
        self._peer_disabled_migration = disabled

    def set_preferred_address_cid(self, cid: bytes) -> None:
        """Server: the CID of our preferred_address; a client using it is moving there (§9.6)."""
        self._preferred_cid = cid

    def set_local_cid(self, cid: bytes) -> None:
        """The DCID the peer uses on the handshake path (to tell NAT rebinding from migration)."""
        self._active.local_cid = cid

    def next_event(self) -> PathEvent | None:
        events = self._events
        return events.popleft() if events else None

    def _event(self, event: PathEvent) -> None:
        if self._events is None:
            self._events = deque()
        self._events.append(event)

    # -- receive -------------------------------------------------------------------------------------

    def on_packet_received(
        self,
        local_addr: Address,
        remote_addr: Address,
        now: float,
        *,
        datagram_size: int,
        dcid: bytes,
        non_probing: bool,
        largest_pn: bool = True,
    ) -> Path | None:
        """An authenticated packet arrived: the path it came on, or None to drop it unprocessed.

        Call it after decrypting a packet and parsing its frames, before acting on them.
        ``datagram_size`` is the UDP payload size for the first packet of a datagram and 0 for the
        packets coalesced after it (each datagram counts once toward the amplification budget).
        ``non_probing`` = not ``is_probing_packet(frames)``; ``largest_pn``: its packet number is the
        largest received so far in its space. A None answer drops the packet without a stateless
        reset (§9: a migration we do not allow).
        """
        path = self._paths.get((local_addr, remote_addr))
        if path is None:
            path = self._new_peer_path(local_addr, remote_addr, dcid, now)
            if path is None:
                return None
        path.on_datagram_received(datagram_size)
        if dcid and largest_pn:
            # The peer may retire and replace the CID it sends to on any path (§5.1.2); remember the
            # latest so that a later NAT rebinding is still told apart from a migration.
            path.local_cid = dcid
        # §9.3: "An endpoint only changes the address to which it sends packets in response to the
        # highest-numbered non-probing packet." Probing packets (§9.1) never switch.
        if (
            path is not self._active
            and non_probing
            and largest_pn
            and self._perspective is Perspective.SERVER
            and self._handshake_confirmed
        ):
            self._follow_peer(path, now)
        return path

    def _new_peer_path(
        self, local_addr: Address, remote_addr: Address, dcid: bytes, now: float
    ) -> Path | None:
        # §9: "This document limits migration of connections to new client addresses": a client does
        # not follow a server to an address it did not probe itself.
        if self._perspective is Perspective.CLIENT:
            return None
        # §9: "An endpoint MUST NOT initiate connection migration before the handshake is confirmed".
        if not self._handshake_confirmed:
            return None
        rebinding = dcid == self._active.local_cid
        # §9: if we advertised disable_active_migration and the peer migrates anyway, "the endpoint
        # MUST either drop the incoming packets on that path without generating a Stateless Reset or
        # proceed with path validation". A packet under the same DCID is NAT rebinding, which the
        # peer cannot prevent (§9.5 forces a new CID on an intentional migration): we follow that.
        # §9.6: disable_active_migration does not cover the move to our preferred_address, which the
        # client makes with the preferred_address CID.
        if self._disable_active_migration and not rebinding and dcid != self._preferred_cid:
            return None
        path = Path(local_addr, remote_addr, state=PathState.UNVALIDATED, amplification_limited=True)
        path.local_cid = dcid
        # §9.5: "an endpoint MUST NOT reuse a connection ID when sending to more than one destination
        # address", except that after a NAT rebinding it "MAY continue to use the current connection ID".
        path.needs_new_peer_cid = not rebinding
        self._add_path(path)
        # Validate every new peer address at once: §9.3 requires it on migration, and a peer that
        # only probes gets our PATH_CHALLENGE with its PATH_RESPONSE (§8.2).
        path._start_validation(now, self._pto())
        return path

    def _add_path(self, path: Path) -> None:
        if len(self._paths) >= MAX_PATHS:
            spare = [p for p in self._paths.values() if p is not self._active and p is not self._fallback]
            # Forget failed or unvalidated paths before validated ones, oldest first.
            spare.sort(key=lambda p: p.state is PathState.VALIDATED)
            if spare:
                del self._paths[spare[0].key]
        self._paths[path.key] = path

    def _follow_peer(self, path: Path, now: float) -> None:
        """Server: the peer migrated (or its NAT rebound) to ``path`` (RFC 9000 §9.3)."""
        previous = self._active
        if previous.state is PathState.VALIDATED:
            self._fallback = previous
        if path is self._fallback:
            self._fallback = None
        # §9.3: "If the recipient permits the migration, it MUST send subsequent packets to the new
        # peer address and MUST initiate path validation ... if validation is not already underway."
        if path.state is not PathState.VALIDATED and not path.is_validating:
            path._start_validation(now, self._pto())
        self._switch(path, previous)

    def _switch(self, path: Path, previous: Path) -> None:
        self._active = path
        # §9.3: "After changing the address to which it sends non-probing packets, an endpoint can
        # abandon any path validation for other addresses."
        for other in self._paths.values():
            if other is not path and other.is_validating:
                other._abandon()
        # §9.4: reset congestion control and RTT "unless the only change in the peer's address is
        # its port number" (the same holds for our own address when we move). The reset comes with
        # the switch rather than with the PATH_RESPONSE: from the first packet sent on the new path,
        # its congestion and RTT state are its own, and nothing from the old path carries over.
        reset = not (
            _same_host(path.remote_addr, previous.remote_addr)
            and _same_host(path.local_addr, previous.local_addr)
        )
        self._event(ActivePathChanged(path, previous, reset))

    def on_path_challenge(self, path: Path, frame: PathChallengeFrame) -> None:
        """Owe a PATH_RESPONSE on the path the challenge arrived on (RFC 9000 §8.2.2).

        "A PATH_RESPONSE frame MUST be sent on the network path where the PATH_CHALLENGE frame was
        received" and exactly once per challenge: it is queued once and never retransmitted.
        """
        if path._responses is None:
            path._responses = deque(maxlen=MAX_PENDING_RESPONSES)
        path._responses.append(frame.data)

    def on_path_response(self, frame: PathResponseFrame, now: float) -> Path | None:
        """Match a PATH_RESPONSE against our outstanding challenges; the validated path or None.

        §8.2.3: "A PATH_RESPONSE frame received on any network path validates the path on which the
        PATH_CHALLENGE was sent"; data we never sent is ignored (not an error: it may be a late echo
        of a challenge we have forgotten).
        """
        for path in self._paths.values():
            padded = path._match_response(frame.data, now)
            if padded is None:
                continue
            self._on_validated(path, padded, now)
            return path
        return None

    def _on_validated(self, path: Path, padded: bool, now: float) -> None:
        first = path.state is not PathState.VALIDATED
        path.state = PathState.VALIDATED
        path.amplification_limited = False
        path.validated_at = now
        if padded:
            path.mtu_validated = True
            path._stop_validation()
        else:
            # §8.2.1: "When an endpoint is unable to expand the datagram size to 1200 bytes due to the
            # anti-amplification limit, the path MTU will not be validated. To ensure that the path MTU
            # is large enough, the endpoint MUST perform a second path validation".
            path._start_validation(now, self._pto())
        if path is self._active and path.mtu_validated:
            self._fallback = None
        if first:
            self._event(PathValidated(path))
            if self._perspective is Perspective.CLIENT and path is not self._active:
                # §9.2: the client moves its non-probing packets to the path it validated.
                self._switch(path, self._active)

    # -- client migration ----------------------------------------------------------------------------

    def migrate(self, local_addr: Address, now: float, *, remote_addr: Address | None = None) -> Path:
        """Client: validate a path from ``local_addr`` and move to it once validated (RFC 9000 §9.2).

        ``remote_addr`` defaults to the current server address; another one is the server's
        preferred_address (§9.6). The new path needs a fresh peer CID (§9.5): the caller assigns one
        with ``assign_peer_cid`` before anything can be sent on it. Raises MigrationError.
        """
        if self._perspective is not Perspective.CLIENT:
            raise MigrationError("only clients initiate connection migration (RFC 9000 §9)")
        # §9: "An endpoint MUST NOT initiate connection migration before the handshake is confirmed".
        if not self._handshake_confirmed:
            raise MigrationError("cannot migrate before the handshake is confirmed (RFC 9000 §9)")
        remote = self._active.remote_addr if remote_addr is None else remote_addr
        # §9: with the peer's disable_active_migration, "an endpoint also MUST NOT send packets
        # (including probing packets) from a different local address to the address the peer used
        # during the handshake, unless the endpoint has acted on a preferred_address".
        if self._peer_disabled_migration and remote == self._handshake_remote:
            raise MigrationError("the server sent disable_active_migration (RFC 9000 §18.2)")
        key = (local_addr, remote)
        if key == self._active.key:
            raise MigrationError(f"already on the path {local_addr!r} -> {remote!r}")
        path = self._paths.get(key)
        if path is None:
            # The server's address is validated; only the server has to validate ours (§8.2).
            path = Path(local_addr, remote, state=PathState.UNVALIDATED, amplification_limited=False)
            self._add_path(path)
        path.state = PathState.UNVALIDATED
        # §9.5: "An endpoint MUST NOT reuse a connection ID when sending from more than one local address".
        path.needs_new_peer_cid = True
        path.peer_cid = None
        path._start_validation(now, self._pto())
        return path

    def assign_peer_cid(self, path: Path, cid: bytes) -> None:
        """Use the peer's ``cid`` (unused so far) as the DCID of everything sent on ``path`` (§9.5)."""
        path.peer_cid = cid

    # -- send ----------------------------------------------------------------------------------------

    def pop_probe(self, now: float) -> PathProbe | None:
        """The next datagram of path frames due now (responses first), or None.

        A path waiting for a peer CID (§9.5) or whose amplification budget is below
        ``MIN_PROBE_DATAGRAM_SIZE`` is skipped until that changes.
        """
        for path in self._paths.values():
            wants_challenge = path._challenge_due(now)
            if (not path._responses and not wants_challenge) or _probe_blocked(path):
                continue
            budget = path.amplification_budget()
            # §8.2.1 / §8.2.2: expand to 1200 bytes "unless the anti-amplification limit for the path
            # does not permit sending a datagram of this size".
            min_size = MIN_INITIAL_PACKET_SIZE if budget is None else min(MIN_INITIAL_PACKET_SIZE, budget)
            frames: list[Frame] = []
            if path._responses:
                # §8.2.2: "An endpoint MUST NOT delay transmission of a packet containing a PATH_RESPONSE".
                frames.append(PathResponseFrame(path._responses.popleft()))
            if wants_challenge:
                # §8.2.1: "SHOULD NOT send multiple PATH_CHALLENGE frames in a single packet".
                frames.append(path._make_challenge(now, min_size >= MIN_INITIAL_PACKET_SIZE, self._rng))
            return PathProbe(path, tuple(frames), min_size)
        return None

    # -- timers --------------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest validation deadline or challenge retry, or None."""
        times: list[float] = []
        for path in self._paths.values():
            if path._deadline is not None:
                times.append(path._deadline)
            if path._next_challenge is not None and not _probe_blocked(path):
                times.append(path._next_challenge)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        """Abandon validations past their deadline (RFC 9000 §8.2.4), reverting if needed (§9.3.2)."""
        for path in list(self._paths.values()):
            if path._deadline is None or now < path._deadline:
                continue
            path._stop_validation()
            path.state = PathState.FAILED
            was_active = path is self._active
            reverted: Path | None = None
            if was_active:
                # §9.3.2: "an endpoint MUST revert to using the last validated peer address when
                # validation of a new peer address fails".
                reverted = self._fallback
                self._fallback = None
                if reverted is not None:
                    self._switch(reverted, path)
            self._event(PathValidationFailed(path, reverted, was_active))

    def _pto(self) -> float:
        return self._rtt.pto(True)
