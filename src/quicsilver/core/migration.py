"""Connection migration glue: following the peer to a new address, validating paths, and the
client's active migration (RFC 9000 §8.2, §9.2-§9.5).

The server follows a client whose non-probing packet with the highest packet number arrives from a
new address (§9.3, NAT rebinding included), switches to an unused peer connection ID (§9.5),
validates the new path with PATH_CHALLENGE while the path's 3x limit applies (§8.2.1, §9.3), and
resets its congestion controller and RTT estimator once the path is validated, unless only the port
changed (§9.4). A client migrates actively with :meth:`MigrationMixin.migrate` unless the server
sent disable_active_migration (§9).
"""

from __future__ import annotations

import os
from typing import Any

from quicsilver.congestion import new_send_algorithm
from quicsilver.core.handshake_driver import HandshakeDriver
from quicsilver.core.path import PathManager
from quicsilver.wire.frames import Frame, PathChallengeFrame, PathResponseFrame, is_probing_frame

__all__ = ["MigrationMixin"]


class MigrationMixin(HandshakeDriver):
    """Mixin of QuicConnection: the peer's path."""

    def _setup_path(self) -> None:
        self._path = PathManager()
        self._path_deadline: float | None = None
        self._path_reset_on_validation = False

    def _maybe_follow_peer(
        self, addr: Any, pn: int, largest: int | None, frames: list[Frame], size: int, now: float
    ) -> None:
        """Server side of §9.3, called for each processed 1-RTT packet from ``addr``."""
        if self._is_client or addr == self._peer_addr or not self._handshake_confirmed:
            return
        if largest is not None and pn <= largest:
            return  # an older, reordered packet does not move the connection
        if all(is_probing_frame(f) for f in frames):
            return  # RFC 9000 §9.1: probing packets do not migrate
        only_port = self._path.migrate(addr, size)
        self._peer_addr = addr
        # §9.4: a new host gets a fresh congestion state once validated; a NAT rebinding keeps it.
        self._path_reset_on_validation = not only_port
        # §9.5: do not reuse a connection ID on a new path.
        self._conn_ids_peer.switch_to_unused()
        self._flush_cid_frames()
        self._challenge_path(now)

    def _challenge_path(self, now: float) -> None:
        if self._path.start_validation():
            challenge = self._path.challenge
            assert challenge is not None
            self._packer.control_frames.appendleft(PathChallengeFrame(challenge))
            self._path_deadline = now + self._rtt.pto(True)

    def _on_path_response(self, frame: PathResponseFrame, pkt: Any, now: float) -> None:
        if self._path.on_path_response(bytes(frame.data)):
            self._path_deadline = None
            if self._path_reset_on_validation:
                self._reset_congestion_state()
                self._path_reset_on_validation = False

    def _reset_congestion_state(self) -> None:
        """§9.4: a new path starts with initial congestion and RTT state."""
        self._rtt.reset()
        self._sph.congestion = new_send_algorithm(
            self._config.congestion_control, self._rtt, self._max_datagram_size, self._tracer
        )

    def _on_path_timer(self, now: float) -> None:
        deadline = self._path_deadline
        if deadline is None or now < deadline:
            return
        self._path_deadline = None
        if self._path.validated:
            return
        if self._path.start_validation():
            self._challenge_path_again(now)
        elif self._path.abandon():
            # §9.3.2: validation failed, go back to the last validated address.
            self._peer_addr = self._path.addr

    def _challenge_path_again(self, now: float) -> None:
        challenge = self._path.challenge
        assert challenge is not None
        self._packer.control_frames.appendleft(PathChallengeFrame(challenge))
        self._path_deadline = now + self._rtt.pto(True)

    def _path_timer(self) -> float | None:
        return self._path_deadline

    def _on_datagram_sent_on_path(self, size: int) -> None:
        self._path.on_datagram_sent(size)

    def _path_budget(self) -> int | None:
        """The 3x limit of an unvalidated new path (server only)."""
        if self._is_client:
            return None
        return self._path.amplification_budget()

    def migrate(self, now: float) -> None:
        """Client: the I/O layer now sends from a new local address (active migration, §9.2).

        Switches to an unused connection ID, resets congestion state and probes the path with a
        PATH_CHALLENGE. Raises RuntimeError if the server sent disable_active_migration, the
        handshake is not confirmed, or the server issued no spare connection ID (§9.5).
        """
        if not self._is_client:
            raise RuntimeError("only a client migrates actively")
        if not self._handshake_confirmed:
            raise RuntimeError("RFC 9000 §9: no migration before the handshake is confirmed")
        params = self._peer_params
        if params is not None and params.disable_active_migration:
            raise RuntimeError("the server sent disable_active_migration")
        if self._conn_ids_peer.active and not self._conn_ids_peer.switch_to_unused():
            raise RuntimeError("the server issued no spare connection ID for a new path")
        self._flush_cid_frames()
        self._reset_congestion_state()
        # The server's address does not change, so no 3x limit applies to us; the challenge makes
        # the server answer on the new path right away.
        self._packer.control_frames.appendleft(PathChallengeFrame(os.urandom(8)))
