"""Transport: the owner of one UDP socket and everything multiplexed on it (quic-go ``transport.go``).

One Transport per local address (see :mod:`quicsilver.multiplexer`). It

- receives from the event loop's reader callback (no task switch per packet), drains the socket in
  batches with ``PacketConn.read_batch()``, parses only the RFC 8999 invariant header and routes by
  destination connection ID through the packet-handler map; every connection touched by a batch is
  flushed once after it, so ACKs and replies of a whole batch leave together;
- sends through one send queue (a deque) flushed with ``write_batch()`` (GSO); on EAGAIN the
  socket's writer callback resumes the flush and connections waiting for room are woken;
- keeps retired and closed connection IDs for 5 s (RFC 9000 §10.2: a closed connection answers
  with its CONNECTION_CLOSE, at a decreasing rate, instead of a stateless reset);
- answers short-header packets for unknown connection IDs with a stateless reset (RFC 9000 §10.3),
  rate limited, always smaller than the packet that triggered it (§10.3.3), never for packets of
  42 bytes or less (a reset of a reset would have to be smaller still);
- hands unknown long-header packets to its server (:mod:`quicsilver.server`) if it listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .config import Config
from .core.connection_ids import (
    ConnectionIDGenerator,
    RandomConnectionIDGenerator,
    stateless_reset_token,
)
from .errors import TransportError
from .multiplexer import format_address, register, unregister
from .protocol import MAX_CONNECTION_ID_LENGTH, MIN_STATELESS_RESET_SIZE, STATELESS_RESET_TOKEN_LENGTH
from .qlog.tracer import DropReason, Tracer
from .sys import Address, OutgoingDatagram, PacketConn, PacketInfo, ReceivedDatagram, wrap_conn
from .wire.header import InvariantHeader, parse_invariant_header

if TYPE_CHECKING:
    from .api_connection import Connection
    from .handshake.tls import TLSConfig
    from .listener import EarlyListener, Listener
    from .server import Server

__all__ = ["PacketHandler", "Transport", "TransportStats", "parse_address"]

logger = logging.getLogger("quicsilver.transport")

CLOSED_CID_LINGER = 5.0  # seconds a retired / closed connection ID keeps routing (quic-go: 5 s)
SEND_QUEUE_SOFT_LIMIT = 1024  # datagrams; connections stop producing above it until the socket drains
MIN_PACKET_FOR_RESET = 43  # DESIGN.md §6: stateless reset only for packets > 42 bytes
STATELESS_RESET_BUDGET = 64  # resets per second (a token bucket), quic-go bounds its queue instead


class PacketHandler(Protocol):
    """What the packet-handler map routes to: a connection, or a closed connection's remains."""

    def handle_datagram(
        self, data: bytes | memoryview, addr: Address, ecn: int, pktinfo: PacketInfo | None, now: float
    ) -> None:
        """One datagram whose first packet carries one of this handler's connection IDs."""

    def handle_datagrams(self, items: list[ReceivedDatagram], now: float) -> None:
        """Consecutive datagrams of one receive batch, all routed to this handler, in order."""

    def flush(self, now: float) -> None:
        """Called once after each receive batch that reached this handler: send what is due."""


@dataclass
class TransportStats:
    """Counters of one Transport (what reached no connection, and why)."""

    datagrams_received: int = 0
    datagrams_sent: int = 0
    dropped_dos: int = 0
    """Datagrams dropped because the server's receive queue (1024) was full (DoS prevention)."""
    dropped_unroutable: int = 0
    """Datagrams dropped before reaching a connection for any other reason."""
    stateless_resets_sent: int = 0
    version_negotiations_sent: int = 0
    retries_sent: int = 0
    refused: int = 0
    """Connections refused (accept queue full, too many handshakes, invalid Retry token)."""


