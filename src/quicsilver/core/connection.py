"""The sans-IO QUIC connection: datagrams and time in, datagrams, a timer and events out.

It orchestrates the owners of each concern and dispatches frames to them: the TLS engine
(RFC 9001 §4), packet spaces and key discard (RFC 9001 §4.9), the packer and unpacker (RFC 9000
§12.2, §17), the sent-packet handler for loss detection, PTO and congestion control (RFC 9002), our
and the peer's connection IDs (RFC 9000 §5.1), the streams map (RFC 9000 §2-4) and the closing and
draining states (RFC 9000 §10). Handshake-level logic (keys, transport parameters, Retry, Version
Negotiation) lives in :mod:`quicsilver.core.handshake_driver`, timers and closing in
:mod:`quicsilver.core.lifecycle`, paths, migration and PMTUD in :mod:`quicsilver.core.migration`
(QuicConnection -> MigrationMixin -> HandshakeDriver -> Lifecycle -> ConnectionBase).

Rule: every inbound error is raised as a TransportError inside and caught at ``receive_datagram``
(the single inbound entry point), which closes the connection with its code (RFC 9000 §11).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from quicsilver.ackhandler.send_mode import SendMode
from quicsilver.config import Config
from quicsilver.core.conn_base import ConnState
from quicsilver.core.datagram_queue import DatagramQueue
from quicsilver.core.events import (
    DatagramReceived,
    Event,
    NewTokenReceived,
    StopSendingReceived,
    StreamOpened,
    StreamReadable,
    StreamReset,
    StreamsAvailable,
    StreamWritable,
)
from quicsilver.core.lifecycle import MIN_USEFUL_DATAGRAM
from quicsilver.core.migration import MigrationMixin
from quicsilver.core.packer import SHORT_HEADER_OVERHEAD
from quicsilver.core.peer_params import MAX_DATAGRAM_FRAME_SIZE
from quicsilver.core.streams_map import StreamsMap
from quicsilver.core.unpacker import Dropped, UnpackedPacket, parse_payload
from quicsilver.errors import (
    TransportError,
    TransportErrorCode,
)
from quicsilver.protocol import ECN, MIN_STATELESS_RESET_SIZE, EncryptionLevel, PacketNumberSpace, Perspective
from quicsilver.qlog.tracer import DropReason
from quicsilver.wire.frames import (
    NOT_ACK_ELICITING_TYPES,
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    HandshakeDoneFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
)
from quicsilver.wire.header import PacketType, long_type_bits

__all__ = ["QuicConnection"]

# Enum members used per packet, as module constants (Final: the compiled build reads a C static
# instead of looking the member up on its class).
_LEVEL_INITIAL: Final = EncryptionLevel.INITIAL
_LEVEL_ONE_RTT: Final = EncryptionLevel.ONE_RTT
_MODE_ANY: Final = SendMode.ANY
_MODE_NONE: Final = SendMode.NONE
_MODE_PACING_LIMITED: Final = SendMode.PACING_LIMITED
_PERSPECTIVE_CLIENT: Final = Perspective.CLIENT
_PERSPECTIVE_SERVER: Final = Perspective.SERVER
_PTYPE_INITIAL: Final = PacketType.INITIAL
_SPACE_APPLICATION: Final = PacketNumberSpace.APPLICATION
_STATE_ACTIVE: Final = ConnState.ACTIVE
_STATE_CLOSED: Final = ConnState.CLOSED
_STATE_CLOSING: Final = ConnState.CLOSING
_STATE_DRAINING: Final = ConnState.DRAINING


_PROTOCOL_VIOLATION: Final = TransportErrorCode.PROTOCOL_VIOLATION
_MAX_DATAGRAMS_PER_CALL: Final = 256
_ECN_OF_BITS: Final = tuple(ECN(bits) for bits in range(4))  # ECN(bits) costs an enum lookup per packet

_logger: Final = logging.getLogger("quicsilver.core")


class QuicConnection(MigrationMixin):
    """One QUIC connection, client or server, driven aioquic-style by the I/O layer.

    Client: ``QuicConnection(config, tls_config, is_client=True, server_name=...)`` then
    ``connect(addr, now)``. Server (created by the I/O layer for a new client Initial):
    ``QuicConnection(config, tls_config, is_client=False, original_destination_connection_id=...,
    retry_source_connection_id=..., client_initial_dcid=...)``. Then, repeatedly:
    ``receive_datagram(data, addr, now)``, ``datagrams_to_send(now)``, ``get_timer()`` /
    ``handle_timer(now)``, ``next_event()``.
    """

    def __init__(
        self,
        config: Config,
        tls_config: Any,
        *,
        is_client: bool,
        server_name: str | None = None,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
        client_initial_dcid: bytes | None = None,
        connection_id_generator: Any = None,
        stateless_reset_key: bytes | None = None,
        session_ticket: Any = None,
        token: bytes = b"",
        version: int | None = None,
        new_token_provider: Callable[[Any], bytes | None] | None = None,
    ) -> None:
        self._config = config.populated()
        self._perspective = _PERSPECTIVE_CLIENT if is_client else _PERSPECTIVE_SERVER
        self._is_client = is_client
        self._events: deque[Event] = deque()
        self._peer_addr: Any = None
        self._new_token_provider = new_token_provider
        self._setup_handshake(
            tls_config,
            server_name=server_name,
            original_dcid=original_destination_connection_id,
            retry_scid=retry_source_connection_id,
            client_initial_dcid=client_initial_dcid,
            generator=connection_id_generator,
            reset_key=stateless_reset_key,
            session_ticket=session_ticket,
            token=token,
            version=version,
        )
        self._setup_lifecycle()
        self._setup_path()
        self._last_ecn = 0
        # Bursts only save work (tests compare a transfer with and without them); burst_datagrams_sent
        # counts the datagrams they packed.
        self.bursts_enabled = True
        self.burst_datagrams_sent = 0
        self._traced_key_phase = 0
        self._undecryptable: list[tuple[bytes, int]] = []
        self._streams = StreamsMap.from_config(
            self._config, self._perspective, self._rtt, _StreamEvents(self._events)
        )
        self._packer.app_source = self._streams
        self._datagrams = DatagramQueue(
            local_max_frame_size=MAX_DATAGRAM_FRAME_SIZE if self._config.enable_datagrams else None,
            receive_queue_size=self._config.max_datagram_queue,
            max_payload_size=self._max_datagram_size - SHORT_HEADER_OVERHEAD,
        )
        self._packer.datagrams = self._datagrams
        self._packer.before_one_rtt_packet = self._maybe_initiate_key_update

    # -- the driver API --------------------------------------------------------------------------

    def connect(self, addr: Any, now: float) -> None:
        """Client: start the handshake towards ``addr`` (queues the first Initial flight)."""
        if not self._is_client:
            raise RuntimeError("connect() is for client connections")
        self._peer_addr = addr
        self._init_paths(addr)
        self._start(now)

    def receive_datagram(
        self, data: bytes | memoryview, addr: Any, now: float, ecn: int = 0, local_addr: Any = None
    ) -> None:
        """Process one UDP datagram from ``addr`` arriving at ``now`` with IP ECN bits ``ecn``;
        ``local_addr`` (optional) is the local address it arrived on, for path management."""
        state = self._state
        if state is _STATE_CLOSED or state is _STATE_DRAINING:
            return
        if state is _STATE_CLOSING:
            self._on_datagram_while_closing()
            return
        self._last_now = now
        if self._peer_addr is None:
            self._peer_addr = addr
            self._init_paths(addr, local_addr)
            self._start(now, data)
        self._datagram_local = local_addr
        try:
            self._receive(data, addr, now, ecn)
        except TransportError as exc:
            self._close_with_error(exc, now)
        except Exception as exc:  # a bug must not leave the peer hanging: close with INTERNAL_ERROR
            _logger.error("internal error while receiving a datagram", exc_info=exc)
            self._close_with_error(
                TransportError(TransportErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"), now
            )

    def receive_datagrams(self, items: list[tuple[bytes | memoryview, Any, int, Any]], now: float) -> int:
        """``receive_datagram`` for each (data, addr, ecn, ...) of ``items`` in order (a receive batch
        for this connection: one call instead of one per datagram); returns their total size."""
        total = 0
        for item in items:
            data = item[0]
            total += len(data)
            self.receive_datagram(data, item[1], now, item[2])
        return total

    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    # -- receive ---------------------------------------------------------------------------------

    def _receive(self, data: bytes | memoryview, addr: Any, now: float, ecn: int) -> None:
        size = len(data)
        if size == 0:
            return
        self._datagram_addr = addr
        self._datagram_size = size
        self._datagram_first = True
        long_header = data[0] & 0x80
        if long_header and self._handle_special_long_header(data, now):
            return
        self._sph.received_bytes(size)  # RFC 9000 §8.1: counts towards the 3x amplification budget
        if not long_header and self._handshake_confirmed and self._tracer is None:
            self._receive_one_rtt(data, now, ecn)
            return
        buf = bytearray(data)
        pos = 0
        first_dcid: bytes | None = None
        processed = False
        keys_before = self._keys_generation()
        while pos < size:
            if buf[pos] & 0x80 and not self._long_header_version_ok(buf, pos):
                self._trace_drop(None, size - pos, DropReason.UNEXPECTED_VERSION)
                break
            start = pos
            result, pos = self._unpacker.unpack(buf, pos, now)
            if self._tracer is not None:
                self._trace_key_phase()
            if isinstance(result, Dropped):
                if result.reason == DropReason.KEY_UNAVAILABLE and self._buffer_undecryptable(
                    buf, start, pos, ecn
                ):
                    continue
                self._trace_drop(result.packet_type, result.size, result.reason)
                continue
            # RFC 9000 §12.2: coalesced packets with a different DCID are dropped.
            if first_dcid is None:
                first_dcid = result.dcid
            elif result.dcid != first_dcid:
                self._trace_drop(result.packet_type, result.size, DropReason.UNKNOWN_CONNECTION_ID)
                continue
            if self._process_packet(result, now, _ECN_OF_BITS[ecn & 0x03]):
                processed = True
            if self._state is not _STATE_ACTIVE:
                return
        if not processed and self._is_stateless_reset(data):
            self._enter_stateless_reset(now)
        elif self._undecryptable and self._keys_generation() != keys_before:
            self._retry_undecryptable(now)

    def _receive_one_rtt(self, data: bytes | memoryview, now: float, ecn: int) -> None:
        """``_receive`` for the common case once the handshake is confirmed: a datagram that starts
        with a short header holds that one packet only (RFC 9000 §12.2: nothing can follow it), and no
        keys are still to come, so nothing is buffered or retried."""
        result, _ = self._unpacker.unpack(bytearray(data), 0, now)
        if type(result) is UnpackedPacket and self._process_packet(result, now, _ECN_OF_BITS[ecn & 0x03]):
            return
        if self._is_stateless_reset(data):
            self._enter_stateless_reset(now)

    def _is_stateless_reset(self, data: bytes | memoryview) -> bool:
        """RFC 9000 §10.3.1: a datagram none of whose packets could be processed ends with the
        stateless reset token of one of the peer's connection IDs."""
        if len(data) < MIN_STATELESS_RESET_SIZE:
            return False
        return self._conn_ids_peer.is_stateless_reset(bytes(data[-16:]))

    def _keys_generation(self) -> int:
        unpacker = self._unpacker
        return len(unpacker.keys) + len(unpacker.pending) + (unpacker.one_rtt is not None)

    def _buffer_undecryptable(self, buf: bytearray, start: int, end: int, ecn: int) -> bool:
        """Keep a packet that arrived before its keys (reordering), as quic-go does, to process it once
        they are installed; bounded, and only for levels whose keys may still come."""
        if len(self._undecryptable) >= _MAX_UNDECRYPTABLE or self._handshake_confirmed:
            return False
        first = buf[start]
        if first & 0x80 and (first & 0x30) >> 4 == long_type_bits(self._version, _PTYPE_INITIAL):
            return False  # Initial keys exist from the start: an undecryptable Initial is garbage
        self._undecryptable.append((bytes(buf[start:end]), ecn))
        return True

    def _retry_undecryptable(self, now: float) -> None:
        pending = self._undecryptable
        self._undecryptable = []
        for packet, ecn in pending:
            buf = bytearray(packet)
            result, _ = self._unpacker.unpack(buf, 0, now)
            if isinstance(result, Dropped):
                if not (
                    result.reason == DropReason.KEY_UNAVAILABLE
                    and self._buffer_undecryptable(buf, 0, len(buf), ecn)
                ):
                    self._trace_drop(result.packet_type, result.size, result.reason)
                continue
            self._datagram_first = False  # its bytes were counted when the datagram arrived
            self._process_packet(result, now, _ECN_OF_BITS[ecn & 0x03])
            if self._state is not _STATE_ACTIVE:
                return

    def _process_packet(self, pkt: UnpackedPacket, now: float, ecn: ECN) -> bool:
        space = self._spaces[_SPACE_OF_LEVEL[pkt.level]]
        tracker = space.ack_tracker
        if tracker.is_potentially_duplicate(pkt.pn):
            self._trace_drop(pkt.packet_type, pkt.size, DropReason.DUPLICATE)
            return False
        self._on_first_packet_of_level(pkt, now)
        frames = parse_payload(pkt.payload, pkt.packet_type)
        if not self._path_of_packet(pkt.dcid, pkt.pn, tracker.largest_received, frames, now):
            self._trace_drop(pkt.packet_type, pkt.size, DropReason.UNKNOWN_CONNECTION_ID)
            return False
        if self._tracer is not None:
            self._tracer.received_packet(pkt.packet_type.name, pkt.pn, pkt.size, frames)
        ack_eliciting = False
        handlers = _FRAME_HANDLERS
        for frame in frames:
            # STREAM and ACK by direct call (see _FRAME_HANDLERS), the rest through the table.
            if isinstance(frame, StreamFrame):
                self._streams.handle_stream_frame(frame)
                ack_eliciting = True
                continue  # a STREAM frame cannot end the connection
            if isinstance(frame, AckFrame):
                self._on_ack(frame, pkt, now)
            else:
                kind = type(frame)
                handlers[kind](self, frame, pkt, now)
                if kind not in NOT_ACK_ELICITING_TYPES:
                    ack_eliciting = True
            if self._state is not _STATE_ACTIVE:
                return True
        tracker.received_packet(pkt.pn, ecn, now, ack_eliciting)
        self._on_packet_processed(pkt, now)
        return True

    # -- frame handlers (dispatch to owners) -----------------------------------------------------

    def _on_ack(self, frame: AckFrame, pkt: UnpackedPacket, now: float) -> None:
        space = _SPACE_OF_LEVEL[pkt.level]
        result = self._sph.received_ack(frame, space, now)
        if result.ignore_below is not None:
            # RFC 9000 §13.2.4: our ACK was acknowledged, stop repeating what it covered.
            self._spaces[space].ack_tracker.ignore_below(result.ignore_below)
        one_rtt = self._packer.one_rtt
        crypto = self._spaces[space].crypto
        streams = self._streams
        application = space == _SPACE_APPLICATION
        for sent in result.acked:
            if application and not sent.is_0rtt:
                if one_rtt is not None:
                    one_rtt.on_packet_acked(sent.pn)
                if self._is_client and not self._handshake_confirmed and self._handshake_complete:
                    # RFC 9001 §4.1.2: an acknowledged 1-RTT packet confirms the handshake.
                    self._confirm_handshake(now)
                self._on_mtu_packet_acked(sent, now)
            for f in sent.frames:
                kind = type(f)
                if kind is StreamFrame:
                    streams.on_stream_frame_acked(f)
                elif kind is CryptoFrame:
                    crypto.on_frame_acked(f)
                elif kind is ResetStreamFrame:
                    streams.on_frame_acked(f)
        if result.lost:
            self._on_sent_packets_lost(result.lost, now)
        if result.rtt_updated:
            self._unpacker.pto = self._rtt.pto(True)
            if self._tracer is not None:
                self._trace_metrics()

    def _requeue_frame(self, frame: Any) -> None:
        """RFC 9000 §13.3: each lost frame goes back to its owner, which decides what to resend."""
        kind = type(frame)
        if kind in _NOT_RETRANSMITTED:
            return
        if kind is NewConnectionIdFrame:
            self._conn_ids_ours.on_frame_lost(frame)
            self._flush_cid_frames()
        elif kind is RetireConnectionIdFrame:
            self._conn_ids_peer.on_frame_lost(frame)
            self._flush_cid_frames()
        elif kind in _CONTROL_FRAMES:
            self._packer.control_frames.append(frame)
        elif self._streams is not None:
            self._streams.on_frame_lost(frame)

    def _on_crypto(self, frame: CryptoFrame, pkt: UnpackedPacket, now: float) -> None:
        level = pkt.level
        crypto = self._spaces[_SPACE_OF_LEVEL[level]].crypto
        crypto.handle_crypto_frame(frame)
        data = crypto.read()
        if not data:
            return
        if not self._is_client and level is _LEVEL_INITIAL and not self._version_decided:
            # RFC 9368 §2.3: the version is chosen from the whole ClientHello before answering.
            data = self._choose_version_from_client_hello(data)
            if not data:
                return
        self._tls_message(data, level, now)

    def _on_stream_frame(self, frame: Frame, pkt: UnpackedPacket, now: float) -> None:
        # STREAM, RESET_STREAM, STOP_SENDING, MAX_*, *_BLOCKED: all owned by the streams map.
        self._streams.handle_frame(frame)

    def _on_new_token(self, frame: NewTokenFrame, pkt: UnpackedPacket, now: float) -> None:
        # RFC 9000 §19.7: a server receiving NEW_TOKEN MUST close with PROTOCOL_VIOLATION.
        if not self._is_client:
            raise TransportError(_PROTOCOL_VIOLATION, "client sent NEW_TOKEN", frame_type=0x07)
        self._events.append(NewTokenReceived(frame.token))

    def _on_new_connection_id(self, frame: NewConnectionIdFrame, pkt: UnpackedPacket, now: float) -> None:
        self._conn_ids_peer.handle_new_connection_id(frame)
        self._flush_cid_frames()

    def _on_retire_connection_id(
        self, frame: RetireConnectionIdFrame, pkt: UnpackedPacket, now: float
    ) -> None:
        self._conn_ids_ours.handle_retire_connection_id(frame, pkt.dcid)
        self._flush_cid_frames()

    def _on_connection_close(self, frame: ConnectionCloseFrame, pkt: UnpackedPacket, now: float) -> None:
        self._enter_draining(frame, now)

    def _on_handshake_done(self, frame: HandshakeDoneFrame, pkt: UnpackedPacket, now: float) -> None:
        # RFC 9000 §19.20: a server receiving HANDSHAKE_DONE MUST close with PROTOCOL_VIOLATION.
        if not self._is_client:
            raise TransportError(_PROTOCOL_VIOLATION, "client sent HANDSHAKE_DONE", frame_type=0x1E)
        self._confirm_handshake(now)

    def _on_datagram(self, frame: DatagramFrame, pkt: UnpackedPacket, now: float) -> None:
        # RFC 9221 §3: PROTOCOL_VIOLATION if not negotiated or larger than we allow (the queue checks).
        self._events.append(DatagramReceived(self._datagrams.handle_datagram_frame(frame)))

    # -- send ------------------------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """Datagrams to send now, each with its destination; consecutive ones of equal size can be
        batched with GSO. (``datagrams_to_send_ecn`` adds each datagram's ECN codepoint,
        ``datagrams_to_send_paths`` also the local address to send from.)"""
        return [(data, addr) for data, addr, _, _ in self.datagrams_to_send_paths(now)]

    def datagrams_to_send_ecn(self, now: float) -> list[tuple[bytes, Any, int]]:
        """Like ``datagrams_to_send``, with the ECN codepoint (``protocol.ECN``) for the IP header of
        each datagram (RFC 9000 §13.4: ECT(0) while ECN is being validated or validated)."""
        return [(data, addr, ecn) for data, addr, ecn, _ in self.datagrams_to_send_paths(now)]

    def datagrams_to_send_paths(self, now: float) -> list[tuple[bytes, Any, int, Any]]:
        """``(data, remote address, ECN codepoint, local address)`` for each datagram due now: path
        probes go on their own path (RFC 9000 §8.2.2), the rest on the active one. The local address is
        what ``receive_datagram`` / ``migrate`` were given (None: the default socket)."""
        state = self._state
        if now > self._last_now:
            self._last_now = now
        if state is _STATE_CLOSING:
            return [(data, addr, 0, None) for data, addr in self._close_datagrams()]
        if state is not _STATE_ACTIVE or self._peer_addr is None:
            return []
        if not self._version_decided:
            # RFC 9368 §2.3: a server that may still switch to another compatible version sends
            # nothing (not even an ACK in the client's version) until the whole ClientHello chose it:
            # a client commits to the version of the first packet it receives from the server.
            return []
        out = self._path_probes(now)
        addr = self._peer_addr
        local = self._paths.active.local_addr if self._paths is not None else None
        # Once per call, not per datagram: keys are installed only by received packets, and a level
        # discarded while sending (a client's Initial) is skipped by the packer, which checks its keys.
        levels = self._send_levels()
        burst = (
            self.bursts_enabled and len(levels) == 1 and levels[0] is _LEVEL_ONE_RTT and self._tracer is None
        )
        sent = 0
        while sent < _MAX_DATAGRAMS_PER_CALL:
            if burst:
                datagrams = self._pack_burst(now, _MAX_DATAGRAMS_PER_CALL - sent)
                if datagrams:
                    ecn = self._last_ecn
                    out.extend([(data, addr, ecn, local) for data in datagrams])
                    sent += len(datagrams)
                    continue
            data = self._pack_one(now, levels)
            if data is None:
                break
            out.append((data, addr, self._last_ecn, local))
            sent += 1
        return out

    def _pack_burst(self, now: float, max_datagrams: int) -> list[bytes] | None:
        """Bulk data in one go: the datagrams of one stream's new data that ``_pack_one`` would send
        now, one after the other, when nothing else is due (no probe, PING, MTU probe, ACK, control
        frame; a validated path; send mode ANY). None when a burst does not apply."""
        if self._probes or self._ping_pending or self._path_budget() is not None:
            return None
        if self._handshake_confirmed and self._pmtud.should_send_probe(now):
            return None
        packer = self._packer
        stream = packer.burst_stream()
        if stream is None:
            return None
        allowance = self._sph.burst_allowance(now)
        if allowance is None:
            return None
        datagrams, packets = packer.pack_stream_burst(
            now, self._max_datagram_size, stream, allowance, max_datagrams
        )
        self._streams.after_burst(stream)
        if not datagrams:
            return None
        self._last_ecn = int(allowance[3])
        self.burst_datagrams_sent += len(datagrams)
        self._on_burst_sent(datagrams, packets, now)
        return datagrams

    def _pack_one(self, now: float, levels: tuple[EncryptionLevel, ...]) -> bytes | None:
        max_size = self._max_datagram_size
        budget = self._sph.amplification_budget()
        if budget is not None:
            # RFC 9000 §8.1: before address validation a server sends at most 3x what it received.
            max_size = min(max_size, budget)
            if max_size < MIN_USEFUL_DATAGRAM:
                return None
        path_budget = self._path_budget()
        if path_budget is not None:
            # RFC 9000 §9.3: the same 3x limit on a new, unvalidated peer address.
            max_size = min(max_size, path_budget)
            if max_size < MIN_USEFUL_DATAGRAM:
                return None
        probe_level = self._next_probe_level()
        if probe_level is not None:
            packed = self._packer.pack_datagram(
                now, max_size, levels=levels, send_data=True, ping_levels=frozenset((probe_level,))
            )
            self._consume_probe(probe_level)
        else:
            mode = self._sph.send_mode(now)
            if mode == _MODE_NONE:
                return None
            if mode in _PTO_MODES:
                # The handler asks for probes the timer already queued; send them as data-carrying.
                self._queue_probes(_PTO_MODES[mode], 1)
                probe_level = self._next_probe_level()
                if probe_level is None:
                    return None
                packed = self._packer.pack_datagram(
                    now, max_size, levels=levels, send_data=True, ping_levels=frozenset((probe_level,))
                )
                self._consume_probe(probe_level)
                return self._finish_datagram(packed, now)
            send_data = mode == _MODE_ANY
            if send_data and self._handshake_confirmed:
                probe = self._maybe_send_mtu_probe(now)
                if probe is not None:
                    return probe
            if mode == _MODE_PACING_LIMITED and self._packer.has_pending_data():
                # RFC 9002 §7.7: wait for the pacer; ACKs may still go now.
                self._pacing_at = max(self._sph.time_until_send(now), now + 1e-6)
            ping_levels: frozenset[EncryptionLevel] = frozenset()
            if self._ping_pending and send_data and self._packer.one_rtt is not None:
                ping_levels = _ONE_RTT_ONLY
                self._ping_pending = False
            packed = self._packer.pack_datagram(
                now, max_size, levels=levels, send_data=send_data, ping_levels=ping_levels
            )
        return self._finish_datagram(packed, now)

    def _finish_datagram(self, packed: tuple[bytearray, list[Any]] | None, now: float) -> bytes | None:
        if packed is None:
            return None
        buf, packets = packed
        self._last_ecn = int(packets[-1].ecn)
        self._on_datagram_sent(buf, packets, now)
        self._on_datagram_sent_on_path(len(buf))
        return bytes(buf)

    def _trace_key_phase(self) -> None:
        """Report key updates the peer started (ours are reported where we start them)."""
        one_rtt = self._packer.one_rtt
        if one_rtt is not None and one_rtt.key_phase != self._traced_key_phase:
            self._traced_key_phase = one_rtt.key_phase
            assert self._tracer is not None
            self._tracer.updated_key(one_rtt.key_phase, True)

    def _maybe_initiate_key_update(self) -> None:
        """RFC 9001 §6.1: after confirmation, roll the 1-RTT keys every configured number of packets."""
        one_rtt = self._packer.one_rtt
        if one_rtt is not None and self._handshake_confirmed and one_rtt.should_initiate_update():
            one_rtt.initiate_update(self._last_now, self._rtt.pto(True))
            self._traced_key_phase = one_rtt.key_phase
            if self._tracer is not None:
                self._tracer.updated_key(one_rtt.key_phase, False)

    def initiate_key_update(self) -> None:
        """Start a key update now (RFC 9001 §6.1); ignored before the handshake is confirmed or while
        the previous update is not yet acknowledged (RFC 9001 §6.5)."""
        one_rtt = self._packer.one_rtt
        if one_rtt is not None and self._handshake_confirmed and one_rtt.can_initiate_update():
            one_rtt.initiate_update(self._last_now, self._rtt.pto(True))
            self._traced_key_phase = one_rtt.key_phase
            if self._tracer is not None:
                self._tracer.updated_key(one_rtt.key_phase, False)

    # -- streams API (delegated to the streams map) --------------------------------------------

    def open_stream(self, bidi: bool = True) -> int:
        """Open a stream; raises StreamLimitReachedError beyond the peer's MAX_STREAMS."""
        return int(self._streams.open_stream(bidi))

    def can_open_stream(self, bidi: bool = True) -> bool:
        return bool(self._streams.can_open_stream(bidi))

    def _send_stream(self, stream_id: int) -> Any:
        stream = self._streams.get_send_stream(stream_id)
        if stream is None:
            raise ValueError(f"stream {stream_id} has no open sending part")
        return stream

    def _receive_stream(self, stream_id: int) -> Any:
        stream = self._streams.get_receive_stream(stream_id)
        if stream is None:
            raise ValueError(f"stream {stream_id} has no open receiving part")
        return stream

    def stream_write(self, stream_id: int, data: bytes | memoryview) -> int:
        """Queue as many bytes of ``data`` as the send buffer accepts; returns the count."""
        return int(self._send_stream(stream_id).write(data))

    def stream_writable(self, stream_id: int) -> int:
        """Bytes ``stream_write`` would accept now."""
        return int(self._send_stream(stream_id).writable())

    def stream_close(self, stream_id: int) -> None:
        """Send a FIN after the queued data."""
        self._send_stream(stream_id).close()

    def stream_read(self, stream_id: int, n: int = -1) -> bytes:
        """Up to ``n`` in-order bytes (-1: all available); b"" at the end of the stream."""
        return self._read(self._receive_stream(stream_id), n)

    def stream_read_fin(self, stream_id: int, n: int) -> tuple[bytes, bool]:
        """``stream_read`` and whether that read took the last byte before the FIN (RFC 9000 §3.2:
        Data Read), so that the reader can end without asking again."""
        stream = self._receive_stream(stream_id)
        return self._read(stream, n), bool(stream.at_eof)

    def _read(self, stream: Any, n: int) -> bytes:
        return bytes(stream.read(n if n >= 0 else max(1, stream.readable()), self._last_now))

    def stream_readable(self, stream_id: int) -> int:
        """Bytes ``stream_read`` would return now."""
        return int(self._receive_stream(stream_id).readable())

    def stream_at_eof(self, stream_id: int) -> bool:
        return bool(self._receive_stream(stream_id).at_eof)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abort sending with RESET_STREAM (RFC 9000 §19.4)."""
        self._send_stream(stream_id).reset(error_code)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending with STOP_SENDING (RFC 9000 §19.5)."""
        self._receive_stream(stream_id).cancel_read(error_code)

    def send_datagram(self, data: bytes) -> None:
        """Queue an unreliable datagram (RFC 9221); DatagramTooLargeError if it can never fit."""
        self._datagrams.send(data)

    def max_datagram_payload(self) -> int:
        """The largest datagram ``send_datagram`` accepts now (0 if the peer does not accept any)."""
        return self._datagrams.max_datagram_size()

    # -- close -----------------------------------------------------------------------------------

    def close(self, error_code: int = 0, reason: str = "", is_application: bool = True) -> None:
        """Close the connection immediately with CONNECTION_CLOSE (RFC 9000 §10.2)."""
        if self._state is not _STATE_ACTIVE:
            return
        self._close_immediately(error_code, reason, is_application, frame_type=None, now=self._last_now)


