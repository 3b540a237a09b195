"""The server side of a Transport: new connections, address validation, accept queue (quic-go ``server.go``).

Packets for unknown connection IDs with a long header reach ``Server.handle_packet``, which only
enqueues them: the receive queue holds 1,024 packets (quic-go's ``protocol.MaxServerUnprocessedPackets``);
beyond that a packet is dropped and traced as DoS prevention, so a flood of Initials costs a
``deque.append`` each, not a TLS handshake. The queue is worked off in slices of a few packets per
event-loop iteration (``call_soon``), in between socket reads.

Each queued packet goes through quic-go's ``handlePacketImpl`` checks, in order (DESIGN.md §6):
Version Negotiation packets dropped; unsupported version → Version Negotiation (RFC 9000 §6.1), unless
disabled or the datagram is under 1,200 bytes; 0-RTT without ``listen_early`` dropped, with it buffered
for up to 100 ms until its Initial arrives; Initials in datagrams under 1,200 bytes dropped (RFC 9000
§14.1); other long headers dropped; token-less Initials with a DCID under 8 bytes dropped (§7.2).
Then tokens (§8.1): a Retry token must be valid or the client gets INVALID_TOKEN (§8.1.2); an invalid
NEW_TOKEN token is ignored (§8.1.3). An unvalidated client gets a Retry when
``verify_source_address(addr)`` says so (default: more than half the handshake slots are in use).
After the handshake the core sends a NEW_TOKEN token (§8.1.3) minted here.

Connections enter the accept queue (32) when their handshake completes (``listen``) or at once
(``listen_early``); a full queue refuses with CONNECTION_REFUSED after the handshake.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .api_connection import Connection
from .config import Config, preferred_address_pair
from .errors import ConfigError, QuicError, TransportErrorCode
from .handshake.protection import (
    DecryptionError,
    initial_keys,
    protect_packet,
    retry_integrity_tag,
    unprotect_header,
    unprotect_payload,
)
from .handshake.tls.groups import replenish_key_spares
from .handshake.tokens import Token, TokenProtector
from .protocol import MIN_INITIAL_PACKET_SIZE, Perspective, is_reserved_version
from .qlog.tracer import DropReason
from .sys import Address, PacketInfo
from .wire.frames import ConnectionCloseFrame
from .wire.header import (
    InvariantHeader,
    PacketType,
    build_long_header,
    build_retry_without_tag,
    build_version_negotiation,
    parse_long_header,
    retry_pseudo_packet,
)

if TYPE_CHECKING:
    from .handshake.tls import TLSConfig
    from .transport import PacketHandler, Transport

__all__ = ["Server", "ServerClosedError"]

logger = logging.getLogger("quicsilver.server")

RECEIVE_QUEUE_SIZE = 1024  # quic-go protocol.MaxServerUnprocessedPackets
ACCEPT_QUEUE_SIZE = 32  # quic-go protocol.MaxAcceptQueueSize
PACKETS_PER_SLICE = 16  # queued packets handled per event-loop iteration
ZERO_RTT_QUEUES = 32  # quic-go protocol.Max0RTTQueues
ZERO_RTT_QUEUE_LENGTH = 31  # quic-go protocol.Max0RTTQueueLen
ZERO_RTT_QUEUE_TIMEOUT = 0.1  # seconds; quic-go protocol.Max0RTTQueueingDuration
MIN_CLIENT_DCID_LENGTH = 8  # RFC 9000 §7.2


class ServerClosedError(QuicError):
    """The listener was closed (quic-go ``ErrServerClosed``)."""

    def __init__(self) -> None:
        super().__init__("the listener was closed")


_QueuedPacket = tuple["bytes | memoryview", Address, int, "PacketInfo | None", InvariantHeader]


class Server:
    """Accepts connections on a Transport; the Listener / EarlyListener are its public face."""

    def __init__(
        self,
        transport: Transport,
        loop: asyncio.AbstractEventLoop,
        tls_config: TLSConfig,
        config: Config,
        *,
        early: bool,
        preferred: Transport | None = None,
        owns_preferred: bool = False,
    ) -> None:
        tls_config.check_server()  # ConfigError naming the missing certificate, at the listen call
        config = _check_preferred_address(transport, config, preferred, loop)
        from .core.connection import QuicConnection  # loaded now, not during the first handshake

        self._core_class = QuicConnection
        self.transport = transport
        self.loop = loop
        self.tls_config = tls_config
        # RFC 9000 §9.6: the ``preferred`` Transport (a second socket of this process) receives and
        # sends for our connections once their clients move to its address.
        self.preferred = preferred
        self._owns_preferred = owns_preferred
        self.config = config
        self.early = early
        self.accept_0rtt = early and config.allow_0rtt
        self._tokens = TokenProtector(transport.token_key)
        self._queue: deque[_QueuedPacket] = deque()
        # Connections that received packets in the current slice of the queue, flushed once at its
        # end: a ClientHello in two datagrams gets one answer, not an ACK first and the flight after.
        self._touched: dict[PacketHandler, None] = {}
        self._new_early: list[Connection] = []
        self._scheduled = False
        self._handshaking: set[Connection] = set()
        self._accept_queue: deque[Connection] = deque()
        self._accept_waiters: list[asyncio.Future[None]] = []
        self._zero_rtt: dict[bytes, tuple[float, list[_QueuedPacket]]] = {}
        self._closed = False

    # --- receive queue -----------------------------------------------------------------------------

    def handle_packet(
        self,
        data: bytes | memoryview,
        addr: Address,
        ecn: int,
        pktinfo: PacketInfo | None,
        header: InvariantHeader,
        now: float,
    ) -> None:
        """Enqueue a packet for an unknown connection ID; drop it (traced) when the queue is full."""
        if len(self._queue) >= RECEIVE_QUEUE_SIZE:
            self.transport.counters.dropped_dos += 1
            tracer = self.transport.tracer
            if tracer is not None:
                tracer.dropped_packet(addr, "long", len(data), DropReason.DOS_PREVENTION)
            return
        self._queue.append((data, addr, ecn, pktinfo, header))

    def after_batch(self, now: float) -> None:
        if self._queue and not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        if self._closed:
            self._queue.clear()
            return
        queue = self._queue
        now = self.loop.time()
        for _ in range(min(PACKETS_PER_SLICE, len(queue))):
            item = queue.popleft()
            try:
                self._process(*item, now)
            except Exception:
                # a bug while handling one packet must not stall the listener: log, drop, go on
                logger.exception("dropping a packet from %s after an internal error", item[1])
        touched = self._touched
        if touched:
            for handler in list(touched):
                handler.flush(now)
            touched.clear()
        if self._new_early:
            for conn in self._new_early:
                if conn.error is None:
                    self._enqueue_accept(conn)
            self._new_early.clear()
        self.transport.flush_sends()
        # the flights are out: make the next handshakes' ephemeral keys while the clients answer
        replenish_key_spares(now)
        if queue:
            self._scheduled = True
            self.loop.call_soon(self._run)

    # --- drop rules, VN, tokens, Retry -------------------------------------------------------------

    def _drop(self, addr: Address, packet_type: str, size: int, reason: str) -> None:
        self.transport.counters.dropped_unroutable += 1
        tracer = self.transport.tracer
        if tracer is not None:
            tracer.dropped_packet(addr, packet_type, size, reason)

    def _process(
        self,
        data: bytes | memoryview,
        addr: Address,
        ecn: int,
        pktinfo: PacketInfo | None,
        header: InvariantHeader,
        now: float,
    ) -> None:
        transport = self.transport
        # A retransmitted Initial may have been queued before its first copy created the connection.
        handler = transport.handler_for(header.dcid)
        if handler is not None:
            handler.handle_datagram(data, addr, ecn, pktinfo, now)
            self._touched[handler] = None
            return
        size = len(data)
        version = header.version
        if version == 0:
            self._drop(addr, "version_negotiation", size, DropReason.UNEXPECTED_PACKET)
            return
        if version not in self.config.versions:
            # RFC 9000 §6.1 / §14.1: answer only datagrams large enough to be a client's first flight.
            if transport.disable_version_negotiation_packets or size < MIN_INITIAL_PACKET_SIZE:
                self._drop(addr, "unknown", size, DropReason.UNSUPPORTED_VERSION)
                return
            self._send_version_negotiation(header, addr, pktinfo)
            return
        try:
            long_header = parse_long_header(data, 0)
        except QuicError:
            self._drop(addr, "unknown", size, DropReason.HEADER_PARSE_ERROR)
            return
        packet_type = long_header.packet_type
        if packet_type == PacketType.ZERO_RTT:
            if not self.accept_0rtt:
                self._drop(addr, "0RTT", size, DropReason.UNEXPECTED_PACKET)
            else:
                self._queue_0rtt(data, addr, ecn, pktinfo, header, now)
            return
        if packet_type != PacketType.INITIAL:
            self._drop(addr, packet_type.name, size, DropReason.UNEXPECTED_PACKET)
            return
        if size < MIN_INITIAL_PACKET_SIZE:
            # RFC 9000 §14.1: "A server MUST discard an Initial packet that is carried in a UDP
            # datagram with a payload that is smaller than the smallest allowed maximum datagram size".
            self._drop(addr, "initial", size, DropReason.TOO_SMALL)
            return
        token = long_header.token
        if not token and len(header.dcid) < MIN_CLIENT_DCID_LENGTH:
            # RFC 9000 §7.2: a client's first Destination Connection ID is at least 8 bytes.
            self._drop(addr, "initial", size, DropReason.UNEXPECTED_PACKET)
            return
        original_dcid = header.dcid
        retry_scid: bytes | None = None
        validated = False
        if token:
            wall = time.time()
            parsed = self._tokens.open_token(token)
            if parsed is not None and parsed.is_retry:
                valid = (
                    parsed.version == version
                    and parsed.matches_address(addr)
                    and parsed.is_valid(wall, self.config.max_retry_token_age)
                    and parsed.retry_scid == header.dcid
                )
                if not valid:
                    # RFC 9000 §8.1.2: an invalid Retry token gets a CONNECTION_CLOSE with INVALID_TOKEN.
                    self._refuse(
                        header, version, addr, pktinfo, TransportErrorCode.INVALID_TOKEN, "invalid token"
                    )
                    return
                validated = True
                original_dcid = parsed.original_dcid
                retry_scid = parsed.retry_scid
            elif parsed is not None:
                # RFC 9000 §8.1.3: a NEW_TOKEN token that fails validation is ignored, as if absent.
                validated = (
                    parsed.version == version
                    and parsed.matches_address(addr)
                    and parsed.is_valid(wall, self.config.max_token_age)
                )
            if not validated and len(header.dcid) < MIN_CLIENT_DCID_LENGTH:
                self._drop(addr, "initial", size, DropReason.INVALID_TOKEN)
                return
        if not validated:
            if self._should_retry(addr):
                self._send_retry(header, version, addr, pktinfo)
                return
            if len(self._handshaking) >= transport.max_unvalidated_handshakes:
                # Only a policy that never asks for Retry gets here: the slots for clients whose
                # address is unproven are full.
                code = TransportErrorCode.CONNECTION_REFUSED
                self._refuse(header, version, addr, pktinfo, code, "busy")
                return
        if not self._initial_decrypts(
            data, long_header.pn_offset, long_header.packet_end, version, header.dcid
        ):
            # A forged or corrupted Initial: nothing is worth a connection (and its TLS state).
            self._drop(addr, "initial", size, DropReason.PAYLOAD_DECRYPT_ERROR)
            return
        self._new_connection(data, addr, ecn, pktinfo, header, version, original_dcid, retry_scid, now)

    @staticmethod
    def _initial_decrypts(
        data: bytes | memoryview, pn_offset: int, packet_end: int, version: int, dcid: bytes
    ) -> bool:
        """Whether the datagram's first packet opens with the Initial keys of ``dcid`` (RFC 9001 §5.2).

        Cheap next to a connection: one HKDF derivation and one AEAD open of about 1200 bytes.
        A client's first packet numbers are small, so the truncated number is the full one.
        """
        _, open_keys = initial_keys(version, dcid, Perspective.SERVER)
        packet = bytearray(data[:packet_end])
        try:
            _, pn, pn_len = unprotect_header(open_keys, packet, pn_offset)
            unprotect_payload(open_keys, packet, pn_offset, pn_len, pn)
        except DecryptionError:
            return False
        return True

    def _should_retry(self, addr: Address) -> bool:
        policy = self.transport.verify_source_address
        if policy is not None:
            return bool(policy(addr))
        # quic-go: without a policy, demand address validation only when under load.
        return len(self._handshaking) > self.transport.max_unvalidated_handshakes // 2

    def _send_version_negotiation(
        self, header: InvariantHeader, addr: Address, pktinfo: PacketInfo | None
    ) -> None:
        versions = list(self.config.versions)
        # RFC 9000 §6.3: greasing with a reserved version keeps clients' VN handling honest.
        grease = int.from_bytes(os.urandom(4), "big") & 0xF0F0F0F0 | 0x0A0A0A0A
        if is_reserved_version(grease):
            versions.append(grease)
        packet = build_version_negotiation(header.scid, header.dcid, versions)
        self.transport.counters.version_negotiations_sent += 1
        tracer = self.transport.tracer
        if tracer is not None:
            tracer.sent_version_negotiation_packet(addr, header.scid, header.dcid, versions)
        self.transport.enqueue([(packet, addr, 0, pktinfo)])

    def _send_retry(
        self, header: InvariantHeader, version: int, addr: Address, pktinfo: PacketInfo | None
    ) -> None:
        retry_scid = os.urandom(max(self.transport.connection_id_length, 8))
        token = self._tokens.seal_token(Token.for_retry(addr, header.dcid, retry_scid, version, time.time()))
        packet = build_retry_without_tag(version, header.scid, retry_scid, token)
        packet += retry_integrity_tag(version, retry_pseudo_packet(header.dcid, packet))
        self.transport.counters.retries_sent += 1
        tracer = self.transport.tracer
        if tracer is not None:
            tracer.sent_packet(addr, "retry", len(packet), None)
        self.transport.enqueue([(packet, addr, 0, pktinfo)])

    def _refuse(
        self,
        header: InvariantHeader,
        version: int,
        addr: Address,
        pktinfo: PacketInfo | None,
        code: int,
        reason: str,
    ) -> None:
        """An Initial carrying CONNECTION_CLOSE, protected with the client's Initial keys (RFC 9001 §5.2)."""
        seal, _ = initial_keys(version, header.dcid, Perspective.SERVER)
        payload = bytearray()
        ConnectionCloseFrame(code, 0, reason.encode(), False).append(payload)
        pn_len = 2
        buf = bytearray()
        length = pn_len + len(payload) + 16  # AEAD tag
        pn_offset = build_long_header(
            buf, version, PacketType.INITIAL, header.scid, header.dcid, b"", length, 0, pn_len
        )
        packet = protect_packet(seal, buf, pn_offset, pn_len, 0, payload)
        self.transport.counters.refused += 1
        tracer = self.transport.tracer
        if tracer is not None:
            tracer.sent_packet(addr, "initial", len(packet), [f"connection_close({code:#x})"])
        self.transport.enqueue([(packet, addr, 0, pktinfo)])

    # --- 0-RTT queue -------------------------------------------------------------------------------

    def _queue_0rtt(
        self,
        data: bytes | memoryview,
        addr: Address,
        ecn: int,
        pktinfo: PacketInfo | None,
        header: InvariantHeader,
        now: float,
    ) -> None:
        entry = self._zero_rtt.get(header.dcid)
        if entry is None:
            if len(self._zero_rtt) >= ZERO_RTT_QUEUES:
                self._expire_0rtt(now)
                if len(self._zero_rtt) >= ZERO_RTT_QUEUES:
                    self._drop(addr, "0RTT", len(data), DropReason.DOS_PREVENTION)
                    return
            entry = (now + ZERO_RTT_QUEUE_TIMEOUT, [])
            self._zero_rtt[header.dcid] = entry
            self.loop.call_at(entry[0], self._expire_0rtt_at, header.dcid, entry[0])
        packets = entry[1]
        if len(packets) >= ZERO_RTT_QUEUE_LENGTH:
            self._drop(addr, "0RTT", len(data), DropReason.DOS_PREVENTION)
            return
        packets.append((data, addr, ecn, pktinfo, header))

    def _expire_0rtt(self, now: float) -> None:
        for dcid in [d for d, (deadline, _) in self._zero_rtt.items() if deadline <= now]:
            del self._zero_rtt[dcid]

    def _expire_0rtt_at(self, dcid: bytes, deadline: float) -> None:
        entry = self._zero_rtt.get(dcid)
        if entry is not None and entry[0] == deadline:
            del self._zero_rtt[dcid]
            for data, addr, _, _, _ in entry[1]:
                self._drop(addr, "0RTT", len(data), DropReason.UNKNOWN_CONNECTION_ID)

    # --- connections -------------------------------------------------------------------------------

    def _new_connection(
        self,
        data: bytes | memoryview,
        addr: Address,
        ecn: int,
        pktinfo: PacketInfo | None,
        header: InvariantHeader,
        version: int,
        original_dcid: bytes,
        retry_scid: bytes | None,
        now: float,
    ) -> None:
        transport = self.transport
        try:
            core = self._core_class(
                self.config,
                self.tls_config,
                is_client=False,
                original_destination_connection_id=original_dcid,
                retry_source_connection_id=retry_scid,
                client_initial_dcid=header.dcid,
                connection_id_generator=transport.connection_id_generator,
                stateless_reset_key=transport.stateless_reset_key,
                version=version,
                new_token_provider=lambda peer: self._new_token_for(peer, version),
            )
        except QuicError as exc:
            logger.warning("could not create a server connection: %s", exc)
            return
        conn = Connection(
            transport,
            core,
            is_client=False,
            remote_addr=addr,
            initial_cids=[header.dcid, core.host_cid],
        )
        if self.preferred is not None:
            conn.add_preferred_transport(self.preferred)
        self._handshaking.add(conn)
        conn.on_handshake_completed = self._on_handshake_completed
        conn.on_closed = self._on_connection_closed
        conn.handle_datagram(data, addr, ecn, pktinfo, now)
        queued = self._zero_rtt.pop(header.dcid, None)
        if queued is not None:
            for item in queued[1]:
                conn.handle_datagram(item[0], item[1], item[2], item[3], now)
        self._touched[conn] = None
        if self.early:
            self._new_early.append(conn)  # offered to accept() once flushed, unless that failed it

    def _new_token_for(self, peer: Any, version: int) -> bytes | None:
        try:
            return self._tokens.seal_token(Token.for_new_token(peer, version, time.time()))
        except (ValueError, TypeError, IndexError):
            return None

    def _on_handshake_completed(self, conn: Connection) -> None:
        self._handshaking.discard(conn)
        if not self.early:
            self._enqueue_accept(conn)

    def _on_connection_closed(self, conn: Connection) -> None:
        self._handshaking.discard(conn)
        if conn in self._accept_queue:
            self._accept_queue.remove(conn)

    def _enqueue_accept(self, conn: Connection) -> None:
        if self._closed:
            conn.close_with_transport_error(TransportErrorCode.CONNECTION_REFUSED, "server closed")
            return
        if len(self._accept_queue) >= ACCEPT_QUEUE_SIZE:
            # DESIGN.md §6: the handshake has completed; refuse it now that nobody can take it.
            self.transport.counters.refused += 1
            conn.close_with_transport_error(TransportErrorCode.CONNECTION_REFUSED, "accept queue full")
            return
        self._accept_queue.append(conn)
        for fut in self._accept_waiters:
            if not fut.done():
                fut.set_result(None)
        self._accept_waiters.clear()

    async def accept(self) -> Connection:
        """The next connection; ServerClosedError once closed and the queue is empty."""
        while True:
            if self._accept_queue:
                return self._accept_queue.popleft()
            if self._closed:
                raise ServerClosedError()
            fut: asyncio.Future[None] = self.loop.create_future()
            self._accept_waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._accept_waiters:
                    self._accept_waiters.remove(fut)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop accepting: handshakes in flight are refused (CONNECTION_REFUSED); accepted ones live on."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._zero_rtt.clear()
        for conn in list(self._handshaking):
            conn.close_with_transport_error(TransportErrorCode.CONNECTION_REFUSED, "server closed")
        self._handshaking.clear()
        for fut in self._accept_waiters:
            if not fut.done():
                fut.set_result(None)
        self._accept_waiters.clear()
        self.transport.server_closed(self)
        if self.preferred is not None and self._owns_preferred:
            self.preferred.close()  # listen_addr(preferred_addr=...) bound it for this listener