class PerDatagramHandler(ABC):
    """Base of the packet handlers that take a receive batch one datagram at a time."""

    __slots__ = ()

    @abstractmethod
    def handle_datagram(
        self, data: bytes | memoryview, addr: Address, ecn: int, pktinfo: PacketInfo | None, now: float
    ) -> None:
        """One datagram, as ``PacketHandler.handle_datagram``."""

    def handle_datagrams(self, items: list[ReceivedDatagram], now: float) -> None:
        for data, addr, ecn, pktinfo in items:
            self.handle_datagram(data, addr, ecn, pktinfo, now)


class _ClosedHandler(PerDatagramHandler):
    """A closed connection's CIDs: resend its CONNECTION_CLOSE on the 1st, 2nd, 4th, 8th... packet
    (quic-go ``closedLocalConn``), or silently drop when the peer closed (draining, §10.2.2)."""

    __slots__ = ("_close_datagrams", "_count", "_transport")

    def __init__(self, transport: Transport, close_datagrams: list[OutgoingDatagram]) -> None:
        self._transport = transport
        self._close_datagrams = close_datagrams
        self._count = 0

    def handle_datagram(
        self, data: bytes | memoryview, addr: Address, ecn: int, pktinfo: PacketInfo | None, now: float
    ) -> None:
        if not self._close_datagrams:
            return
        self._count += 1
        if self._count & (self._count - 1) == 0:  # a power of two
            self._transport.enqueue(self._close_datagrams)

    def flush(self, now: float) -> None:
        return


class _StrongRef:
    """``weakref.ref``'s call interface over a strong reference."""

    __slots__ = ("_obj",)

    def __init__(self, obj: PacketHandler) -> None:
        self._obj = obj

    def __call__(self) -> PacketHandler:
        return self._obj


def _literal_family(host: str) -> int | None:
    """AF_INET or AF_INET6 for an IP literal without a scope ID, else None (names, scoped IPv6)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)  # a fraction of ipaddress's cost, once or twice per dial
        except (OSError, ValueError):
            continue
        return family
    return None


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (with or without a scope ID) rather than a name."""
    return _literal_family(host.split("%", 1)[0]) is not None


def parse_address(addr: str | tuple[Any, ...], *, for_dial: bool = False) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"``, ``":port"`` or ``(host, port)`` → ``(host, port)``.

    Raises ValueError naming the problem: no port, a port that is not a number or out of range
    (1..65535 when dialling, 0..65535 when binding), an empty host when dialling.
    """
    if isinstance(addr, tuple):
        if len(addr) < 2:
            raise ValueError(f"address {addr!r} must be (host, port)")
        host, port_value = str(addr[0]), addr[1]
        if isinstance(port_value, bool) or not isinstance(port_value, int):
            raise ValueError(f"port in {addr!r} must be an integer")
        port = port_value
    elif isinstance(addr, str):
        if addr.startswith("["):
            end = addr.find("]")
            if end < 0 or not addr[end + 1 :].startswith(":"):
                raise ValueError(f"address {addr!r} must look like [host]:port")
            host, port_text = addr[1:end], addr[end + 2 :]
        else:
            host, sep, port_text = addr.rpartition(":")
            if not sep:
                raise ValueError(f"address {addr!r} has no port (expected host:port)")
            if ":" in host:
                raise ValueError(f"IPv6 address in {addr!r} must be in brackets: [host]:port")
        if not port_text.isdigit():
            raise ValueError(f"port in address {addr!r} is not a number")
        port = int(port_text)
    else:
        raise TypeError(f"address must be a 'host:port' string or a (host, port) tuple, not {type(addr)!r}")
    low = 1 if for_dial else 0
    if not low <= port <= 65535:
        raise ValueError(f"port {port} in address {addr!r} is out of range {low}..65535")
    if for_dial and not host:
        raise ValueError(f"address {addr!r} has no host to dial")
    return host, port


def _bind_socket(addr: str | tuple[Any, ...]) -> socket.socket:
    """A UDP socket bound to ``addr``; an empty host is a dual-stack wildcard (as Go's "udp")."""
    host, port = parse_address(addr)
    if not host:
        if socket.has_ipv6:
            try:
                sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                try:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                    sock.bind(("::", port))
                except BaseException:
                    sock.close()
                    raise
                return sock
            except OSError as exc:
                if port:
                    raise
                logger.debug("no IPv6 wildcard socket (%s); using 0.0.0.0", exc)
        host = "0.0.0.0"
    family = _literal_family(host)
    if family is not None:
        # An IP literal (every dial binds 0.0.0.0 or ::): no resolver call.
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    # unscoped literals were bound above: only a scoped IPv6 literal ("fe80::1%eth0") is numeric here
    flags = socket.AI_NUMERICHOST if "%" in host and is_ip_literal(host) else 0
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=flags)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve host {host!r} in address {addr!r}: {exc}") from exc
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last if last is not None else OSError(f"cannot bind {addr!r}")


