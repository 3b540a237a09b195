"""The network path of a connection: migration, path validation and path MTU discovery
(RFC 9000 §8.2, §9.2-§9.5, §14.3; RFC 8899), glued to the connection.

The decisions are :class:`~quicsilver.core.path.PathManager`'s (which path a packet came on, when
the server follows the peer, validation and its timers, per-path 3x limits) and
:class:`~quicsilver.core.mtu_discoverer.MTUDiscoverer`'s (probe sizes, black holes). This mixin feeds
them packets and timers, sends their probes, gives new paths unused peer connection IDs (§9.5) and
applies their decisions: the peer address, the DCID, and a congestion/RTT/MTU reset for a new host
(§9.4). Lost MTU probes are never congestion signals (§14.4).
"""

from __future__ import annotations

from typing import Any, Final

from quicsilver.ackhandler.packet import SentPacket
from quicsilver.config import preferred_address_pair
from quicsilver.congestion import new_send_algorithm
from quicsilver.core.handshake_driver import HandshakeDriver
from quicsilver.core.mtu_discoverer import MTUDiscoverer
from quicsilver.core.packer import SHORT_HEADER_OVERHEAD
from quicsilver.core.path import (
    ActivePathChanged,
    MigrationError,
    Path,
    PathManager,
    PathValidated,
    PathValidationFailed,
    is_probing_packet,
)
from quicsilver.errors import ConfigError, IdleTimeoutError, TransportError, TransportErrorCode
from quicsilver.protocol import MAX_PACKET_BUFFER_SIZE, EncryptionLevel
from quicsilver.wire.frames import Frame, PathChallengeFrame, PathResponseFrame
from quicsilver.wire.transport_parameters import PreferredAddress, TransportParameters

__all__ = ["MigrationMixin"]

# Enum members used per packet, as module constants (Final: the compiled build reads a C static
# instead of looking the member up on its class).
_LEVEL_ONE_RTT: Final = EncryptionLevel.ONE_RTT