class _StreamEvents:
    """The streams map's notifications, turned into connection events."""

    __slots__ = ("_events",)

    def __init__(self, events: deque[Event]) -> None:
        self._events = events

    def on_stream_opened(self, stream_id: int) -> None:
        self._events.append(StreamOpened(stream_id))

    def on_stream_readable(self, stream_id: int) -> None:
        self._events.append(StreamReadable(stream_id))

    def on_stream_writable(self, stream_id: int) -> None:
        self._events.append(StreamWritable(stream_id))

    def on_stream_reset(self, stream_id: int, error_code: int) -> None:
        self._events.append(StreamReset(stream_id, error_code))

    def on_stop_sending(self, stream_id: int, error_code: int) -> None:
        self._events.append(StopSendingReceived(stream_id, error_code))

    def on_streams_available(self, bidi: bool) -> None:
        self._events.append(StreamsAvailable(bidi))


def _ignore(conn: QuicConnection, frame: Frame, pkt: UnpackedPacket, now: float) -> None:
    return None


_MAX_UNDECRYPTABLE: Final = 16  # packets kept while their keys are not there yet (quic-go keeps 10)
_ONE_RTT_ONLY: Final = frozenset((EncryptionLevel.ONE_RTT,))
_SPACE_OF_LEVEL: Final = {
    EncryptionLevel.INITIAL: PacketNumberSpace.INITIAL,
    EncryptionLevel.HANDSHAKE: PacketNumberSpace.HANDSHAKE,
    EncryptionLevel.ZERO_RTT: PacketNumberSpace.APPLICATION,
    EncryptionLevel.ONE_RTT: PacketNumberSpace.APPLICATION,
}
_CONTROL_FRAMES: Final = frozenset(
    (HandshakeDoneFrame, NewTokenFrame, NewConnectionIdFrame, RetireConnectionIdFrame)
)
_PTO_MODES: Final = {
    SendMode.PTO_INITIAL: PacketNumberSpace.INITIAL,
    SendMode.PTO_HANDSHAKE: PacketNumberSpace.HANDSHAKE,
    SendMode.PTO_APPLICATION: PacketNumberSpace.APPLICATION,
}
# RFC 9000 §13.3: PATH_CHALLENGE / PATH_RESPONSE are never retransmitted (the path manager sends fresh
# challenges); ACK, PADDING, PING and CONNECTION_CLOSE carry nothing to repair; DATAGRAM is unreliable.
_NOT_RETRANSMITTED: Final = frozenset(
    (
        AckFrame,
        PaddingFrame,
        PingFrame,
        ConnectionCloseFrame,
        DatagramFrame,
        PathChallengeFrame,
        PathResponseFrame,
    )
)


