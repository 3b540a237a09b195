"""The handshake side of a connection: TLS, keys per level, transport parameters, Retry and Version
Negotiation (RFC 9000 §5.2, §6, §7, §8.1, §17.2.5; RFC 9001 §4, §5.2, §4.9; RFC 9368; RFC 9369).

- Keys: Initial keys from the client's first DCID (RFC 9001 §5.2); Handshake, 0-RTT and 1-RTT keys
  from the TLS engine's KeysReady events; Initial keys are discarded when the client first sends,
  and the server first receives, a Handshake packet; Handshake keys at confirmation (RFC 9001 §4.9).
- Handshake confirmation (RFC 9001 §4.1.2): the server at completion (it then sends HANDSHAKE_DONE);
  the client on HANDSHAKE_DONE or an acknowledged 1-RTT packet.
- Connection IDs: the client switches to the server's SCID from its first packet (RFC 9000 §7.2);
  the peer's transport parameters authenticate the CIDs (RFC 9000 §7.3).
- Client Retry (RFC 9000 §17.2.5.2; RFC 9001 §5.8) and Version Negotiation (RFC 9000 §6.2); compatible
  version negotiation (RFC 9368 §2.3): the client follows the server's Initial into another version it
  offered.
"""

from __future__ import annotations

import os
from typing import Any, Final

from quicsilver.ackhandler.received import ReceivedPacketTracker
from quicsilver.ackhandler.sent import SentPacketHandler
from quicsilver.congestion import new_send_algorithm
from quicsilver.congestion.rtt import RTTStats
from quicsilver.core.conn_id_generator import ConnIDGenerator, RandomConnectionIDGenerator
from quicsilver.core.conn_id_manager import ConnIDManager
from quicsilver.core.crypto_stream import MAX_CRYPTO_BUFFER, CryptoStream
from quicsilver.core.events import HandshakeCompleted, SessionTicketReceived
from quicsilver.core.key_phase import OneRTTKeys
from quicsilver.core.lifecycle import Lifecycle
from quicsilver.core.packer import SHORT_HEADER_OVERHEAD, PacketPacker
from quicsilver.core.peer_params import (
    local_transport_parameters,
    validate_peer_parameters,
)
from quicsilver.core.spaces import PacketSpace
from quicsilver.core.unpacker import PacketUnpacker, UnpackedPacket
from quicsilver.errors import TransportError, TransportErrorCode, VersionNegotiationError, crypto_error
from quicsilver.handshake.protection import (
    INITIAL_CIPHER_SUITE,
    PacketKeys,
    initial_keys,
    initial_secrets,
    retry_integrity_valid,
)
from quicsilver.handshake.tls import (
    EarlyDataRejected,
    HandshakeComplete,
    KeysReady,
    PeerTransportParameters,
    TLSEngine,
    WriteData,
)
from quicsilver.handshake.tls import SessionTicketReceived as TLSSessionTicketReceived
from quicsilver.handshake.tls.messages import parse_untrusted_client_hello
from quicsilver.handshake.tls.zero_rtt import zero_rtt_parameters_compatible
from quicsilver.protocol import (
    ACTIVE_CONNECTION_ID_LIMIT,
    EncryptionLevel,
    PacketNumberSpace,
    Perspective,
    space_of,
)
from quicsilver.qlog.tracer import DropReason
from quicsilver.wire.frames import HandshakeDoneFrame, NewTokenFrame
from quicsilver.wire.header import (
    PacketType,
    packet_type_from_bits,
    parse_retry,
    parse_version_negotiation,
    retry_pseudo_packet,
)
from quicsilver.wire.transport_parameters import (
    TransportParameters,
    encode_transport_parameters,
    parse_transport_parameters,
)

__all__ = ["HandshakeDriver"]

# Enum members used per packet, as module constants (Final: the compiled build reads a C static
# instead of looking the member up on its class).
_LEVEL_HANDSHAKE: Final = EncryptionLevel.HANDSHAKE
_LEVEL_INITIAL: Final = EncryptionLevel.INITIAL
_LEVEL_ONE_RTT: Final = EncryptionLevel.ONE_RTT
_LEVEL_ZERO_RTT: Final = EncryptionLevel.ZERO_RTT
_PERSPECTIVE_CLIENT: Final = Perspective.CLIENT
_PERSPECTIVE_SERVER: Final = Perspective.SERVER
_PTYPE_HANDSHAKE: Final = PacketType.HANDSHAKE
_PTYPE_INITIAL: Final = PacketType.INITIAL
_PTYPE_RETRY: Final = PacketType.RETRY
_PTYPE_VERSION_NEGOTIATION: Final = PacketType.VERSION_NEGOTIATION
_SPACE_HANDSHAKE: Final = PacketNumberSpace.HANDSHAKE
_SPACE_INITIAL: Final = PacketNumberSpace.INITIAL
# Iterating an Enum class runs interpreted code of the enum module (a generator and attribute
# lookups per member): per connection, a tuple of the members is cheaper.
_ALL_SPACES: Final = (_SPACE_INITIAL, _SPACE_HANDSHAKE, PacketNumberSpace.APPLICATION)