class MigrationMixin(HandshakeDriver):
    """Mixin of QuicConnection: the peer's path."""

    def _setup_path(self) -> None:
        self._paths: PathManager | None = None
        self._packet_path: Path | None = None
        self._datagram_local: Any = None
        self._datagram_first = True
        self._migrations = 0
        self._pmtud = MTUDiscoverer(
            self._rtt, base_size=self._max_datagram_size, max_size=MAX_PACKET_BUFFER_SIZE, tracer=self._tracer
        )
        self._preferred_address = self._our_preferred_address()
        self._peer_preferred: tuple[Any, bytes] | None = None  # client: (address, CID) to move to

    # -- preferred address (RFC 9000 §9.6) ---------------------------------------------------------

    def _our_preferred_address(self) -> PreferredAddress | None:
        """Server: ``Config.preferred_address`` as the transport parameter, with its CID (§5.1.1)."""
        wanted = None if self._is_client else preferred_address_pair(self._config)
        if wanted is None:
            return None
        # §18.2: "A server that chooses a zero-length connection ID MUST NOT provide a preferred address."
        # (The I/O layer refuses this at the listen call; this guards direct users of the core.)
        if not self._host_cid:
            raise ConfigError(
                "preferred_address",
                "a server using zero-length connection IDs cannot offer one (RFC 9000 §18.2)",
            )
        cid, token = self._conn_ids_ours.issue_preferred_address_cid()
        ipv4, ipv6 = wanted
        return PreferredAddress(ipv4, ipv6, cid, token)

    def _on_peer_preferred_address(self, params: TransportParameters) -> None:
        pa = params.preferred_address
        assert pa is not None
        # §18.2: "A server that chooses a zero-length connection ID MUST NOT provide a preferred
        # address ... A client MUST treat a violation of these requirements as a connection error of
        # type TRANSPORT_PARAMETER_ERROR." (The zero-length CID inside it is refused by the parser.)
        if not params.initial_source_connection_id:
            raise TransportError(
                TransportErrorCode.TRANSPORT_PARAMETER_ERROR,
                "preferred_address from a server using zero-length connection IDs",
            )
        # §5.1.1: its CID has sequence number 1; its reset token is recognised from now on.
        self._conn_ids_peer.add_preferred_address_cid(pa.connection_id, pa.stateless_reset_token)
        # §9.6.1: "the client SHOULD select one of the two addresses provided by the server and
        # initiate path validation"; Config.ignore_preferred_address opts out (it is not a MUST).
        if self._config.ignore_preferred_address:
            return
        addr = _same_family_address(self._peer_addr, pa)
        if addr is not None and addr != self._peer_addr:
            self._peer_preferred = (addr, pa.connection_id)

    def _probe_preferred_address(self, now: float) -> None:
        """Client, at confirmation: validate the path to the preferred address with its CID and move
        there once validated (RFC 9000 §9.6.1); on failure we stay where we are (§9.6.1: "if path
        validation fails, the client MUST continue sending all future packets to the server's original
        IP address"). disable_active_migration does not forbid this move (§9, §18.2)."""
        target = self._peer_preferred
        self._peer_preferred = None
        paths = self._paths
        if target is None or paths is None:
            return
        addr, cid = target
        # §9.6.1: "the client uses the connection ID provided in the preferred_address transport
        # parameter" (§9.5: not used on any other path); gone if the server already retired it.
        if not self._conn_ids_peer.take_cid(cid):
            return
        try:
            path = paths.migrate(paths.active.local_addr, now, remote_addr=addr)
        except MigrationError:
            return
        paths.assign_peer_cid(path, cid)

    # -- path MTU discovery ----------------------------------------------------------------------

    def _on_confirmed_path(self, now: float) -> None:
        # RFC 9000 §9: no migration before confirmation; quic-go starts PMTUD at confirmation.
        if self._paths is not None:
            self._paths.set_handshake_confirmed()
            if self._preferred_address is not None:
                # §9: the client may move to the preferred address even if we disabled active migration.
                self._paths.set_preferred_address_cid(self._preferred_address.connection_id)
            self._probe_preferred_address(now)
        if not self._config.disable_path_mtu_discovery:
            self._pmtud.start(now)

    def _on_peer_path_params(self, params: TransportParameters) -> None:
        if self._paths is not None:
            self._paths.set_peer_disable_active_migration(params.disable_active_migration)
        self._pmtud.set_peer_max_udp_payload_size(params.max_udp_payload_size)
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
            levels=(_LEVEL_ONE_RTT,),
            send_data=False,
            ping_levels=frozenset((_LEVEL_ONE_RTT,)),
            pad_to=size,
            # RFC 9000 §14.4: probes could be limited to PING and PADDING, since they are more likely
            # to be dropped; an ACK lost with a probe would leave the peer waiting for a PTO.
            with_ack=False,
        )
        if packed is None:
            return None
        buf, packets = packed
        self._last_ecn = int(packets[-1].ecn)
        for p in packets:
            p.is_mtu_probe = True
        pmtud.on_probe_sent(size, now)
        # A PING right behind the probe: with the probe it makes two ack-eliciting packets, or, when
        # the probe is lost, a gap; either way the peer acknowledges at once (RFC 9000 §13.2.1), so the
        # probe's fate is known within an RTT instead of after the peer's ACK delay or a PTO.
        self._ping_pending = True
        self._on_datagram_sent(buf, packets, now)
        self._on_datagram_sent_on_path(len(buf))
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

    # -- paths ---------------------------------------------------------------------------------------

    def _init_paths(self, remote_addr: Any, local_addr: Any = None) -> None:
        """The handshake path (validated by the handshake itself)."""
        self._paths = PathManager(
            self._perspective,
            local_addr,
            remote_addr,
            self._rtt,
            disable_active_migration=self._config.disable_active_migration,
        )
        self._paths.set_local_cid(self._host_cid)

    def _path_of_packet(
        self, dcid: bytes, pn: int, largest: int | None, frames: list[Frame], now: float
    ) -> bool:
        """RFC 9000 §9.3: which path an authenticated packet came on; False to drop it unprocessed."""
        paths = self._paths
        if paths is None:
            return True
        size = self._datagram_size if self._datagram_first else 0
        self._datagram_first = False
        path = paths.only_active
        if (
            path is not None
            and path.remote_addr == self._datagram_addr
            and path.local_addr == self._datagram_local
            and not path.needs_new_peer_cid
        ):
            # The fast path, equal to the general one below: a packet on the only (active) path
            # cannot switch paths, no path awaits a peer CID, so probing frames do not matter.
            path.on_datagram_received(size)
            if dcid and (largest is None or pn > largest):
                path.local_cid = dcid
            self._packet_path = path
            self._apply_path_events(now)
            return True
        path = paths.on_packet_received(
            self._datagram_local,
            self._datagram_addr,
            now,
            datagram_size=size,
            dcid=dcid,
            non_probing=not is_probing_packet(frames),
            largest_pn=largest is None or pn > largest,
        )
        self._packet_path = path
        if path is None:
            return False
        self._give_paths_cids()
        self._apply_path_events(now)
        return True

    def _give_paths_cids(self) -> None:
        paths = self._paths
        assert paths is not None
        for path in paths.paths:
            if path.awaiting_peer_cid:
                if not self._conn_ids_peer.active:
                    # §5.1: a peer using zero-length connection IDs has none to issue, and none to
                    # reuse across paths (§9.5): its packets carry an empty DCID on every path.
                    paths.assign_peer_cid(path, b"")
                    continue
                # §9.5: a new path gets a connection ID not used on any other path.
                cid = self._conn_ids_peer.take_unused()
                if cid is None:
                    return
                paths.assign_peer_cid(path, cid)

    def _apply_path_events(self, now: float) -> None:
        paths = self._paths
        assert paths is not None
        while (ev := paths.next_event()) is not None:
            if isinstance(ev, ActivePathChanged):
                self._peer_addr = ev.path.remote_addr
                if ev.path.peer_cid is not None:
                    self._conn_ids_peer.activate(ev.path.peer_cid)
                    self._packer.dcid = ev.path.peer_cid
                elif ev.previous.peer_cid is not None:
                    self._packer.dcid = self._conn_ids_peer.active
                if ev.reset_congestion:
                    # §9.4: a new host means a new path: initial congestion, RTT and MTU state.
                    self._reset_congestion_state()
                    self._pmtud.reset(now)
                    self._sync_mtu()
                if self._sph.ecn is not None:
                    self._sph.ecn.restart()  # §13.4.2: ECN is validated on each path independently
            elif isinstance(ev, PathValidated):
                if ev.path is paths.active:
                    # The PathManager queues PathValidated before the ActivePathChanged of the same
                    # switch: make the path's CID the active one before retiring the others.
                    if ev.path.peer_cid is not None:
                        self._conn_ids_peer.activate(ev.path.peer_cid)
                    self._conn_ids_peer.retire_other_used()
                    self._flush_cid_frames()
            elif isinstance(ev, PathValidationFailed) and ev.was_active and ev.reverted_to is None:
                # §9.3.2: no validated path left: the connection is closed silently.
                self._terminate(IdleTimeoutError("path validation failed with no path to fall back to"))
                return

    def _on_path_challenge(self, frame: PathChallengeFrame, pkt: Any, now: float) -> None:
        # RFC 9000 §8.2.2: answer on the path the challenge arrived on.
        if self._paths is not None and self._packet_path is not None:
            self._paths.on_path_challenge(self._packet_path, frame)

    def _on_path_response(self, frame: PathResponseFrame, pkt: Any, now: float) -> None:
        if self._paths is not None:
            self._paths.on_path_response(frame, now)
            self._apply_path_events(now)

    def _reset_congestion_state(self) -> None:
        """§9.4: a new path starts with initial congestion and RTT state."""
        self._rtt.reset()
        self._sph.congestion = new_send_algorithm(
            self._config.congestion_control, self._rtt, self._max_datagram_size, self._tracer
        )

    def _path_timer(self) -> float | None:
        probe = self._pmtud.next_probe_time()
        if probe is not None and probe <= self._last_now:
            # Already due and still unsent (the window is full): it goes with the next send
            # opportunity; a timer in the past would only spin.
            probe = None
        times = [t for t in (probe, self._paths.get_timer() if self._paths else None) if t is not None]
        return min(times) if times else None

    def _on_path_timer(self, now: float) -> None:
        if self._paths is not None:
            self._paths.handle_timer(now)
            self._apply_path_events(now)

    def _path_probes(self, now: float) -> list[tuple[bytes, Any, int, Any]]:
        """Datagrams of PATH_CHALLENGE / PATH_RESPONSE frames due now, on their own paths."""
        paths = self._paths
        out: list[tuple[bytes, Any, int, Any]] = []
        if paths is None or self._packer.one_rtt is None:
            return out
        while (probe := paths.pop_probe(now)) is not None:
            path = probe.path
            budget = path.amplification_budget()
            max_size = self._max_datagram_size if budget is None else min(self._max_datagram_size, budget)
            dcid = path.peer_cid if path.peer_cid is not None else self._packer.dcid
            packed = self._packer.pack_path_probe(now, probe.frames, dcid, probe.min_size, max_size)
            if packed is None:
                continue
            buf, packets = packed
            self._on_datagram_sent(buf, packets, now)
            path.on_datagram_sent(len(buf))
            out.append((bytes(buf), path.remote_addr, int(packets[-1].ecn), path.local_addr))
        return out

    def _on_datagram_sent_on_path(self, size: int) -> None:
        if self._paths is not None:
            self._paths.active.on_datagram_sent(size)

    def _path_budget(self) -> int | None:
        """The 3x limit of an unvalidated active path (RFC 9000 §9.3)."""
        if self._paths is None:
            return None
        return self._paths.active.amplification_budget()

    def migrate(self, now: float, local_addr: Any = None) -> None:
        """Client: probe a path from a new local address and move to it once the server answered
        (active migration, RFC 9000 §9.2). ``local_addr`` names it for ``datagrams_to_send_paths``;
        by default a fresh token (the I/O layer then sends everything from its new socket).

        Raises :class:`~quicsilver.core.path.MigrationError` before confirmation, when the server
        sent disable_active_migration, or when it issued no spare connection ID (§9.5).
        """
        if not self._is_client or self._paths is None:
            raise MigrationError("only an established client migrates actively")
        if self._conn_ids_peer.active and not self._conn_ids_peer.has_unused():
            raise MigrationError("the server issued no spare connection ID for a new path (RFC 9000 §9.5)")
        self._migrations += 1
        local = local_addr if local_addr is not None else ("migration", self._migrations)
        self._paths.migrate(local, now)
        self._give_paths_cids()


def _same_family_address(current: Any, pa: PreferredAddress) -> Any:
    """§9.6.1: the preferred address of the family of ``current``, in the form the I/O layer reports
    addresses of that family (``(host, port)``, or ``(host, port, 0, 0)`` and v4-mapped hosts on a
    dual-stack socket); None when the server offers none of that family."""
    if not isinstance(current, tuple) or len(current) < 2:
        return None
    host = str(current[0])
    four = len(current) == 4
    if ":" not in host or (host.lower().startswith("::ffff:") and "." in host):
        v4 = pa.ipv4_address
        if v4 is None:
            return None
        return (f"::ffff:{v4[0]}", v4[1], 0, 0) if ":" in host else v4
    v6 = pa.ipv6_address
    if v6 is None:
        return None
    return (v6[0], v6[1], 0, 0) if four else v6
