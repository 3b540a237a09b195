"""The network path of a connection: migration, path validation and path MTU discovery
(RFC 9000 §8.2, §9.2-§9.5, §14.3; RFC 8899).

Path MTU: after confirmation, PING+PADDING probes (never congestion signals, RFC 9000 §14.4) raise
the datagram size as :class:`~quicsilver.core.mtu_discoverer.MTUDiscoverer` decides; its black-hole
detection falls back to the base size.

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

from quicsilver.ackhandler.packet import SentPacket
from quicsilver.congestion import new_send_algorithm
from quicsilver.core.handshake_driver import HandshakeDriver
from quicsilver.core.mtu_discoverer import MTUDiscoverer
from quicsilver.core.packer import SHORT_HEADER_OVERHEAD
from quicsilver.protocol import AMPLIFICATION_FACTOR, MAX_PACKET_BUFFER_SIZE, EncryptionLevel
from quicsilver.wire.frames import Frame, PathChallengeFrame, PathResponseFrame, is_probing_frame

__all__ = ["MAX_PATH_CHALLENGES", "MigrationMixin", "PeerPath"]


class MigrationMixin(HandshakeDriver):
    """Mixin of QuicConnection: the peer's path."""

    def _setup_path(self) -> None:
        self._path = PeerPath()
        self._path_deadline: float | None = None
        self._path_reset_on_validation = False
        self._pmtud = MTUDiscoverer(
            self._rtt, base_size=self._max_datagram_size, max_size=MAX_PACKET_BUFFER_SIZE, tracer=self._tracer
        )

    # -- path MTU discovery ----------------------------------------------------------------------

    def _start_mtu_discovery(self, now: float) -> None:
        if not self._config.disable_path_mtu_discovery:
            self._pmtud.start(now)

    def _set_peer_max_udp_payload(self, size: int) -> None:
        self._pmtud.set_peer_max_udp_payload_size(size)
        self._sync_mtu()

    def _maybe_send_mtu_probe(self, now: float) -> bytes | None:
        """A PING+PADDING probe of the next size to try, if one is due (RFC 9000 §14.4)."""
        pmtud = self._pmtud
        if self._packer.one_rtt is None or not pmtud.should_send_probe(now):
            return None
        size = pmtud.next_probe_size()
        packed = self._packer.pack_datagram(
            now,
            size,
            levels=(EncryptionLevel.ONE_RTT,),
            send_data=False,
            ping_levels=frozenset((EncryptionLevel.ONE_RTT,)),
            pad_to=size,
        )
        if packed is None:
            return None
        buf, packets = packed
        self._last_ecn = int(packets[-1].ecn)
        for p in packets:
            p.is_mtu_probe = True
        pmtud.on_probe_sent(size, now)
        self._on_datagram_sent(buf, packets, now)
        return bytes(buf)

    def _on_mtu_packet_acked(self, packet: SentPacket, now: float) -> None:
        if packet.is_mtu_probe:
            self._pmtud.on_probe_acked(packet.size, now)
        elif packet.ack_eliciting:
            self._pmtud.on_packet_acked(packet.size, packet.time_sent, now)
        self._sync_mtu()

    def _on_mtu_packet_lost(self, packet: SentPacket, now: float) -> None:
        if packet.is_mtu_probe:
            self._pmtud.on_probe_lost(packet.size, now)
        else:
            self._pmtud.on_packet_lost(packet.size, packet.time_sent, now)
        self._sync_mtu()

    def _on_repeated_pto(self, now: float) -> None:
        self._pmtud.on_pto(self._sph.pto_count, now)
        self._sync_mtu()

    def _sync_mtu(self) -> None:
        size = self._pmtud.current_size
        if size != self._max_datagram_size:
            self._set_max_datagram_size(size)

    def _set_max_datagram_size(self, size: int) -> None:
        self._max_datagram_size = size
        self._sph.set_max_datagram_size(size)
        self._datagrams.set_max_payload_size(size - SHORT_HEADER_OVERHEAD)

    # -- migration -------------------------------------------------------------------------------

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
        probe = self._pmtud.next_probe_time()
        if probe is not None and probe <= self._last_now:
            # Already due and still unsent (the window is full): it goes with the next send
            # opportunity; a timer in the past would only spin.
            probe = None
        deadline = self._path_deadline
        if probe is None:
            return deadline
        return probe if deadline is None else min(probe, deadline)

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


MAX_PATH_CHALLENGES = 3
"""PATH_CHALLENGE frames sent on a new path before giving up on validating it (one per PTO)."""


class PeerPath:
    """The peer's current address, and the validation of a new one (RFC 9000 §8.2, §9.3)."""

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