def _check_preferred_address(
    transport: Transport, config: Config, preferred: Transport | None, loop: asyncio.AbstractEventLoop
) -> Config:
    """The Config whose ``preferred_address`` the core advertises (RFC 9000 §9.6, §18.2): the one it
    names, else the ``preferred`` Transport's own address. Raises ValueError / ConfigError, at the
    listen call, for a combination that cannot work."""
    if preferred is not None:
        if preferred is transport:
            raise ValueError(
                "preferred must be a second Transport (another socket), not the listener's own Transport"
            )
        if preferred.closed:
            raise ValueError("the preferred Transport is closed")
        if preferred.connection_id_length != transport.connection_id_length:
            # It routes our short-header packets by DCID, so it must cut them at our CID length.
            raise ValueError(
                f"the preferred Transport uses {preferred.connection_id_length}-byte connection IDs and "
                f"the listener's {transport.connection_id_length}-byte ones; create both with the same "
                "connection_id_length"
            )
        if preferred.single_use:
            raise ValueError(
                "the preferred Transport closes itself with its own listener or dial; "
                "pass a Transport() you own"
            )
    if config.preferred_address is None and preferred is not None:
        host, port = str(preferred.local_addr[0]), int(preferred.local_addr[1])
        ip = ipaddress.ip_address(host)
        if ip.is_unspecified:
            raise ConfigError(
                "preferred_address",
                f"the preferred Transport is bound to the wildcard address {host}, which clients cannot "
                "move to: bind it to a specific address, or set Config.preferred_address to the address "
                "clients should use",
            )
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            advertised = f"{ip.ipv4_mapped}:{port}"
        elif isinstance(ip, ipaddress.IPv6Address):
            advertised = f"[{ip}]:{port}"
        else:
            advertised = f"{ip}:{port}"
        config = dataclasses.replace(config, preferred_address=advertised)
        preferred_address_pair(config)  # e.g. a scoped link-local address: ConfigError naming the field
    if config.preferred_address is not None:
        refuse_preferred_without_cids(transport, "preferred_address")
    if preferred is not None:
        try:
            started = preferred._start()  # its receive loop now runs on this event loop
        except RuntimeError:
            started = None
        if started is not loop:
            raise ValueError("the preferred Transport already runs on another event loop than the listener")
    return config


def refuse_preferred_without_cids(transport: Transport, field: str) -> None:
    """RFC 9000 §18.2: "A server that chooses a zero-length connection ID MUST NOT provide a preferred
    address": ConfigError naming ``field`` (the argument the caller gave) for such a listener."""
    if transport.connection_id_length == 0:
        raise ConfigError(
            field,
            "a listener with zero-length connection IDs cannot offer a preferred address (RFC 9000 "
            "§18.2); use connection_id_length >= 1",
        )
