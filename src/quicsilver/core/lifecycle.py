"""Timers, sending bookkeeping, key discard and closing of a connection (RFC 9000 §10, §8.1;
RFC 9001 §4.9; RFC 9002 §6.2).

- Idle timeout (RFC 9000 §10.1): restarted by every processed packet and by the first ack-eliciting
  packet sent after one; effective value max(min(ours, peer's), 3 x PTO). Before the handshake
  completes the handshake idle timeout applies, and the whole handshake must end within twice it
  (quic-go's rule); both end the connection silently.
- Closing and draining (RFC 9000 §10.2): after our CONNECTION_CLOSE we answer further datagrams with
  the same close packet, rate-limited; after the peer's we send nothing; both last three PTOs.
- PTO probes (RFC 9002 §6.2.4): one or two ack-eliciting packets in the probe space, carrying
  unacknowledged data when there is some, a PING otherwise.
"""

from __future__ import annotations

from typing import Any, Final

from quicsilver.ackhandler.packet import SentPacket
from quicsilver.core.conn_base import ConnectionBase, ConnState
from quicsilver.core.events import ConnectionIdIssued, ConnectionIdRetired, ConnectionTerminated
from quicsilver.errors import (
    ApplicationError,
    HandshakeTimeoutError,
    IdleTimeoutError,
    StatelessResetError,
    TransportError,
    TransportErrorCode,
)
from quicsilver.protocol import EncryptionLevel, PacketNumberSpace
from quicsilver.wire.frames import ConnectionCloseFrame, CryptoFrame

__all__ = ["ConnState", "Lifecycle"]

# Enum members used per packet, as module constants (Final: the compiled build reads a C static
# instead of looking the member up on its class).
_LEVEL_HANDSHAKE: Final = EncryptionLevel.HANDSHAKE
_LEVEL_INITIAL: Final = EncryptionLevel.INITIAL
_LEVEL_ONE_RTT: Final = EncryptionLevel.ONE_RTT
_LEVEL_ZERO_RTT: Final = EncryptionLevel.ZERO_RTT
_SPACE_APPLICATION: Final = PacketNumberSpace.APPLICATION
_SPACE_HANDSHAKE: Final = PacketNumberSpace.HANDSHAKE
_SPACE_INITIAL: Final = PacketNumberSpace.INITIAL
_STATE_ACTIVE: Final = ConnState.ACTIVE
_STATE_CLOSED: Final = ConnState.CLOSED
_STATE_CLOSING: Final = ConnState.CLOSING
_STATE_DRAINING: Final = ConnState.DRAINING


_SPACE_OF_LEVEL: Final = {
    EncryptionLevel.INITIAL: PacketNumberSpace.INITIAL,
    EncryptionLevel.HANDSHAKE: PacketNumberSpace.HANDSHAKE,
    EncryptionLevel.ZERO_RTT: PacketNumberSpace.APPLICATION,
    EncryptionLevel.ONE_RTT: PacketNumberSpace.APPLICATION,
}
_LEVELS_OF_SPACE: Final = {
    PacketNumberSpace.INITIAL: (EncryptionLevel.INITIAL,),
    PacketNumberSpace.HANDSHAKE: (EncryptionLevel.HANDSHAKE,),
    PacketNumberSpace.APPLICATION: (EncryptionLevel.ZERO_RTT, EncryptionLevel.ONE_RTT),
}
MIN_USEFUL_DATAGRAM: Final = 64
"""Bytes: below this budget nothing is worth sending (a short header, a small frame and the tag)."""
_PROBE_LEVEL_ORDER: Final = (EncryptionLevel.INITIAL, EncryptionLevel.HANDSHAKE, EncryptionLevel.ONE_RTT)


def _packet_type_name(p: SentPacket) -> str:
    if p.space == _SPACE_APPLICATION:
        return "ZERO_RTT" if p.is_0rtt else "ONE_RTT"
    return p.space.name