# The handler of each frame type (RFC 9000 §19), one table for all connections; STREAM and ACK, the
# bulk of all frames, are not in it: _process_packet calls their handlers directly.
_FRAME_HANDLERS: Final[dict[type, Callable[..., None]]] = {
    PaddingFrame: _ignore,
    PingFrame: _ignore,
    CryptoFrame: QuicConnection._on_crypto,
    ResetStreamFrame: QuicConnection._on_stream_frame,
    StopSendingFrame: QuicConnection._on_stream_frame,
    MaxDataFrame: QuicConnection._on_stream_frame,
    MaxStreamDataFrame: QuicConnection._on_stream_frame,
    MaxStreamsFrame: QuicConnection._on_stream_frame,
    DataBlockedFrame: QuicConnection._on_stream_frame,
    StreamDataBlockedFrame: QuicConnection._on_stream_frame,
    StreamsBlockedFrame: QuicConnection._on_stream_frame,
    NewTokenFrame: QuicConnection._on_new_token,
    NewConnectionIdFrame: QuicConnection._on_new_connection_id,
    RetireConnectionIdFrame: QuicConnection._on_retire_connection_id,
    PathChallengeFrame: QuicConnection._on_path_challenge,
    PathResponseFrame: QuicConnection._on_path_response,
    ConnectionCloseFrame: QuicConnection._on_connection_close,
    HandshakeDoneFrame: QuicConnection._on_handshake_done,
    DatagramFrame: QuicConnection._on_datagram,
}
