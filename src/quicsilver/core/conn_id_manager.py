"""The peer's connection IDs: which one we send to, NEW_CONNECTION_ID, retirement, and the stateless
reset tokens we must recognise (RFC 9000 §5.1.1, §5.1.2, §10.3.1, §19.15).
"""

from __future__ import annotations

import hmac
from typing import Final

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.wire.frames import NewConnectionIdFrame, RetireConnectionIdFrame

__all__ = ["ConnIDManager"]

_NEW_CONNECTION_ID_TYPE: Final = 0x18
_MAX_PENDING_RETIREMENTS: Final = 64


class ConnIDManager:
    """Tracks the CIDs the peer issued to us; ``active`` is the DCID of our outgoing packets."""

    def __init__(self, initial_dcid: bytes, active_connection_id_limit: int) -> None:
        self._limit = active_connection_id_limit
        self._cids: dict[int, tuple[bytes, bytes | None]] = {0: (initial_dcid, None)}
        self._active_seq = 0
        self._retire_prior_to = 0
        self._switched_away: set[int] = set()  # sequence numbers retired by switch_to_unused
        self._used: set[int] = {0}  # sequence numbers ever given to a path (RFC 9000 §9.5)
        self.pending_frames: list[RetireConnectionIdFrame] = []

    @property
    def active(self) -> bytes:
        return self._cids[self._active_seq][0]

    def change_initial_dcid(self, dcid: bytes) -> None:
        """Client: the server chose its own CID (or sent a Retry): use it from now on (RFC 9000 §7.2)."""
        self._cids[0] = (dcid, self._cids[0][1])

    def set_stateless_reset_token(self, token: bytes) -> None:
        """The server's stateless_reset_token transport parameter belongs to CID sequence 0 (§18.2)."""
        cid, _ = self._cids[0]
        self._cids[0] = (cid, token)

    def handle_new_connection_id(self, frame: NewConnectionIdFrame) -> None:
        """Record a CID the peer issued, retiring those below retire_prior_to (RFC 9000 §19.15)."""
        if not self.active:
            # §19.15: an endpoint using a zero-length CID MUST treat receipt as a PROTOCOL_VIOLATION.
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "NEW_CONNECTION_ID sent to an endpoint using zero-length connection IDs",
                frame_type=_NEW_CONNECTION_ID_TYPE,
            )
        seq = frame.sequence
        known = self._cids.get(seq)
        if known is not None:
            # §19.15: the same sequence number with a different CID is a PROTOCOL_VIOLATION.
            if known[0] != frame.connection_id or (known[1] is not None and known[1] != frame.reset_token):
                raise TransportError(
                    TransportErrorCode.PROTOCOL_VIOLATION,
                    f"NEW_CONNECTION_ID reuses sequence number {seq} for a different connection ID",
                    frame_type=_NEW_CONNECTION_ID_TYPE,
                )
            return
        if seq < self._retire_prior_to or seq in self._switched_away:
            # §19.15: a frame for an already-retired sequence gets an immediate RETIRE_CONNECTION_ID.
            self._queue_retire(seq)
            return
        for other_seq, (cid, _) in self._cids.items():
            if cid == frame.connection_id and other_seq != seq:
                raise TransportError(
                    TransportErrorCode.PROTOCOL_VIOLATION,
                    "NEW_CONNECTION_ID repeats a connection ID with another sequence number",
                    frame_type=_NEW_CONNECTION_ID_TYPE,
                )
        self._cids[seq] = (frame.connection_id, frame.reset_token)
        if frame.retire_prior_to > self._retire_prior_to:
            self._retire_prior_to = frame.retire_prior_to
            for old in [s for s in self._cids if s < self._retire_prior_to]:
                del self._cids[old]
                self._queue_retire(old)
            if self._active_seq not in self._cids:
                self._active_seq = min(self._cids)
        # §5.1.1: more active CIDs than our active_connection_id_limit is a CONNECTION_ID_LIMIT_ERROR.
        if len(self._cids) > self._limit:
            raise TransportError(
                TransportErrorCode.CONNECTION_ID_LIMIT_ERROR,
                f"peer issued {len(self._cids)} connection IDs, our limit is {self._limit}",
                frame_type=_NEW_CONNECTION_ID_TYPE,
            )

    def add_preferred_address_cid(self, cid: bytes, token: bytes) -> None:
        """The CID of the server's preferred_address: sequence number 1, its reset token recognised
        like a NEW_CONNECTION_ID's (RFC 9000 §5.1.1, §18.2)."""
        frame = NewConnectionIdFrame(sequence=1, retire_prior_to=0, connection_id=cid, reset_token=token)
        try:
            self.handle_new_connection_id(frame)
        except TransportError as exc:
            raise TransportError(
                TransportErrorCode.TRANSPORT_PARAMETER_ERROR, f"preferred_address: {exc.reason}"
            ) from exc

    def take_cid(self, cid: bytes) -> bool:
        """Reserve this CID (one the peer issued, unused so far) for a new path (RFC 9000 §9.5)."""
        for seq, (known, _) in self._cids.items():
            if known == cid and seq not in self._used and seq != self._active_seq:
                self._used.add(seq)
                return True
        return False

    def switch_to_unused(self) -> bool:
        """Move to a CID not used before and retire the current one (RFC 9000 §9.5: a new path uses a
        new connection ID). False when the peer has not issued a spare one."""
        spare = [seq for seq in self._cids if seq > self._active_seq]
        if not spare:
            return False
        old = self._active_seq
        self._active_seq = min(spare)
        del self._cids[old]
        if len(self._switched_away) >= _MAX_PENDING_RETIREMENTS:
            self._switched_away.discard(min(self._switched_away))
        self._switched_away.add(old)
        self._queue_retire(old)
        return True

    def has_unused(self) -> bool:
        return any(seq not in self._used and seq != self._active_seq for seq in self._cids)

    def take_unused(self) -> bytes | None:
        """A CID no path has used yet, for a new path (RFC 9000 §9.5), or None if the peer issued none."""
        for seq in sorted(self._cids):
            if seq not in self._used and seq != self._active_seq:
                self._used.add(seq)
                return self._cids[seq][0]
        return None

    def activate(self, cid: bytes) -> None:
        """Send with ``cid`` (one the peer issued) from now on."""
        for seq, (known, _) in self._cids.items():
            if known == cid:
                self._active_seq = seq
                self._used.add(seq)
                return

    def retire_other_used(self) -> None:
        """The active path is validated: retire the CIDs of the paths left behind (RFC 9000 §5.1.2)."""
        for seq in [s for s in self._used if s != self._active_seq and s in self._cids]:
            del self._cids[seq]
            self._used.discard(seq)
            if len(self._switched_away) >= _MAX_PENDING_RETIREMENTS:
                self._switched_away.discard(min(self._switched_away))
            self._switched_away.add(seq)
            self._queue_retire(seq)

    def _queue_retire(self, seq: int) -> None:
        # §5.1.2: bound the retirements we track; a peer forcing too many is misbehaving.
        if len(self.pending_frames) >= _MAX_PENDING_RETIREMENTS:
            raise TransportError(
                TransportErrorCode.CONNECTION_ID_LIMIT_ERROR,
                "too many connection IDs waiting for retirement",
                frame_type=_NEW_CONNECTION_ID_TYPE,
            )
        self.pending_frames.append(RetireConnectionIdFrame(sequence=seq))

    def on_frame_lost(self, frame: RetireConnectionIdFrame) -> None:
        """Resend a lost RETIRE_CONNECTION_ID (RFC 9000 §13.3)."""
        self.pending_frames.append(frame)

    def is_stateless_reset(self, token: bytes) -> bool:
        """Whether the last 16 bytes of an undecryptable packet are one of the peer's reset tokens
        (RFC 9000 §10.3.1, compared in constant time)."""
        found = False
        for _, reset in self._cids.values():
            if reset is not None and hmac.compare_digest(reset, token):
                found = True
        return found
