"""Dialling: dial_addr / dial_addr_early and Transport.dial (quic-go ``client.go``), and token stores.

``dial_addr`` resolves the host, binds a single-use Transport on an ephemeral port of the right
family (zero-length connection IDs, as quic-go's single-use dial: the socket is the connection), runs
the handshake and returns the Connection; the Transport and its socket close with the connection.

Address validation tokens from NEW_TOKEN frames (RFC 9000 §8.1.3) are kept in ``Config.token_store``
(a :class:`TokenStore`, e.g. :class:`LRUTokenStore`) per server address, and presented on the next
connection's first Initial. TLS session tickets go to ``TLSConfig.session_ticket_store`` per server
name, for resumption and 0-RTT.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import socket
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from .api_connection import Connection
from .config import Config
from .errors import ConfigError
from .multiplexer import format_address
from .sys.sockopts import env_flag
from .transport import Transport, is_ip_literal, parse_address

if TYPE_CHECKING:
    from .handshake.tls import TLSConfig

__all__ = ["LRUTokenStore", "TokenStore", "dial_addr", "dial_addr_early", "dial_on"]

logger = logging.getLogger("quicsilver.client")


class TokenStore(Protocol):
    """Where a client keeps NEW_TOKEN tokens per server (quic-go ``TokenStore``)."""

    def pop(self, key: str) -> bytes | None:
        """A token for ``key`` (removed: tokens are single-use, RFC 9000 §8.1.3), or None."""

    def put(self, key: str, token: bytes) -> None:
        """Remember ``token`` for ``key``."""


class LRUTokenStore:
    """Up to ``tokens_per_origin`` tokens for each of the ``max_origins`` most recent servers."""

    def __init__(self, max_origins: int = 100, tokens_per_origin: int = 4) -> None:
        if max_origins < 1 or tokens_per_origin < 1:
            raise ValueError("max_origins and tokens_per_origin must be at least 1")
        self._max_origins = max_origins
        self._per_origin = tokens_per_origin
        self._tokens: OrderedDict[str, deque[bytes]] = OrderedDict()

    def put(self, key: str, token: bytes) -> None:
        tokens = self._tokens.get(key)
        if tokens is None:
            tokens = deque(maxlen=self._per_origin)
            self._tokens[key] = tokens
            while len(self._tokens) > self._max_origins:
                self._tokens.popitem(last=False)
        self._tokens.move_to_end(key)
        tokens.append(bytes(token))

    def pop(self, key: str) -> bytes | None:
        tokens = self._tokens.get(key)
        if not tokens:
            return None
        token = tokens.pop()  # the newest
        if not tokens:
            del self._tokens[key]
        return token

    def __len__(self) -> int:
        return sum(len(t) for t in self._tokens.values())


def _check_tls(tls_config: Any) -> None:
    from .handshake.tls import TLSConfig

    if not isinstance(tls_config, TLSConfig):
        raise ConfigError("tls_config", f"must be a quicsilver.TLSConfig, got {type(tls_config).__name__}")


async def _resolve(host: str, port: int, family: int = socket.AF_UNSPEC) -> tuple[int, tuple[Any, ...]]:
    if family != socket.AF_INET6 and ":" not in host and is_ip_literal(host):
        return socket.AF_INET, (host, port)  # what getaddrinfo would answer for an IPv4 literal
    try:
        if is_ip_literal(host):
            # A literal never blocks: resolve it here, not through the executor (a thread hop per dial,
            # milliseconds on a loaded machine).
            infos = socket.getaddrinfo(
                host, port, family=family, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
            )
        else:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
    if not infos:
        raise ValueError(f"cannot resolve {host!r}")
    fam, _, _, _, sockaddr = infos[0]
    return fam, sockaddr


async def _remote_for(transport: Transport, host: str, port: int) -> tuple[Any, ...]:
    """The peer's address in the form the transport's socket reports it (v4-mapped on dual stack)."""
    if transport.family == socket.AF_INET:
        _, sockaddr = await _resolve(host, port, socket.AF_INET)
        return (sockaddr[0], sockaddr[1])
    fam, sockaddr = await _resolve(host, port)
    if fam == socket.AF_INET:
        return (f"::ffff:{sockaddr[0]}", sockaddr[1], 0, 0)
    return (sockaddr[0], sockaddr[1], 0, sockaddr[3] if len(sockaddr) > 3 else 0)


async def dial_on(
    transport: Transport,
    addr: str | tuple[Any, ...],
    tls_config: TLSConfig,
    config: Config | None,
    *,
    early: bool,
    prepare_next: Callable[[], None] | None = None,
) -> Connection:
    """Dial ``addr`` from ``transport``; the shared implementation of every dial function.
    ``prepare_next``: called once the ClientHello is out (dial_addr makes the next dial's socket)."""
    _check_tls(tls_config)
    config = (config or Config()).validated().populated()
    host, port = parse_address(addr, for_dial=True)
    loop = transport._start()
    remote = await _remote_for(transport, host, port)
    server_name = tls_config.server_name or host
    token_key = format_address((host, port))
    token = b""
    token_store = config.token_store
    if token_store is not None:
        token = token_store.pop(token_key) or b""
    ticket = None
    ticket_store = tls_config.session_ticket_store
    if ticket_store is not None:
        ticket = ticket_store.pop(server_name, loop.time())
    from .core.connection import QuicConnection  # the core loads with the first connection
    from .handshake.tls.groups import replenish_key_spares

    core = QuicConnection(
        config,
        tls_config,
        is_client=True,
        server_name=server_name,
        connection_id_generator=transport.connection_id_generator,
        stateless_reset_key=transport.stateless_reset_key,
        session_ticket=ticket,
        token=token,
        version=config.versions[0],
    )

    conn = Connection(
        transport,
        core,
        is_client=True,
        remote_addr=remote,
        initial_cids=[core.host_cid],
        token_store=token_store,
        token_key=token_key,
    )
    now = loop.time()
    core.connect(remote, now)
    conn.flush(now)
    transport.flush_sends()
    # the ClientHello is out: make the next dial's ephemeral keys (and socket) while the server answers
    replenish_key_spares(now)
    if prepare_next is not None:
        prepare_next()
    try:
        # 0-RTT is possible when the resumed session allows early data (RFC 8446 §4.6.1
        # max_early_data_size, 0xffffffff in QUIC); otherwise dial_early waits like dial.
        if early and ticket is not None and getattr(ticket, "max_early_data", 0) > 0:
            return conn
        await conn.wait_handshake()
    except asyncio.CancelledError:
        conn.close(0, "dial cancelled")
        raise
    return conn


# --------------------------------------------------------------------------------------------------
# A dial's socket made ahead of need
#
# Each dial_addr binds a new UDP socket and wraps it in a Transport (buffers, DF, ECN, GSO/GRO probes,
# the event loop's reader): ~0.15-0.2 ms before the ClientHello can leave. Once a dial's ClientHello
# is out, while the server answers, the next default dial's Transport is made (one per address
# family) and kept for SPARE_TRANSPORT_LIFETIME seconds: a process that keeps dialling takes it at
# once, one that stops has it closed by a timer. It is used only in the process and on the event
# loop that made it, and only while the QUICSILVER_DISABLE_GSO / _GRO / _ECN environment it was made
# with is unchanged. Its socket is bound to an ephemeral port no peer knows.

SPARE_TRANSPORT_LIFETIME: Final = 10.0


class _SpareTransport:
    __slots__ = ("environment", "expiry", "pid", "transport")

    def __init__(self, transport: Transport, expiry: asyncio.TimerHandle) -> None:
        self.transport = transport
        self.expiry = expiry  # closes it once SPARE_TRANSPORT_LIFETIME is over
        self.pid = os.getpid()
        self.environment = _socket_environment()


_spare_transports: Final[dict[int, _SpareTransport]] = {}  # by address family


def _socket_environment() -> tuple[bool, bool, bool]:
    """The environment ``wrap_conn`` reads when it prepares a socket."""
    return (
        env_flag("QUICSILVER_DISABLE_GSO"),
        env_flag("QUICSILVER_DISABLE_GRO"),
        env_flag("QUICSILVER_DISABLE_ECN"),
    )


def _take_spare_transport(family: int, loop: asyncio.AbstractEventLoop) -> Transport | None:
    spare = _spare_transports.pop(family, None)
    if spare is None:
        return None
    spare.expiry.cancel()
    transport = spare.transport
    if (
        not transport.closed
        and transport._loop is loop
        and spare.pid == os.getpid()
        and spare.environment == _socket_environment()
    ):
        return transport
    transport.close()
    return None


def _make_spare_transport(family: int, local: tuple[str, int]) -> None:
    if family in _spare_transports:
        return
    try:
        transport = Transport(local, _single_use=True, connection_id_length=0)
    except OSError as exc:  # the next dial makes its own, and reports this then
        logger.debug("no spare dial socket: %s", exc)
        return
    loop = transport._start()
    expiry = loop.call_later(SPARE_TRANSPORT_LIFETIME, _expire_spare_transport, family, transport)
    _spare_transports[family] = _SpareTransport(transport, expiry)


@atexit.register
def _close_spare_transports() -> None:
    """At exit, the spares' event loops are usually gone: close their sockets all the same."""
    while _spare_transports:
        _, spare = _spare_transports.popitem()
        spare.transport.close()


def _expire_spare_transport(family: int, transport: Transport) -> None:
    spare = _spare_transports.get(family)
    if spare is not None and spare.transport is transport:
        del _spare_transports[family]
    transport.close()


async def _dial_addr(
    addr: str | tuple[Any, ...],
    tls_config: TLSConfig,
    config: Config | None,
    early: bool,
    transport_options: dict[str, Any],
) -> Connection:
    _check_tls(tls_config)
    if config is not None and not isinstance(config, Config):
        raise ConfigError("config", f"must be a quicsilver.Config or None, got {type(config).__name__}")
    host, port = parse_address(addr, for_dial=True)
    family, _ = await _resolve(host, port)
    local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
    prepare_next: Callable[[], None] | None = None
    transport: Transport | None = None
    if not transport_options:  # the default socket: one may be ready, and the next one is made ahead
        transport = _take_spare_transport(family, asyncio.get_running_loop())

        def prepare_next() -> None:
            _make_spare_transport(family, local)

    if transport is None:
        options = {"connection_id_length": 0, **transport_options}
        transport = Transport(local, _single_use=True, **options)
    try:
        return await dial_on(
            transport, (host, port), tls_config, config, early=early, prepare_next=prepare_next
        )
    except BaseException:
        transport.close()
        raise


async def dial_addr(
    addr: str | tuple[Any, ...], tls_config: TLSConfig, config: Config | None = None, **transport_options: Any
) -> Connection:
    """Connect to the QUIC server at ``addr`` ("host:port", "[v6]:port" or (host, port)).

    Returns once the handshake completed. Raises ValueError for a malformed address, an out-of-range
    port or an unresolvable host; ConfigError for bad configs; the connection's error if the
    handshake fails (TransportError with the TLS alert, HandshakeTimeoutError, VersionNegotiationError).
    """
    return await _dial_addr(addr, tls_config, config, False, transport_options)


async def dial_addr_early(
    addr: str | tuple[Any, ...], tls_config: TLSConfig, config: Config | None = None, **transport_options: Any
) -> Connection:
    """Like :func:`dial_addr`, but returns as soon as 0-RTT data can be sent (a resumed session with
    early data), otherwise after the handshake."""
    return await _dial_addr(addr, tls_config, config, True, transport_options)