_CLIENT_HELLO: Final = 1  # TLS HandshakeType.client_hello
_CLIENT_DCID_LEN: Final = 8  # RFC 9000 §7.2: at least 8 bytes of unpredictable DCID in the first Initial


# The packet number spaces whose CRYPTO data must be fully read when TLS moves to a read level.
_READ_LEVEL_BELOW: Final = {
    EncryptionLevel.HANDSHAKE: (PacketNumberSpace.INITIAL,),
    EncryptionLevel.ONE_RTT: (PacketNumberSpace.INITIAL, PacketNumberSpace.HANDSHAKE),
}


class HandshakeDriver(Lifecycle):
    """Mixin of QuicConnection: keys, TLS and the handshake-time packet rules."""

    def _setup_handshake(
        self,
        tls_config: Any,
        *,
        server_name: str | None,
        original_dcid: bytes | None,
        retry_scid: bytes | None,
        client_initial_dcid: bytes | None,
        generator: Any,
        reset_key: bytes | None,
        session_ticket: Any,
        token: bytes,
        version: int | None,
    ) -> None:
        cfg = self._config
        self._tls_config = tls_config
        self._server_name = server_name
        self._session_ticket = session_ticket
        self._version = version if version is not None else cfg.versions[0]
        self._version_from_packet = version is None and not self._is_client
        self._generator = generator if generator is not None else RandomConnectionIDGenerator()
        self._host_cid = self._generator.generate_connection_id()
        if self._is_client:
            self._original_dcid = os.urandom(_CLIENT_DCID_LEN)
            self._initial_dcid = self._original_dcid
        else:
            # After a Retry the client's Initial goes to the Retry's SCID (RFC 9000 §17.2.5.2).
            self._initial_dcid = client_initial_dcid or retry_scid or original_dcid or b""
            self._original_dcid = original_dcid or self._initial_dcid
        self._retry_scid = retry_scid
        self._peer_initial_scid: bytes | None = None
        self._peer_cid_known = False
        self._received_any = False
        self._vn_done = False
        self._version_decided = self._is_client
        self._client_version = self._version
        self._client_hello = bytearray()
        self._handshake_complete = False
        self._handshake_confirmed = False
        # What TLS negotiated, for stats() / connection_state() (suite codepoint, named group).
        self._tls_suite: int | None = None
        self._tls_group: int | None = None
        self._peer_params = None
        self._peer_idle_timeout: float | None = None
        self._peer_max_datagram_frame_size = None
        self._peer_ack_delay_exponent = 3
        self._max_datagram_size = cfg.initial_packet_size
        self._one_rtt_secrets: dict[bool, tuple[Any, bytes]] = {}
        # 1-RTT keys a server derives ahead of the client's Finished (work_ahead), and whether it tried
        self._one_rtt_ahead: OneRTTKeys | None = None
        self._one_rtt_ahead_tried = False
        # What the end of the handshake issues, made in work_ahead: whether our CIDs are prepared,
        # and a server's NEW_TOKEN token
        self._handshake_end_prepared = False
        self._prepared_token: bytes | None = None
        self._tls = None
        self._spaces = {space: PacketSpace(space, ReceivedPacketTracker(space)) for space in _ALL_SPACES}
        self._rtt = RTTStats()
        tracer_factory = cfg.tracer
        self._tracer = tracer_factory(self._perspective, self._original_dcid) if tracer_factory else None
        congestion = new_send_algorithm(
            cfg.congestion_control, self._rtt, cfg.initial_packet_size, self._tracer
        )
        self._sph = SentPacketHandler(
            self._rtt,
            congestion,
            self._perspective,
            tracer=self._tracer,
            # RFC 9000 §13.4: ECN on by default (quic-go); Config.extra["disable_ecn"] turns it off.
            enable_ecn=not self._config.extra.get("disable_ecn", False),
        )
        self._packer = PacketPacker(self._perspective, self._spaces, self._sph)
        self._packer.version = self._version
        self._packer.scid = self._host_cid
        self._packer.token = token if self._is_client else b""
        self._unpacker = PacketUnpacker(self._spaces, len(self._host_cid))
        self._conn_ids_ours = ConnIDGenerator(self._generator, self._host_cid, reset_key)
        self._conn_ids_peer = ConnIDManager(self._initial_dcid, ACTIVE_CONNECTION_ID_LIMIT)
        if not self._is_client and self._initial_dcid:
            self._conn_ids_ours.set_initial_client_dcid(self._initial_dcid)

    # -- start -----------------------------------------------------------------------------------

    @property
    def host_cid(self) -> bytes:
        """Our first connection ID (the SCID of our long-header packets)."""
        return self._host_cid

    @property
    def original_destination_connection_id(self) -> bytes:
        return self._original_dcid

    def _start(self, now: float, first_datagram: bytes | memoryview | None = None) -> None:
        if self._created_at is not None:
            return
        self._created_at = now
        self._last_now = now
        if self._version_from_packet and first_datagram is not None and len(first_datagram) >= 5:
            # A server answers in the version of the client's first Initial (then maybe upgrades,
            # RFC 9368 §2.3); the I/O layer already refused versions we do not support.
            packet_version = int.from_bytes(first_datagram[1:5], "big")
            if first_datagram[0] & 0x80 and packet_version in self._config.versions:
                self._version = self._client_version = packet_version
                self._packer.version = packet_version
        if not self._is_client and self._version == self._config.versions[0]:
            # RFC 9368 §2.3: the client already speaks the version we prefer most, there is nothing to
            # choose: no need to read the ClientHello before TLS does, nor to hold back our packets.
            self._version_decided = True
        if not self._is_client and not self._initial_dcid and first_datagram is not None:
            # Server created without the client's DCID: take it from the first Initial.
            dcid_len = first_datagram[5] if len(first_datagram) > 6 else 0
            self._initial_dcid = bytes(first_datagram[6 : 6 + dcid_len])
            if not self._original_dcid:
                self._original_dcid = self._initial_dcid
            self._conn_ids_ours.set_initial_client_dcid(self._initial_dcid)
        self._install_initial_keys(self._initial_dcid)
        self._packer.dcid = self._conn_ids_peer.active
        if self._tracer is not None:
            self._tracer.started_connection(None, self._peer_addr, self._host_cid, self._initial_dcid)
        self._create_tls(now)
        if self._is_client:
            ticket = self._session_ticket
            if ticket is not None and ticket.transport_parameters:
                # RFC 9000 §7.4.1: 0-RTT data obeys the limits remembered from the earlier connection.
                remembered = parse_transport_parameters(ticket.transport_parameters, _PERSPECTIVE_SERVER)
                self._apply_params_limits(remembered)
            self._tls.start()
            self._drain_tls(now)
        self._flush_cid_frames()

    def _local_params(self) -> TransportParameters:
        server = not self._is_client
        return local_transport_parameters(
            self._config,
            self._perspective,
            self._version,
            self._host_cid,
            original_dcid=self._original_dcid if server else None,
            retry_scid=self._retry_scid if server else None,
            stateless_reset_token=self._conn_ids_ours.reset_token(self._host_cid) if server else None,
            preferred_address=self._preferred_address,
        )

    def _create_tls(self, now: float) -> None:
        params = self._local_params()
        if self._tracer is not None:
            self._tracer.sent_transport_parameters(params)
        ticket = self._session_ticket
        self._tls = TLSEngine(
            self._tls_config,
            is_client=self._is_client,
            transport_parameters=encode_transport_parameters(params),
            server_name=self._server_name,
            session_ticket=ticket,
            early_data=(ticket is not None) if self._is_client else self._config.allow_0rtt,
            now=now,
            early_data_check=None if self._is_client else self._remembered_params_allow_0rtt,
            # a server's ServerHello leaves before the rest of its flight is built (finish_flight)
            split_flight=not self._is_client,
        )

    def _install_initial_keys(self, dcid: bytes) -> None:
        if self._is_client:
            # The server's Initial keys serve only its answer: derived while it comes (work_ahead).
            client_secret, server_secret = initial_secrets(self._version, dcid)
            self._packer.keys[_LEVEL_INITIAL] = PacketKeys(INITIAL_CIPHER_SUITE, client_secret, self._version)
            self._unpacker.install_later(_LEVEL_INITIAL, INITIAL_CIPHER_SUITE, server_secret, self._version)
            return
        seal, open_ = initial_keys(self._version, dcid, self._perspective)  # a server needs both now
        self._packer.keys[_LEVEL_INITIAL] = seal
        self._unpacker.drop_keys(_LEVEL_INITIAL)
        self._unpacker.keys[_LEVEL_INITIAL] = open_

    # -- TLS -------------------------------------------------------------------------------------

    def _tls_message(self, data: bytes, level: EncryptionLevel, now: float) -> None:
        if self._tls is None:
            # A server's engine is gone once its ticket is out; a client sends no post-handshake
            # messages in QUIC (RFC 9001 §4.4 forbids post-handshake authentication).
            raise TransportError(crypto_error(10), "TLS message after the handshake")  # unexpected_message
        self._tls.handle_message(data, level, now)
        self._drain_tls(now)

    def _drain_tls(self, now: float) -> None:
        tls = self._tls
        while (ev := tls.next_event()) is not None:
            if isinstance(ev, WriteData):
                self._spaces[space_of(ev.level)].crypto.write(ev.data)
            elif isinstance(ev, KeysReady):
                self._install_keys(ev, now)
            elif isinstance(ev, PeerTransportParameters):
                self._apply_peer_params(ev.data)
            elif isinstance(ev, HandshakeComplete):
                self._on_handshake_complete(ev, now)
            elif isinstance(ev, EarlyDataRejected):
                self._on_early_data_rejected(now)
            elif isinstance(ev, TLSSessionTicketReceived):
                self._events.append(SessionTicketReceived(ev.ticket))

    def _install_keys(self, ev: KeysReady, now: float) -> None:
        level = ev.level
        if not ev.is_write and level in _READ_LEVEL_BELOW:
            # RFC 9001 §4.1.3: TLS reads the next level now, so CRYPTO data of the levels below that it
            # never consumed (buffered out of order) can never be: PROTOCOL_VIOLATION (as quic-go's
            # "encryption level changed, but crypto stream has more data to read").
            for below in _READ_LEVEL_BELOW[level]:
                if self._spaces[below].crypto.has_buffered:
                    raise TransportError(
                        TransportErrorCode.PROTOCOL_VIOLATION,
                        f"{below.name} CRYPTO data left unread when {level.name} keys arrived",
                    )
        if self._tracer is not None:
            self._tracer.updated_key_from_tls(level, ev.is_write == self._is_client)
        if level == _LEVEL_ONE_RTT:
            self._one_rtt_secrets[ev.is_write] = (ev.suite, ev.secret)
            if len(self._one_rtt_secrets) == 2:
                suite, send_secret = self._one_rtt_secrets[True]
                _, recv_secret = self._one_rtt_secrets[False]
                keys = self._one_rtt_ahead
                self._one_rtt_ahead = None
                if keys is None or not keys.made_from(suite, send_secret, recv_secret):
                    keys = self._new_one_rtt_keys(suite, send_secret, recv_secret)
                self._packer.one_rtt = keys
                self._unpacker.one_rtt = keys
                self._one_rtt_secrets.clear()
                keys.schedule_next(now + self._rtt.pto(True))
                if self._is_client:
                    # 1-RTT replaces 0-RTT for sending (RFC 9001 §4.9.3).
                    self._packer.keys.pop(_LEVEL_ZERO_RTT, None)
            return
        if ev.is_write:
            self._packer.keys[level] = PacketKeys(ev.suite, ev.secret, self._version)
        else:
            # derived with the first packet of the level, or once our flight is out (work_ahead)
            self._unpacker.install_later(level, ev.suite, ev.secret, self._version)

    def _new_one_rtt_keys(self, suite: Any, send_secret: bytes, recv_secret: bytes) -> OneRTTKeys:
        return OneRTTKeys(
            suite,
            self._version,
            send_secret,
            recv_secret,
            first_update_interval=self._config.first_key_update_interval,
            update_interval=self._config.key_update_interval,
        )

    @property
    def flight_pending(self) -> bool:
        """Server: its ServerHello is queued and the rest of its flight is not built yet.

        The client can work on the ServerHello (key exchange, Handshake keys) while the server signs
        and builds EncryptedExtensions .. Finished, so the I/O layer sends the datagram with the
        ServerHello first, then calls ``finish_flight``. (A driver that knows nothing of it gets a
        timer due at once: ``handle_timer`` finishes the flight.) The ServerHello's datagram is
        padded like any server datagram with an ack-eliciting Initial (RFC 9000 §14.1).
        """
        return self._flight_pending()

    def _flight_pending(self) -> bool:
        # (read per flush: a client never has one; a server frees its TLS engine after the handshake)
        if self._is_client:
            return False
        tls = self._tls
        return tls is not None and bool(tls.flight_pending)

    def finish_flight(self, now: float) -> None:
        """Build the rest of a server's flight (see ``flight_pending``); a no-op otherwise."""
        if not self._flight_pending():
            return
        tls = self._tls
        try:
            tls.finish_flight()
            self._drain_tls(now)
        except TransportError as exc:
            self._close_with_error(exc, now)

    @property
    def wants_work_ahead(self) -> bool:
        """Whether ``work_ahead`` has keys to derive (not before a pending flight is finished)."""
        if self._flight_pending():
            return False
        if self._unpacker.pending:
            return True
        return (
            not self._one_rtt_ahead_tried and True in self._one_rtt_secrets and self._unpacker.one_rtt is None
        )

    def work_ahead(self) -> None:
        """Derive keys the connection will need next, while it waits for its peer. The I/O layer calls
        this when ``wants_work_ahead``, once the datagrams of the moment are on the wire, so that the
        derivations leave the path of the packets: receive keys installed with a flight we sent (the
        client's Initial keys for the server's answer, a server's Handshake keys for the client's
        Finished), and a server's 1-RTT keys (and the next key phase's receive keys, RFC 9001 §6.3)
        between its flight and the client's Finished, installed only when that verifies (RFC 9001
        §5.7). (Otherwise the next phase's keys are a timer.) Also what the end of the handshake
        issues: our CIDs with their reset tokens and a server's NEW_TOKEN token."""
        self._unpacker.derive_pending()
        if not self._handshake_end_prepared and not self._handshake_complete:
            self._prepare_handshake_end()
        if self._one_rtt_ahead_tried or self._unpacker.one_rtt is not None:
            return
        self._one_rtt_ahead_tried = True
        sent = self._one_rtt_secrets.get(True)
        pending = self._tls.pending_read_secret() if self._tls is not None else None
        if sent is None or pending is None or sent[0] != pending[0]:
            return
        keys = self._new_one_rtt_keys(sent[0], sent[1], pending[1])
        keys.prepare_next()
        self._one_rtt_ahead = keys

    def _prepare_handshake_end(self) -> None:
        self._handshake_end_prepared = True
        params = self._peer_params
        # RFC 9000 §5.1.1: issued up to the peer's active_connection_id_limit (our cap while unknown)
        self._conn_ids_ours.prepare(params.active_connection_id_limit if params is not None else None)
        provider = self._new_token_provider
        if provider is not None and not self._is_client:
            # the peer's address is the one the token will be sent to: a server follows no address
            # change before its handshake completes (RFC 9000 §9)
            self._prepared_token = provider(self._peer_addr)

    def _new_token(self) -> bytes | None:
        """Server: the NEW_TOKEN token for the peer's address (RFC 9000 §8.1.3), minted ahead if
        ``work_ahead`` ran."""
        provider = self._new_token_provider
        if provider is None:
            return None
        if self._handshake_end_prepared:
            return self._prepared_token
        return provider(self._peer_addr)

    def _apply_peer_params(self, data: bytes) -> None:
        peer = _PERSPECTIVE_SERVER if self._is_client else _PERSPECTIVE_CLIENT
        params = parse_transport_parameters(data, peer)
        validate_peer_parameters(
            params,
            self._perspective,
            peer_initial_scid=self._peer_initial_scid,
            original_dcid=self._original_dcid,
            retry_scid=self._retry_scid,
            # RFC 9368 §4: a client's Chosen Version is the version of its first flight.
            version=self._version if self._is_client else self._client_version,
        )
        if self._tracer is not None:
            self._tracer.received_transport_parameters(params)
        self._peer_params = params
        self._apply_params_limits(params)
        if params.stateless_reset_token is not None:
            self._conn_ids_peer.set_stateless_reset_token(params.stateless_reset_token)
        if params.preferred_address is not None:
            self._on_peer_preferred_address(params)

    def _apply_params_limits(self, params: TransportParameters) -> None:
        """Flow-control, datagram and size limits (also used with remembered 0-RTT parameters)."""
        if params.max_idle_timeout:
            self._peer_idle_timeout = params.max_idle_timeout / 1000
        self._rtt.max_ack_delay = params.max_ack_delay / 1000
        self._sph.peer_ack_delay_exponent = params.ack_delay_exponent
        self._peer_ack_delay_exponent = params.ack_delay_exponent
        self._peer_max_datagram_frame_size = params.max_datagram_frame_size
        self._on_peer_path_params(params)
        self._datagrams.set_max_payload_size(self._max_datagram_size - SHORT_HEADER_OVERHEAD)
        if self._config.enable_datagrams:
            self._datagrams.set_peer_max_frame_size(params.max_datagram_frame_size)
        self._streams.apply_peer_transport_parameters(
            initial_max_data=params.initial_max_data,
            initial_max_stream_data_bidi_local=params.initial_max_stream_data_bidi_local,
            initial_max_stream_data_bidi_remote=params.initial_max_stream_data_bidi_remote,
            initial_max_stream_data_uni=params.initial_max_stream_data_uni,
            initial_max_streams_bidi=params.initial_max_streams_bidi,
            initial_max_streams_uni=params.initial_max_streams_uni,
        )

    def _on_handshake_complete(self, ev: HandshakeComplete, now: float) -> None:
        self._handshake_complete = True
        if self._tracer is not None:
            self._tracer.updated_state("handshake_started", "handshake_complete")
        self._tls_suite = int(ev.suite)
        self._tls_group = ev.group
        # RFC 9000 §10.1: after the handshake the idle timeout is the minimum of both endpoints'.
        idle = self._config.max_idle_timeout
        peer_idle = self._peer_idle_timeout
        self._idle_timeout = min(idle, peer_idle) if peer_idle else idle
        self._events.append(
            HandshakeCompleted(
                alpn=ev.alpn,
                session_resumed=ev.session_resumed,
                early_data_accepted=ev.early_data_accepted,
                version=self._version,
            )
        )
        if self._peer_params is not None:
            self._conn_ids_ours.set_peer_limit(self._peer_params.active_connection_id_limit)
        if not self._is_client:
            # RFC 9001 §4.1.2: the server's handshake is confirmed when it completes; it sends
            # HANDSHAKE_DONE (RFC 9000 §19.20), and may send NEW_TOKEN and a session ticket.
            self._packer.control_frames.append(HandshakeDoneFrame())
            token = self._new_token()
            if token:
                self._packer.control_frames.append(NewTokenFrame(token))
            self._confirm_handshake(now)
            if self._tls.wants_session_ticket():  # encode the parameters only for a ticket we send
                self._tls.send_session_ticket(now, self._ticket_app_data())
            self._drain_tls(now)
            # Nothing is left for the server's TLS engine to do: free it (memory per idle connection).
            self._tls = None
        self._flush_cid_frames()

    def _remembered_params_allow_0rtt(self, app_data: bytes) -> bool:
        """RFC 9000 §7.4.1: accept 0-RTT only if no limit the client remembered has been reduced."""
        return zero_rtt_parameters_compatible(app_data, self._local_params())

    def _ticket_app_data(self) -> bytes:
        """What a session ticket remembers for 0-RTT: our transport parameters (RFC 9000 §7.4.1)."""
        return encode_transport_parameters(self._local_params())

    def _on_early_data_rejected(self, now: float) -> None:
        """RFC 9001 §4.6.2: rejected 0-RTT data is resent in 1-RTT packets."""
        self._packer.keys.pop(_LEVEL_ZERO_RTT, None)
        for packet in self._sph.drop_0rtt_packets(now):
            self._requeue_frames(packet, crypto_too=False)

    def _confirm_handshake(self, now: float) -> None:
        if self._handshake_confirmed:
            return
        self._handshake_confirmed = True
        if self._tracer is not None:
            self._tracer.updated_state("handshake_complete", "handshake_confirmed")
        self._sph.set_handshake_confirmed(now)
        # RFC 9001 §4.9.2: Handshake keys are discarded once the handshake is confirmed.
        self._discard_space(_SPACE_INITIAL)
        self._discard_space(_SPACE_HANDSHAKE)
        self._unpacker.drop_keys(_LEVEL_ZERO_RTT)
        self._on_confirmed_path(now)
        if not self._is_client:
            self._conn_ids_ours.drop_initial_client_dcid()
        self._flush_cid_frames()

    # -- packet-level handshake rules ------------------------------------------------------------

    def _on_first_packet_of_level(self, pkt: UnpackedPacket, now: float) -> None:
        if self._handshake_confirmed:
            return  # every rule below is about the handshake (called for each packet)
        self._received_any = True
        if not self._peer_cid_known and pkt.packet_type in (_PTYPE_INITIAL, _PTYPE_HANDSHAKE):
            # RFC 9000 §7.2: use the peer's chosen SCID as DCID from now on.
            self._peer_cid_known = True
            self._peer_initial_scid = pkt.scid
            self._conn_ids_peer.change_initial_dcid(pkt.scid)
            self._packer.dcid = pkt.scid
        if pkt.level == _LEVEL_HANDSHAKE and not self._is_client:
            # RFC 9000 §8.1: a Handshake packet from the client validates its address; RFC 9001
            # §4.9.1: the server discards Initial keys when it first processes one.
            self._sph.set_peer_validated_address(now)
            self._discard_space(_SPACE_INITIAL)

    def _on_packet_processed(self, pkt: UnpackedPacket, now: float) -> None:
        self._last_received = now
        self._first_eliciting_after_receive = None

    def _set_max_datagram_size(self, size: int) -> None:
        """Overridden by the path mixin (congestion controller and datagram queue follow)."""
        self._max_datagram_size = size

    def _on_peer_path_params(self, params: TransportParameters) -> None:
        """Overridden by the path mixin (max_udp_payload_size, disable_active_migration)."""

    def _on_confirmed_path(self, now: float) -> None:
        """Overridden by the path mixin (migration allowed and PMTUD from confirmation on)."""

    def _on_peer_preferred_address(self, params: TransportParameters) -> None:
        """Overridden by the path mixin (the server's preferred_address, RFC 9000 §9.6)."""

    def _send_levels(self) -> tuple[EncryptionLevel, ...]:
        packer = self._packer
        levels: list[EncryptionLevel] = []
        if _LEVEL_INITIAL in packer.keys:
            levels.append(_LEVEL_INITIAL)
        if _LEVEL_HANDSHAKE in packer.keys:
            levels.append(_LEVEL_HANDSHAKE)
        if packer.one_rtt is not None:
            levels.append(_LEVEL_ONE_RTT)
        elif _LEVEL_ZERO_RTT in packer.keys:
            levels.append(_LEVEL_ZERO_RTT)
        return tuple(levels)

    def _long_header_version_ok(self, buf: bytearray, pos: int) -> bool:
        version = int.from_bytes(buf[pos + 1 : pos + 5], "big") if len(buf) >= pos + 5 else -1
        if version == self._version:
            return True
        if self._is_client and not self._received_any and version in self._config.versions:
            # RFC 9368 §2.3: compatible version negotiation, the server answered in another version
            # we offered; follow it (the Initial keys are re-derived from the original DCID).
            self._version = version
            self._packer.version = version
            self._install_initial_keys(self._retry_dcid_or_original())
            return True
        return False

    def _retry_dcid_or_original(self) -> bytes:
        return self._retry_scid if self._retry_scid is not None else self._original_dcid

    def _handle_special_long_header(self, data: bytes | memoryview, now: float) -> bool:
        """Version Negotiation and Retry packets (never coalesced). True if ``data`` was one of them."""
        if len(data) < 7:
            return False
        version = int.from_bytes(data[1:5], "big")
        if version == 0:
            if self._is_client:
                self._on_version_negotiation(bytes(data), now)
            else:
                self._trace_drop(None, len(data), DropReason.UNEXPECTED_PACKET)
            return True
        if version != self._version and version not in self._config.versions:
            return False
        try:
            ptype = packet_type_from_bits(version, (data[0] >> 4) & 0x03)
        except (TransportError, ValueError):
            return False
        if ptype != _PTYPE_RETRY:
            return False
        if self._is_client:
            self._on_retry(bytes(data), now)
        else:
            self._trace_drop(_PTYPE_RETRY, len(data), DropReason.UNEXPECTED_PACKET)
        return True

    def _choose_version_from_client_hello(self, data: bytes) -> bytes:
        """Server, RFC 9368 §2.3 compatible version negotiation: buffer the first CRYPTO bytes until
        the ClientHello is complete, then answer in the version we prefer among those the client's
        version_information lists (v1 and v2 are compatible, RFC 9369 §4). Returns the bytes to give
        TLS now (b"" while the ClientHello is incomplete)."""
        buf = self._client_hello
        buf += data
        if len(buf) < 4:
            return b""
        length = int.from_bytes(buf[1:4], "big")
        if len(buf) < 4 + length and len(buf) < MAX_CRYPTO_BUFFER:
            return b""
        self._version_decided = True
        out = bytes(buf)
        buf.clear()
        if out[0] != _CLIENT_HELLO or len(out) < 4 + length:
            return out  # not a ClientHello we can read: TLS reports the error
        try:
            hello = parse_untrusted_client_hello(memoryview(out)[4 : 4 + length])
            if hello.transport_parameters is None:
                return out
            params = parse_transport_parameters(hello.transport_parameters, _PERSPECTIVE_CLIENT)
        except (TransportError, ValueError):
            return out  # TLS will parse it again and close with the right error
        info = params.version_information
        if info is None or info.chosen_version != self._version:
            return out
        for version in self._config.versions:
            if version == self._version:
                break
            if version in info.available_versions:
                self._client_version = self._version
                # Switch before anything is sent: our Initial packets and transport parameters
                # (version_information.chosen_version) carry the new version.
                self._version = version
                self._packer.version = version
                self._install_initial_keys(self._initial_dcid)
                self._tls.set_transport_parameters(encode_transport_parameters(self._local_params()))
                if self._tracer is not None:
                    self._tracer.negotiated_version(version, info.available_versions, self._config.versions)
                break
        return out

    def _on_version_negotiation(self, data: bytes, now: float) -> None:
        # RFC 9000 §6.2: a client that has processed any packet from the server, or already reacted
        # to a Version Negotiation packet, MUST discard one.
        if self._received_any or self._vn_done:
            self._trace_drop(_PTYPE_VERSION_NEGOTIATION, len(data), DropReason.UNEXPECTED_PACKET)
            return
        try:
            dcid, scid, versions = parse_version_negotiation(data)
        except TransportError:
            self._trace_drop(_PTYPE_VERSION_NEGOTIATION, len(data), DropReason.HEADER_PARSE_ERROR)
            return
        # RFC 9000 §6.2: a VN packet listing the version we chose is discarded (and the CIDs must echo ours).
        if self._version in versions or dcid != self._host_cid or scid != self._original_dcid:
            self._trace_drop(_PTYPE_VERSION_NEGOTIATION, len(data), DropReason.UNEXPECTED_PACKET)
            return
        common = [v for v in self._config.versions if v in versions]
        if not common:
            # RFC 9368 §4: no common version, the attempt fails with both version lists.
            self._terminate(VersionNegotiationError(list(self._config.versions), list(versions)))
            return
        # RFC 9368 §4: incompatible version negotiation, start over in the version both support.
        self._version = common[0]
        self._packer.version = common[0]
        self._install_initial_keys(self._original_dcid)
        self._sph.reset_for_retry(now)
        self._spaces[_SPACE_INITIAL].crypto = CryptoStream()
        self._packer.keys.pop(_LEVEL_ZERO_RTT, None)
        self._vn_done = True
        self._create_tls(now)
        self._tls.start()
        self._drain_tls(now)

    def _on_retry(self, data: bytes, now: float) -> None:
        # RFC 9000 §17.2.5.2: only one Retry, and only before any other packet from the server.
        if self._received_any or self._retry_scid is not None:
            self._trace_drop(_PTYPE_RETRY, len(data), DropReason.UNEXPECTED_PACKET)
            return
        try:
            version, _dcid, scid, token, tag = parse_retry(data)
        except TransportError:
            self._trace_drop(_PTYPE_RETRY, len(data), DropReason.HEADER_PARSE_ERROR)
            return
        pseudo = retry_pseudo_packet(self._original_dcid, data[:-16])
        # RFC 9001 §5.8: a Retry whose integrity tag does not verify MUST be discarded; RFC 9000
        # §17.2.5.2: so must one with an empty token or an SCID equal to our DCID.
        if (
            version != self._version
            or not token
            or scid == self._original_dcid
            or not retry_integrity_valid(version, pseudo, tag)
        ):
            self._trace_drop(_PTYPE_RETRY, len(data), DropReason.UNEXPECTED_PACKET)
            return
        self._retry_scid = scid
        self._conn_ids_peer.change_initial_dcid(scid)
        self._packer.dcid = scid
        self._packer.token = token
        self._install_initial_keys(scid)
        # Everything sent so far is void; the ClientHello goes again in the new Initial.
        for packet in self._sph.reset_for_retry(now):
            self._requeue_frames(packet, crypto_too=True)
        self._spaces[_SPACE_INITIAL].crypto.queue_probe()