class Transport:
    """A UDP socket shared by any number of QUIC connections, and at most one listener.

    ``sock_or_addr``: a bound UDP socket (the Transport does not close it) or an address to bind
    (``"host:port"``, ``":port"`` for the dual-stack wildcard; then the Transport owns the socket).
    ``connection_id_length``: our connection IDs' length, 4 by default (quic-go), 1..20;
    0 only for a single-use client. ``stateless_reset_key``: 32 bytes that derive stateless reset
    tokens (HMAC-SHA256(key, cid)[:16]); keep it across restarts so peers of a crashed process get
    a reset; random when None. ``token_key``: the key sealing Retry / NEW_TOKEN tokens; random when
    None. ``verify_source_address(addr) -> bool``: whether to demand a Retry from a new client;
    None: only when more than half of ``max_unvalidated_handshakes`` are in flight.
    Raises AddressInUseError when another Transport already runs on the same local address.
    """

    def __init__(
        self,
        sock_or_addr: socket.socket | str | tuple[Any, ...],
        *,
        connection_id_length: int | None = None,
        connection_id_generator: ConnectionIDGenerator | None = None,
        stateless_reset_key: bytes | None = None,
        token_key: bytes | None = None,
        verify_source_address: Callable[[Address], bool] | None = None,
        max_unvalidated_handshakes: int = 128,
        disable_version_negotiation_packets: bool = False,
        tracer: Tracer | None = None,
        gso: bool | None = None,
        gro: bool | None = None,
        ecn: bool | None = None,
        _single_use: bool = False,
    ) -> None:
        if connection_id_generator is not None:
            length = connection_id_generator.connection_id_len
        else:
            length = 4 if connection_id_length is None else connection_id_length
        if not (1 if not _single_use else 0) <= length <= MAX_CONNECTION_ID_LENGTH:
            raise ValueError(
                f"connection_id_length must be 1..20 (0 only for a single-use client), got {length}"
            )
        if stateless_reset_key is not None and len(stateless_reset_key) < 16:
            raise ValueError("stateless_reset_key must be at least 16 bytes (32 recommended)")
        if isinstance(sock_or_addr, socket.socket):
            sock = sock_or_addr
            self._owns_socket = False
        else:
            sock = _bind_socket(sock_or_addr)
            self._owns_socket = True
        # A dial's own socket answers nobody: no need to learn each datagram's destination address.
        pktinfo = False if _single_use and length == 0 else None
        try:
            register(sock, self)
            try:
                self._pconn: PacketConn = wrap_conn(sock, gso=gso, gro=gro, ecn=ecn, pktinfo=pktinfo)
            except BaseException:
                unregister(sock, self)
                raise
        except BaseException:
            if self._owns_socket:
                sock.close()
            raise
        self._sock: socket.socket = sock
        self.connection_id_length = length
        self.connection_id_generator: ConnectionIDGenerator = (
            connection_id_generator or RandomConnectionIDGenerator(length)
        )
        self.stateless_reset_key = stateless_reset_key or os.urandom(32)
        self.token_key = token_key or os.urandom(32)
        self.verify_source_address = verify_source_address
        self.max_unvalidated_handshakes = max_unvalidated_handshakes
        self.disable_version_negotiation_packets = disable_version_negotiation_packets
        self.tracer = tracer
        self.single_use = _single_use
        self.counters = TransportStats()
        """Live counters (also returned by :meth:`stats`)."""
        self._handlers: dict[bytes, PacketHandler] = {}
        self._connections: set[Connection] = set()
        self._clients: set[Connection] = set()  # the ones that may receive a stateless reset we cannot route
        self._server: Server | None = None
        self._send_queue: deque[OutgoingDatagram] = deque()
        self._send_waiters: dict[Connection, None] = {}
        self._dirty: dict[PacketHandler, None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False
        self._closed = False
        self._reset_tokens = float(STATELESS_RESET_BUDGET)
        self._reset_refill_at = 0.0
        self._closed_event: asyncio.Event | None = None

    # --- properties ------------------------------------------------------------------------------

    @property
    def local_addr(self) -> Address:
        """The bound address, as the kernel reports it."""
        return self._pconn.local_addr

    def stats(self) -> TransportStats:
        """Counters of datagrams that reached no connection, and why (DoS drops, Retries, resets...)."""
        return self.counters

    @property
    def packet_conn(self) -> PacketConn:
        """The wrapped socket (capabilities in ``.caps``)."""
        return self._pconn

    @property
    def family(self) -> int:
        return self._pconn.family

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this Transport runs on (set by the first listen / dial)."""
        if self._loop is None:
            raise RuntimeError("the Transport has not been started (listen or dial first)")
        return self._loop

    def __repr__(self) -> str:
        return f"<Transport {format_address(self.local_addr)} connections={len(self._connections)}>"

    # --- lifecycle -------------------------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise RuntimeError("the Transport is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self._pconn.fileno(), self._on_readable)
        elif self._loop is not loop:
            raise RuntimeError("a Transport is bound to the event loop that first used it")
        return loop

    def listen(
        self, tls_config: TLSConfig, config: Config | None = None, *, preferred: Transport | None = None
    ) -> Listener:
        """Accept QUIC connections on this Transport (quic-go ``Transport.Listen``).

        ``preferred``: a second Transport of this process (same event loop, same
        ``connection_id_length``) offered to clients as the server's preferred address (RFC 9000
        §9.6): its socket receives and sends for our connections once clients move there. The
        address advertised is ``config.preferred_address`` if set (e.g. its address behind a NAT),
        else the Transport's bound address, which must then be a specific one. It stays open when
        the listener closes (its owner closes it, after the listener). Give both Transports the same
        ``stateless_reset_key``: a stateless reset sent from either socket then carries the token
        the client was given (``listen_addr(..., preferred_addr=)`` does this for you).

        Raises ConfigError for a bad config, a TLS config without a certificate, or a preferred
        address that cannot be offered (a wildcard-bound ``preferred`` without
        ``config.preferred_address``, zero-length connection IDs); ValueError for a ``preferred``
        that cannot serve (this Transport itself, closed, another CID length or event loop);
        RuntimeError if the Transport already listens.
        """
        from .listener import Listener

        return Listener(self._make_server(tls_config, config, early=False, preferred=preferred))

    def listen_early(
        self, tls_config: TLSConfig, config: Config | None = None, *, preferred: Transport | None = None
    ) -> EarlyListener:
        """Like :meth:`listen`, but connections are returned before the handshake completes and
        0-RTT is accepted when ``config.allow_0rtt`` is set (quic-go ``ListenEarly``)."""
        from .listener import EarlyListener

        return EarlyListener(self._make_server(tls_config, config, early=True, preferred=preferred))

    def _make_server(
        self,
        tls_config: TLSConfig,
        config: Config | None,
        early: bool,
        *,
        preferred: Transport | None = None,
        owns_preferred: bool = False,
    ) -> Server:
        from .server import Server

        if self._server is not None:
            raise RuntimeError(f"a listener is already running on {format_address(self.local_addr)}")
        loop = self._start()
        server = Server(
            self,
            loop,
            tls_config,
            (config or Config()).validated().populated(),
            early=early,
            preferred=preferred,
            owns_preferred=owns_preferred,
        )
        self._server = server
        return server

    def server_closed(self, server: Server) -> None:
        """The listener closed: stop accepting; close the socket if this Transport is single-use."""
        if self._server is server:
            self._server = None
        if self.single_use:
            self.close()  # quic-go: closing a ListenAddr listener closes its connections and socket

    async def dial(
        self, addr: str | tuple[Any, ...], tls_config: TLSConfig, config: Config | None = None
    ) -> Connection:
        """Open a client connection to ``addr`` from this Transport; returns after the handshake.

        Raises ValueError for a bad address, the connection's error (TransportError,
        HandshakeTimeoutError, VersionNegotiationError, ...) if the handshake fails.
        """
        from .client import dial_on

        return await dial_on(self, addr, tls_config, config, early=False)

    async def dial_early(
        self, addr: str | tuple[Any, ...], tls_config: TLSConfig, config: Config | None = None
    ) -> Connection:
        """Like :meth:`dial`, but returns as soon as 0-RTT data can be sent (or the handshake is done)."""
        from .client import dial_on

        return await dial_on(self, addr, tls_config, config, early=True)

    def close(self) -> None:
        """Close every connection (CONNECTION_CLOSE, NO_ERROR), the listener, and the socket if owned."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
        for conn in list(self._connections):
            conn.abort_on_transport_close()
        if self._send_queue and self._loop is not None:
            self._pconn.write_batch(self._send_queue)
        self._send_queue.clear()
        if self._loop is not None:
            self._loop.remove_reader(self._pconn.fileno())
            if self._writing:
                self._loop.remove_writer(self._pconn.fileno())
                self._writing = False
        self._handlers.clear()
        unregister(self._sock, self)
        if self._owns_socket:
            self._sock.close()
        if self._closed_event is not None:
            self._closed_event.set()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # --- routing ---------------------------------------------------------------------------------

    def add_handler(self, cid: bytes, handler: PacketHandler) -> None:
        """Route packets with destination connection ID ``cid`` to ``handler``."""
        self._handlers[cid] = handler

    def handler_for(self, cid: bytes) -> PacketHandler | None:
        """The handler routing ``cid``, if any."""
        return self._handlers.get(cid)

    def retire_cid(self, cid: bytes, handler: PacketHandler) -> None:
        """Stop routing ``cid`` after the linger period (delayed packets still reach ``handler``).

        The timer refers to a connection weakly: a connection that ends meanwhile hands its
        lingering IDs to its closed handler (``connection_closed``), and must not stay alive for
        the rest of the 5 s, its whole state with it, because a timer still names it."""
        if self._loop is not None and self._handlers.get(cid) is handler:
            self._remove_later([cid], handler)

    def _remove_later(self, cids: list[bytes], handler: PacketHandler) -> None:
        """One timer: after the linger period, stop routing those of ``cids`` still routed to
        ``handler``. A connection is named weakly (see ``retire_cid``)."""
        assert self._loop is not None
        try:
            ref: Callable[[], PacketHandler | None] = weakref.ref(handler)
        except TypeError:  # a slotted handler without weak references: light, hold it
            ref = _StrongRef(handler)
        self._loop.call_later(CLOSED_CID_LINGER, self._remove_cids, cids, ref)

    def _remove_cids(self, cids: list[bytes], ref: Callable[[], PacketHandler | None]) -> None:
        handler = ref()
        if handler is None:
            return
        handlers = self._handlers
        for cid in cids:
            if handlers.get(cid) is handler:
                del handlers[cid]

    def add_connection(self, conn: Connection) -> None:
        self._connections.add(conn)
        if conn.is_client:
            self._clients.add(conn)

    def connection_closed(
        self, conn: Connection, cids: list[bytes], close_datagrams: list[OutgoingDatagram]
    ) -> None:
        """A connection ended: its CIDs answer with its CONNECTION_CLOSE (or drop) for 5 s, unless
        this was the last connection of a single-use Transport (a dial's own socket): that closes
        now, as quic-go closes the packet conn it created for a dial."""
        self._connections.discard(conn)
        self._clients.discard(conn)
        self._send_waiters.pop(conn, None)
        if self.single_use and self._server is None and not self._connections:
            # No closed-connection handler and no 5 s retire timers: they would only keep this closed
            # Transport and its socket object alive (a dial loop held thousands, issue 9).
            self.close()
            return
        if not self._closed and self._loop is not None:
            handlers = self._handlers
            routed = [cid for cid in cids if handlers.get(cid) is conn]
            if routed:
                closed = _ClosedHandler(self, close_datagrams)
                for cid in routed:
                    handlers[cid] = closed
                # one timer for all of them (a timer per ID was most of what a server kept per
                # closed connection: issue 9, the collector's full passes)
                self._remove_later(routed, closed)

    def _on_readable(self) -> None:
        batch = self._pconn.read_batch()
        if not batch:
            return
        loop = self._loop
        assert loop is not None
        now = loop.time()
        self.counters.datagrams_received += len(batch)
        handlers = self._handlers
        dirty = self._dirty
        cid_len = self.connection_id_length
        # Consecutive datagrams for one connection (a GRO batch is one flow) go to it in one call.
        run: list[ReceivedDatagram] = []
        run_handler: PacketHandler | None = None
        for item in batch:
            if self._closed:
                return  # a connection of a single-use Transport ended and took the socket with it
            data = item[0]
            first = data[0]
            header: InvariantHeader | None = None
            if first & 0x80:
                try:
                    header = parse_invariant_header(data, cid_len)
                except TransportError:
                    self._drop(item[1], "unknown", len(data), DropReason.HEADER_PARSE_ERROR)
                    continue
                dcid = header.dcid
            elif cid_len:
                if len(data) <= cid_len:
                    self._drop(item[1], "1RTT", len(data), DropReason.HEADER_PARSE_ERROR)
                    continue
                dcid = bytes(data[1 : 1 + cid_len])
            else:
                dcid = b""
            handler = handlers.get(dcid)
            if handler is not None:
                if handler is not run_handler:
                    if run_handler is not None:
                        self._deliver(run_handler, run, now)
                        if self._closed:
                            return
                    run_handler = handler
                    run = []
                run.append(item)
                continue
            if run_handler is not None:  # what came before this datagram goes first
                self._deliver(run_handler, run, now)
                run_handler = None
                if self._closed:
                    return
            if header is not None:
                server = self._server
                if server is not None:
                    server.handle_packet(data, item[1], item[2], item[3], header, now)
                else:
                    self._drop(item[1], "long", len(data), DropReason.UNKNOWN_CONNECTION_ID)
            else:
                self._handle_unknown_short(data, item[1], item[3], dcid, now)
        if run_handler is not None:
            self._deliver(run_handler, run, now)
        if dirty:
            for handler in list(dirty):
                handler.flush(now)
            dirty.clear()
        if self._server is not None:
            self._server.after_batch(now)
        self.flush_sends()

    def _deliver(self, handler: PacketHandler, run: list[ReceivedDatagram], now: float) -> None:
        if len(run) == 1:
            item = run[0]
            handler.handle_datagram(item[0], item[1], item[2], item[3], now)
        else:
            handler.handle_datagrams(run, now)
        self._dirty[handler] = None

    def _drop(self, addr: Address, packet_type: str, size: int, reason: str) -> None:
        self.counters.dropped_unroutable += 1
        if self.tracer is not None:
            self.tracer.dropped_packet(addr, packet_type, size, reason)

    def _handle_unknown_short(
        self, data: bytes | memoryview, addr: Address, pktinfo: PacketInfo | None, dcid: bytes, now: float
    ) -> None:
        size = len(data)
        # A stateless reset from a peer looks like a short header with a random DCID: before
        # answering it, let each client connection check its peer's reset tokens (RFC 9000 §10.3.1).
        if size >= MIN_STATELESS_RESET_SIZE:
            # Only client connections are asked (a client rarely has many): a server's connection
            # that its client resets ends by idle timeout instead, so that junk sent to a busy server
            # cannot cost a decryption attempt per connection.
            for conn in list(self._clients):
                if conn.try_stateless_reset(data, addr, 0, now):
                    return
        self._drop(addr, "1RTT", size, DropReason.UNKNOWN_CONNECTION_ID)
        if size < MIN_PACKET_FOR_RESET or self.connection_id_length == 0:
            return
        if not self._take_reset_budget(now):
            return
        # RFC 9000 §10.3: the reset looks like a short header (0b01 + random bits), with unpredictable
        # bytes, ending in the token; §10.3.3: it MUST be smaller than the packet that triggered it.
        length = min(size - 1, 43 + os.urandom(1)[0] % 16)
        token = stateless_reset_token(self.stateless_reset_key, dcid)
        body = bytearray(os.urandom(length - STATELESS_RESET_TOKEN_LENGTH))
        body[0] = 0x40 | (body[0] & 0x3F)
        body += token
        self.counters.stateless_resets_sent += 1
        if self.tracer is not None:
            self.tracer.sent_packet(addr, "stateless_reset", len(body), None)
        self.enqueue([(bytes(body), addr, 0, pktinfo)])

    def _take_reset_budget(self, now: float) -> bool:
        elapsed = now - self._reset_refill_at
        self._reset_refill_at = now
        self._reset_tokens = min(
            float(STATELESS_RESET_BUDGET), self._reset_tokens + elapsed * STATELESS_RESET_BUDGET
        )
        if self._reset_tokens < 1.0:
            return False
        self._reset_tokens -= 1.0
        return True

    # --- sending ---------------------------------------------------------------------------------

    def enqueue(self, datagrams: list[OutgoingDatagram]) -> None:
        """Queue datagrams for sending; they leave at the next :meth:`flush_sends`."""
        self._send_queue.extend(datagrams)

    def send_now(self, datagrams: list[OutgoingDatagram]) -> None:
        """Queue and flush (for sends outside a receive batch: user calls, timers)."""
        self._send_queue.extend(datagrams)
        self.flush_sends()

    @property
    def send_queue_full(self) -> bool:
        """True while the socket is backlogged: connections should wait for :meth:`wait_for_room`."""
        return len(self._send_queue) >= SEND_QUEUE_SOFT_LIMIT

    def wait_for_room(self, conn: Connection) -> None:
        """Call ``conn.on_send_room()`` when the send queue has drained."""
        self._send_waiters[conn] = None

    def flush_sends(self) -> None:
        queue = self._send_queue
        if not queue or self._writing or self._closed:
            return
        before = len(queue)
        done = self._pconn.write_batch(queue)
        self.counters.datagrams_sent += before - len(queue)
        if not done:
            self._writing = True
            self.loop.add_writer(self._pconn.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        queue = self._send_queue
        before = len(queue)
        done = self._pconn.write_batch(queue)
        self.counters.datagrams_sent += before - len(queue)
        if not done:
            return
        self._writing = False
        self.loop.remove_writer(self._pconn.fileno())
        waiters = list(self._send_waiters)
        self._send_waiters.clear()
        for conn in waiters:
            conn.on_send_room()
