"""Our connection IDs: issuing and retiring them (RFC 9000 §5.1, §5.1.1, §5.1.2, §19.15, §19.16).

The pluggable generator and stateless reset tokens are :mod:`quicsilver.core.connection_ids`
(interpreted: a public Protocol), re-exported here.

The I/O layer routes packets to a connection by the CIDs issued here; every issue or retirement is
reported so it can update its packet-handler map.
"""

from __future__ import annotations

import os
from typing import Final

from quicsilver.core.connection_ids import (
    ConnectionIDGenerator,
    RandomConnectionIDGenerator,
    stateless_reset_token,
)
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.wire.frames import NewConnectionIdFrame, RetireConnectionIdFrame

__all__ = [
    "MAX_ISSUED_CONNECTION_IDS",
    "ConnIDGenerator",
    "ConnectionIDGenerator",
    "RandomConnectionIDGenerator",
    "stateless_reset_token",
]

MAX_ISSUED_CONNECTION_IDS: Final = 4
"""We never keep more than this many CIDs active for the peer, whatever its limit (quic-go's cap)."""

_RETIRE_CONNECTION_ID_TYPE = 0x19


class ConnIDGenerator:
    """Issues our CIDs to the peer with NEW_CONNECTION_ID and handles its RETIRE_CONNECTION_ID.

    ``issued`` / ``retired`` list CIDs the I/O layer must add to / remove from its routing map;
    ``pending_frames`` the frames the packer should send.
    """

    def __init__(
        self,
        generator: ConnectionIDGenerator,
        initial_cid: bytes,
        reset_key: bytes | None,
    ) -> None:
        self._generator = generator
        self._reset_key = reset_key
        self._active: dict[int, bytes] = {0: initial_cid}
        self._next_seq = 1
        self._peer_limit = 0
        self.pending_frames: list[NewConnectionIdFrame | RetireConnectionIdFrame] = []
        self.issued: list[bytes] = []
        self.retired: list[bytes] = []
        self._initial_client_dcid: bytes | None = None
        # (cid, reset token) pairs made by ``prepare`` while the connection waited for its peer
        self._prepared: list[tuple[bytes, bytes]] = []

    @property
    def active_connection_ids(self) -> list[bytes]:
        return list(self._active.values())

    def reset_token(self, cid: bytes) -> bytes:
        """The stateless reset token bound to one of our CIDs (random if no key was given)."""
        if self._reset_key is None:
            return os.urandom(16)
        return stateless_reset_token(self._reset_key, cid)

    def set_initial_client_dcid(self, dcid: bytes) -> None:
        """Server: the client's first DCID also routes to us until the handshake completes."""
        self._initial_client_dcid = dcid

    def drop_initial_client_dcid(self) -> None:
        """Server: once the handshake is confirmed the client's random DCID is no longer needed."""
        if self._initial_client_dcid is not None:
            self.retired.append(self._initial_client_dcid)
            self._initial_client_dcid = None

    def issue_preferred_address_cid(self) -> tuple[bytes, bytes]:
        """Server: the CID (sequence 1) and reset token of the preferred_address transport parameter.

        RFC 9000 §5.1.1: "the sequence number of the connection ID supplied in the preferred_address
        transport parameter is 1"; it counts toward the peer's active_connection_id_limit and routes to
        us like any issued CID, but travels in the transport parameters, not in NEW_CONNECTION_ID.
        """
        if self._next_seq != 1:
            raise ValueError("the preferred_address connection ID must be issued before any other")
        cid = self._generator.generate_connection_id()
        self._active[1] = cid
        self._next_seq = 2
        self.issued.append(cid)
        return cid, self.reset_token(cid)

    def prepare(self, peer_limit: int | None = None) -> None:
        """Make, ahead of need, the CIDs and reset tokens ``set_peer_limit`` will issue: as many as
        ``peer_limit`` (the peer's active_connection_id_limit) allows, or our cap when it is not
        known yet. Called while the connection waits for its peer, so that issuing them at the end
        of the handshake (RFC 9000 §5.1.1) only builds the frames."""
        if self._generator.connection_id_len == 0:
            return
        limit = (
            MAX_ISSUED_CONNECTION_IDS if peer_limit is None else min(peer_limit, MAX_ISSUED_CONNECTION_IDS)
        )
        for _ in range(limit - len(self._active) - len(self._prepared)):
            cid = self._generator.generate_connection_id()
            self._prepared.append((cid, self.reset_token(cid)))

    def set_peer_limit(self, limit: int) -> None:
        """The peer's active_connection_id_limit is known: issue CIDs up to it (RFC 9000 §5.1.1)."""
        self._peer_limit = min(limit, MAX_ISSUED_CONNECTION_IDS)
        if self._generator.connection_id_len == 0:
            return  # RFC 9000 §5.1.1: with zero-length CIDs there is nothing to issue
        while len(self._active) < self._peer_limit:
            self._issue()

    def _issue(self) -> None:
        if self._prepared:
            cid, token = self._prepared.pop(0)
        else:
            cid = self._generator.generate_connection_id()
            token = self.reset_token(cid)
        seq = self._next_seq
        self._next_seq += 1
        self._active[seq] = cid
        self.issued.append(cid)
        self.pending_frames.append(
            NewConnectionIdFrame(sequence=seq, retire_prior_to=0, connection_id=cid, reset_token=token)
        )

    def handle_retire_connection_id(self, frame: RetireConnectionIdFrame, packet_dcid: bytes) -> None:
        """Retire one of our CIDs at the peer's request, and issue a replacement.

        RFC 9000 §19.16: a sequence number greater than any previously sent MUST be treated as a
        PROTOCOL_VIOLATION, and so must retiring the CID the packet was sent to.
        """
        seq = frame.sequence
        if seq >= self._next_seq:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                f"RETIRE_CONNECTION_ID for unissued sequence number {seq}",
                frame_type=_RETIRE_CONNECTION_ID_TYPE,
            )
        cid = self._active.get(seq)
        if cid is None:
            return  # already retired
        if cid == packet_dcid:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "RETIRE_CONNECTION_ID retires the connection ID of its own packet",
                frame_type=_RETIRE_CONNECTION_ID_TYPE,
            )
        del self._active[seq]
        self.retired.append(cid)
        if len(self._active) < self._peer_limit:
            self._issue()

    def on_frame_lost(self, frame: NewConnectionIdFrame) -> None:
        """Resend a NEW_CONNECTION_ID if the CID is still active (RFC 9000 §13.3)."""
        if self._active.get(frame.sequence) == frame.connection_id:
            self.pending_frames.append(frame)