class Lifecycle(ConnectionBase):
    """Mixin of QuicConnection: everything that depends on the clock, and the end of a connection."""

    def _setup_lifecycle(self, now: float = 0.0) -> None:
        self._state = _STATE_ACTIVE
        self._created_at: float | None = None
        self._last_now = now
        self._last_received: float | None = None
        self._first_eliciting_after_receive: float | None = None
        self._idle_timeout = self._config.handshake_idle_timeout
        self._ping_pending = False
        self._pacing_at: float | None = None
        self._probes: dict[EncryptionLevel, int] = {}
        self._close_deadline: float | None = None
        self._close_datagram = b""
        self._close_to_send = False
        self._closing_received = 0
        self._terminal_error: Exception | None = None
        self._datagrams_sent = 0
        self._bytes_sent = 0

    # -- timers ----------------------------------------------------------------------------------

    def _idle_deadline(self) -> float | None:
        start = self._last_received if self._last_received is not None else self._created_at
        if start is None:
            return None
        if self._first_eliciting_after_receive is not None:
            start = max(start, self._first_eliciting_after_receive)
        # RFC 9000 §10.1: "the idle timeout ... is at least three times the current PTO".
        return start + max(self._idle_timeout, 3 * self._rtt.pto(True))

    def _keep_alive_deadline(self) -> float | None:
        period = self._config.keep_alive_period
        if not period or not self._handshake_complete or self._ping_pending:
            return None
        last = max(self._last_received or 0.0, self._first_eliciting_after_receive or 0.0)
        # quic-go: at most half the negotiated idle timeout, so a PING always beats the timer.
        return last + min(period, self._idle_timeout / 2)

    def get_timer(self) -> float | None:
        """The earliest instant at which ``handle_timer`` must be called (None: no timer)."""
        state = self._state
        if state is _STATE_CLOSED:
            return None
        if state is not _STATE_ACTIVE:
            return self._close_deadline
        if self._flight_pending():
            return self._last_now  # finish the flight at once (see HandshakeDriver.flight_pending)
        candidates: list[float] = []
        idle = self._idle_deadline()
        if idle is not None:
            candidates.append(idle)
        if not self._handshake_complete and self._created_at is not None:
            candidates.append(self._created_at + 2 * self._config.handshake_idle_timeout)
        loss = self._sph.loss_detection_timeout()
        if loss is not None:
            candidates.append(loss)
        if not self._send_blocked():
            # (An ACK that cannot leave because of a 3x limit waits for the peer's next datagram.)
            for space in self._spaces.values():
                if not space.discarded:
                    alarm = space.ack_tracker.ack_alarm()
                    if alarm is not None:
                        candidates.append(alarm)
        keep_alive = self._keep_alive_deadline()
        if keep_alive is not None:
            candidates.append(keep_alive)
        pacing = self._pacing_deadline()
        if pacing is not None:
            candidates.append(pacing)
        one_rtt = self._packer.one_rtt
        if one_rtt is not None:
            if one_rtt.previous_keys_expiry is not None:
                candidates.append(one_rtt.previous_keys_expiry)
            if one_rtt.next_keys_due is not None:
                candidates.append(one_rtt.next_keys_due)
        path = self._path_timer()
        if path is not None:
            candidates.append(path)
        return min(candidates) if candidates else None

    def _send_blocked(self) -> bool:
        """Whether an anti-amplification limit (RFC 9000 §8.1, §9.3) forbids sending anything now."""
        budget = self._sph.amplification_budget()
        if budget is not None and budget < MIN_USEFUL_DATAGRAM:
            return True
        path_budget = self._path_budget()
        return path_budget is not None and path_budget < MIN_USEFUL_DATAGRAM

    def _path_budget(self) -> int | None:
        """Overridden by the migration mixin (the 3x limit of a new path)."""
        return None

    def _on_datagram_sent_on_path(self, size: int) -> None:
        """Overridden by the migration mixin (the new path's 3x budget)."""

    def _on_path_timer(self, now: float) -> None:
        """Overridden by the migration mixin (path validation timeouts)."""

    def _on_mtu_packet_lost(self, packet: SentPacket, now: float) -> None:
        """Overridden by the migration mixin (path MTU discovery)."""

    def _on_repeated_pto(self, now: float) -> None:
        """Overridden by the migration mixin (a PMTU black hole is suspected)."""

    def _flight_pending(self) -> bool:
        return False  # HandshakeDriver's says when a server's flight waits to be finished

    def finish_flight(self, now: float) -> None:
        """Overridden by HandshakeDriver (a server's flight after its ServerHello)."""

    def _path_timer(self) -> float | None:
        """Overridden by the migration mixin."""
        return None

    def _pacing_deadline(self) -> float | None:
        """When the pacer lets the next packet go, if we are waiting on it with data to send."""
        return self._pacing_at

    def handle_timer(self, now: float) -> None:
        """Run whatever timers expired at ``now``."""
        self._last_now = max(self._last_now, now)
        state = self._state
        if state is _STATE_CLOSED:
            return
        if state is not _STATE_ACTIVE:
            if self._close_deadline is not None and now >= self._close_deadline:
                self._set_closed()
            return
        idle = self._idle_deadline()
        if idle is not None and now >= idle:
            # RFC 9000 §10.1: the connection is silently closed and its state discarded.
            if self._handshake_complete:
                self._terminate(IdleTimeoutError("no network activity within the idle timeout"))
            else:
                self._terminate(HandshakeTimeoutError("handshake idle timeout"))
            return
        if (
            not self._handshake_complete
            and self._created_at is not None
            and now >= self._created_at + 2 * self._config.handshake_idle_timeout
        ):
            self._terminate(HandshakeTimeoutError("the handshake did not complete in time"))
            return
        self.finish_flight(now)
        loss = self._sph.loss_detection_timeout()
        if loss is not None and now >= loss:
            result = self._sph.on_loss_detection_timeout(now)
            self._on_sent_packets_lost(result.lost, now)
            if result.probe_space is not None:
                self._queue_probes(result.probe_space, max(1, result.probe_count))
        self._on_path_timer(now)
        if self._pacing_at is not None and now >= self._pacing_at:
            self._pacing_at = None
        keep_alive = self._keep_alive_deadline()
        if keep_alive is not None and now >= keep_alive:
            self._ping_pending = True
        one_rtt = self._packer.one_rtt
        if one_rtt is not None:
            one_rtt.drop_previous_keys(now)
            one_rtt.prepare_next_if_due(now)  # RFC 9001 §6.3

    # -- probes ----------------------------------------------------------------------------------

    def _queue_probes(self, space: PacketNumberSpace, count: int) -> None:
        if space == _SPACE_APPLICATION:
            level = _LEVEL_ONE_RTT if self._packer.one_rtt is not None else _LEVEL_ZERO_RTT
        else:
            level = _LEVELS_OF_SPACE[space][0]
        if not self._packer.can_send(level):
            return
        self._probes[level] = count
        if space == _SPACE_APPLICATION and self._sph.pto_count >= 2:
            self._on_repeated_pto(self._last_now)
        pstate = self._spaces[space]
        # RFC 9002 §6.2.4: probes carry data the peer has not acknowledged yet, if there is some.
        if not pstate.crypto.queue_probe():
            oldest = self._sph.queue_probe_packet(space)
            if oldest is not None:
                if oldest.is_mtu_probe:
                    # Taken out of flight unanswered: for the MTU search it is a lost probe.
                    self._on_mtu_packet_lost(oldest, self._last_now)
                self._requeue_frames(oldest, crypto_too=True)

    def _next_probe_level(self) -> EncryptionLevel | None:
        if not self._probes:  # the common case, checked for every datagram
            return None
        for level in _PROBE_LEVEL_ORDER:
            if self._probes.get(level):
                if self._packer.can_send(level):
                    return level
                del self._probes[level]
        if self._probes.get(_LEVEL_ZERO_RTT):
            return _LEVEL_ZERO_RTT
        return None

    def _consume_probe(self, level: EncryptionLevel) -> None:
        left = self._probes.get(level, 0) - 1
        if left > 0:
            self._probes[level] = left
        else:
            self._probes.pop(level, None)

    # -- sending bookkeeping ---------------------------------------------------------------------

    def _on_datagram_sent(self, buf: bytearray, packets: list[SentPacket], now: float) -> None:
        self._datagrams_sent += 1
        self._bytes_sent += len(buf)
        tracer = self._tracer
        sph = self._sph
        for p in packets:
            sph.sent_packet(p)
            if p.ack_eliciting and self._first_eliciting_after_receive is None:
                # RFC 9000 §10.1: sending an ack-eliciting packet restarts the idle timer, once
                # per received packet.
                self._first_eliciting_after_receive = now
            if tracer is not None:
                tracer.sent_packet(_packet_type_name(p), p.pn, p.size, p.frames)
            if p.space == _SPACE_HANDSHAKE and self._is_client:
                # RFC 9001 §4.9.1: a client discards Initial keys when it first sends a Handshake packet.
                self._discard_space(_SPACE_INITIAL)

    def _on_burst_sent(self, datagrams: list[bytes], packets: list[SentPacket], now: float) -> None:
        """``_on_datagram_sent`` for a burst of 1-RTT datagrams of one packet each (no tracer)."""
        size = 0
        for data in datagrams:
            size += len(data)
        self._datagrams_sent += len(datagrams)
        self._bytes_sent += size
        self._sph.sent_burst(packets)
        if self._first_eliciting_after_receive is None:
            self._first_eliciting_after_receive = now  # RFC 9000 §10.1, as in _on_datagram_sent
        self._on_datagram_sent_on_path(size)

    def _on_sent_packets_lost(self, lost: list[SentPacket], now: float) -> None:
        """RFC 9002 §6.3 / RFC 9000 §13.3: re-queue the information of lost packets."""
        tracer = self._tracer
        for packet in lost:
            if tracer is not None:
                tracer.lost_packet(_packet_type_name(packet), packet.pn, "loss_detection")
            if packet.space is _SPACE_APPLICATION:
                self._on_mtu_packet_lost(packet, now)
            self._requeue_frames(packet, crypto_too=True)

    def _requeue_frames(self, packet: SentPacket, crypto_too: bool) -> None:
        space = self._spaces[packet.space]
        for frame in packet.frames:
            if type(frame) is CryptoFrame:
                if crypto_too and not space.discarded:
                    space.crypto.on_frame_lost(frame)
            else:
                self._requeue_frame(frame)

    def _requeue_frame(self, frame: Any) -> None:
        """Overridden by the connection, which knows each frame's owner."""

    # -- key discard -----------------------------------------------------------------------------

    def _discard_space(self, space: PacketNumberSpace) -> None:
        """RFC 9001 §4.9: discard a space's keys, its in-flight packets and its ACK state."""
        pstate = self._spaces[space]
        if pstate.discarded:
            return
        pstate.discarded = True
        for level in _LEVELS_OF_SPACE[space]:
            self._packer.keys.pop(level, None)
            self._unpacker.drop_keys(level)
            self._probes.pop(level, None)
        self._sph.drop_space(space)
        if self._tracer is not None:
            self._tracer.dropped_encryption_level(space.name)

    # -- closing ---------------------------------------------------------------------------------

    def _close_with_error(self, exc: TransportError, now: float) -> None:
        if self._state is _STATE_ACTIVE:
            self._close_immediately(exc.code, exc.reason, False, exc.frame_type, now)

    def _close_immediately(
        self, error_code: int, reason: str, is_application: bool, frame_type: int | None, now: float
    ) -> None:
        """Send CONNECTION_CLOSE and enter the closing state (RFC 9000 §10.2.1)."""
        reason_bytes = reason.encode("utf-8", "replace")[:512]
        frames: dict[EncryptionLevel, ConnectionCloseFrame] = {}
        for level in (_LEVEL_INITIAL, _LEVEL_HANDSHAKE, _LEVEL_ONE_RTT):
            if not self._packer.can_send(level):
                continue
            if is_application and level != _LEVEL_ONE_RTT:
                # RFC 9000 §10.2.3: an application close in Initial/Handshake packets becomes a
                # CONNECTION_CLOSE of type 0x1c with APPLICATION_ERROR and no reason.
                frames[level] = ConnectionCloseFrame(TransportErrorCode.APPLICATION_ERROR, 0, b"", False)
            elif is_application:
                frames[level] = ConnectionCloseFrame(error_code, None, reason_bytes, True)
            else:
                frames[level] = ConnectionCloseFrame(error_code, frame_type or 0, reason_bytes, False)
        if self._handshake_confirmed:
            frames = {k: v for k, v in frames.items() if k == _LEVEL_ONE_RTT}
        self._close_datagram = bytes(self._packer.pack_close(frames, self._max_datagram_size, now))
        self._close_to_send = bool(self._close_datagram)
        error: Exception = (
            ApplicationError(error_code, reason, remote=False)
            if is_application
            else TransportError(error_code, reason, frame_type, remote=False)
        )
        self._enter_closed_period(_STATE_CLOSING, error, now)

    def _enter_draining(self, frame: ConnectionCloseFrame, now: float) -> None:
        """The peer closed: RFC 9000 §10.2.2, send nothing more and wait three PTOs."""
        reason = frame.reason.decode("utf-8", "replace")
        error: Exception = (
            ApplicationError(frame.error_code, reason, remote=True)
            if frame.is_application
            else TransportError(frame.error_code, reason, frame.frame_type, remote=True)
        )
        self._enter_closed_period(_STATE_DRAINING, error, now)

    def _enter_stateless_reset(self, now: float) -> None:
        """RFC 9000 §10.3.1: a stateless reset ends the connection; enter draining, send nothing."""
        self._enter_closed_period(
            _STATE_DRAINING, StatelessResetError("the peer sent a stateless reset"), now
        )

    def _enter_closed_period(self, state: ConnState, error: Exception, now: float) -> None:
        if self._tracer is not None:
            self._tracer.updated_state(self._state.value, state.value)
        self._state = state
        self._release_packer_callback()
        self._close_deadline = now + 3 * self._rtt.pto(True)
        self._terminal_error = error
        self._events.append(ConnectionTerminated(error))
        if self._tracer is not None:
            self._tracer.closed_connection(error)

    def _set_closed(self) -> None:
        """The end of the connection's state (RFC 9000 §10): nothing is sent or processed any more,
        so its streams go too (each refers back to the streams map: left there, they would keep the
        stream state alive in reference cycles until a collector pass)."""
        if self._tracer is not None:
            self._tracer.updated_state(self._state.value, _STATE_CLOSED.value)
        self._state = _STATE_CLOSED
        self._streams.forget_all()

    def _release_packer_callback(self) -> None:
        # No key update after the connection ends (RFC 9001 §6: a closing endpoint only repeats its
        # CONNECTION_CLOSE). The packer's hook is a bound method of this connection: dropping it
        # breaks the connection -> packer -> connection cycle, so reference counting frees the
        # connection and the garbage collector has nothing to find.
        self._packer.before_one_rtt_packet = None

    def _terminate(self, error: Exception) -> None:
        """End the connection silently (idle or handshake timeout, version negotiation failure)."""
        self._release_packer_callback()
        self._set_closed()
        self._terminal_error = error
        self._events.append(ConnectionTerminated(error))
        if self._tracer is not None:
            self._tracer.closed_connection(error)

    def _on_datagram_while_closing(self) -> None:
        # RFC 9000 §10.2.1: answer with the close packet, limiting the rate: after 1, 2, 4, 8... datagrams.
        self._closing_received += 1
        n = self._closing_received
        if n & (n - 1) == 0:
            self._close_to_send = bool(self._close_datagram)

    def _close_datagrams(self) -> list[tuple[bytes, Any]]:
        if not self._close_to_send or self._peer_addr is None:
            return []
        self._close_to_send = False
        return [(self._close_datagram, self._peer_addr)]

    @property
    def is_closed(self) -> bool:
        """True once the closing/draining period is over (or the connection ended silently): the I/O
        layer can forget the connection and its CIDs."""
        return self._state is _STATE_CLOSED

    @property
    def terminal_error(self) -> Exception | None:
        """Why the connection ended (None while it is open)."""
        return self._terminal_error

    # -- connection IDs and tracing --------------------------------------------------------------

    def _flush_cid_frames(self) -> None:
        ours = self._conn_ids_ours
        for cid in ours.issued:
            self._events.append(ConnectionIdIssued(cid))
        ours.issued.clear()
        for cid in ours.retired:
            self._events.append(ConnectionIdRetired(cid))
        ours.retired.clear()
        control = self._packer.control_frames
        control.extend(ours.pending_frames)
        ours.pending_frames.clear()
        peer = self._conn_ids_peer
        control.extend(peer.pending_frames)
        peer.pending_frames.clear()
        self._packer.dcid = peer.active

    def _trace_drop(self, packet_type: Any, size: int, reason: str) -> None:
        if self._tracer is not None:
            name = packet_type.name if packet_type is not None else "unknown"
            self._tracer.dropped_packet(name, None, size, reason)

    def _trace_metrics(self) -> None:
        if self._tracer is not None:
            cc = self._sph.congestion
            self._tracer.updated_metrics(self._rtt, cc.congestion_window, self._sph.bytes_in_flight, 0)

    def stats(self) -> dict[str, Any]:
        """Counters for ``connection_state()`` and tests."""
        return {
            "datagrams_sent": self._datagrams_sent,
            "bytes_sent": self._bytes_sent,
            "smoothed_rtt": self._rtt.smoothed_rtt,
            "min_rtt": self._rtt.min_rtt,
            "bytes_in_flight": self._sph.bytes_in_flight,
            "congestion_window": self._sph.congestion.congestion_window,
            "version": self._version,
            "key_phase": self._packer.one_rtt.key_phase if self._packer.one_rtt is not None else 0,
            "handshake_confirmed": self._handshake_confirmed,
            "pto_count": self._sph.pto_count,
            "packets_lost": self._sph.packets_lost,
            "cipher_suite": self._tls_suite,
            "group": self._tls_group,
        }
