"""Listener / EarlyListener and listen_addr / listen_addr_early (quic-go ``ListenAddr``, ``Listener``).

``listen_addr(addr, tls_config, config)`` binds a UDP socket, wraps it in a single-use Transport that
closes the socket (and every connection on it) when the listener closes, and listens on it, as
quic-go's ``ListenAddr`` does with ``createdConn: true, isSingleUse: true``. With ``preferred_addr``
it binds a second socket for the server's preferred address (RFC 9000 §9.6), owned by the listener.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import ConfigError
from .server import Server, ServerClosedError, refuse_preferred_without_cids
from .transport import Transport, TransportStats

if TYPE_CHECKING:
    from .api_connection import Connection
    from .handshake.tls import TLSConfig
    from .sys import Address

__all__ = ["EarlyListener", "Listener", "listen_addr", "listen_addr_early"]


class Listener:
    """Accepts incoming QUIC connections: ``await accept()``, ``async for conn in listener``, ``close()``.

    Connections are returned once their handshake completed. At most 32 wait to be accepted; more
    are refused with CONNECTION_REFUSED.
    """

    def __init__(self, server: Server) -> None:
        self._server = server

    @property
    def transport(self) -> Transport:
        return self._server.transport

    @property
    def local_addr(self) -> Address:
        """The address the listener is bound to (with the port the kernel chose for port 0)."""
        return self._server.transport.local_addr

    addr = local_addr

    @property
    def preferred_transport(self) -> Transport | None:
        """The Transport of the preferred address offered to clients (RFC 9000 §9.6), if any: the
        ``preferred`` given to ``Transport.listen``, or the one ``listen_addr(preferred_addr=...)`` bound."""
        return self._server.preferred

    def stats(self) -> TransportStats:
        """The Transport's counters (drops for DoS prevention, Retries, refusals, ...)."""
        return self._server.transport.counters

    async def accept(self) -> Connection:
        """The next connection; ServerClosedError after ``close()`` once the queue is drained.

        Cancelling a pending ``accept`` loses no connection: it stays queued for the next call.
        """
        return await self._server.accept()

    def close(self) -> None:
        """Stop accepting. Handshakes in flight are refused; accepted connections keep running, unless
        the listener came from ``listen_addr`` (single-use: its Transport and socket close too, and
        the preferred address's socket it bound for ``preferred_addr``)."""
        self._server.close()

    @property
    def closed(self) -> bool:
        return self._server.closed

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Connection:
        try:
            return await self._server.accept()
        except ServerClosedError:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EarlyListener(Listener):
    """A Listener that returns connections before the handshake completes (0.5-RTT data), and accepts
    0-RTT when ``Config.allow_0rtt`` is set (quic-go ``EarlyListener``)."""

    async def __aenter__(self) -> EarlyListener:
        return self


def _check(tls_config: Any, config: Config | None) -> Config:
    from .handshake.tls import TLSConfig

    if not isinstance(tls_config, TLSConfig):
        raise ConfigError("tls_config", f"must be a quicsilver.TLSConfig, got {type(tls_config).__name__}")
    if config is not None and not isinstance(config, Config):
        raise ConfigError("config", f"must be a quicsilver.Config or None, got {type(config).__name__}")
    tls_config.check_server()
    return (config or Config()).validated()


async def listen_addr(
    addr: str | tuple[Any, ...],
    tls_config: TLSConfig,
    config: Config | None = None,
    *,
    preferred_addr: str | tuple[Any, ...] | None = None,
    **transport_options: Any,
) -> Listener:
    """Listen for QUIC connections on ``addr`` ("host:port", ":port", "[::1]:port" or (host, port)).

    ``preferred_addr``: also bind a second socket there and offer it to clients as the server's
    preferred address (RFC 9000 §9.6); they move to it once the handshake is confirmed. It is
    advertised as bound (a specific address, not a wildcard), or as ``config.preferred_address``
    if set. The listener owns that socket: closing the listener closes it. Both Transports get the
    same ``transport_options`` and the same stateless reset key.

    Raises ValueError for a malformed address or port, ConfigError for a bad Config, a TLS config
    without a certificate or a preferred address that cannot be offered, OSError if an address
    cannot be bound (nothing stays bound then). ``transport_options`` go to :class:`Transport`
    (e.g. ``stateless_reset_key``, ``verify_source_address``, ``tracer``).
    """
    server = _listen(addr, tls_config, config, preferred_addr, transport_options, early=False)
    return Listener(server)


async def listen_addr_early(
    addr: str | tuple[Any, ...],
    tls_config: TLSConfig,
    config: Config | None = None,
    *,
    preferred_addr: str | tuple[Any, ...] | None = None,
    **transport_options: Any,
) -> EarlyListener:
    """Like :func:`listen_addr`, returning an :class:`EarlyListener` (0-RTT with ``allow_0rtt``)."""
    server = _listen(addr, tls_config, config, preferred_addr, transport_options, early=True)
    return EarlyListener(server)


def _listen(
    addr: str | tuple[Any, ...],
    tls_config: TLSConfig,
    config: Config | None,
    preferred_addr: str | tuple[Any, ...] | None,
    transport_options: dict[str, Any],
    *,
    early: bool,
) -> Server:
    checked = _check(tls_config, config)
    if preferred_addr is not None and transport_options.get("stateless_reset_key") is None:
        # One key for both sockets: a stateless reset sent from the preferred address then carries
        # a token the client knows (RFC 9000 §10.3), whichever socket the dead connection's packet hit.
        transport_options = {**transport_options, "stateless_reset_key": os.urandom(32)}
    transport = Transport(addr, _single_use=True, **transport_options)
    preferred: Transport | None = None
    try:
        if preferred_addr is not None:
            refuse_preferred_without_cids(transport, "preferred_addr")  # before binding a second socket
            preferred = Transport(preferred_addr, **transport_options)
        return transport._make_server(tls_config, checked, early, preferred=preferred, owns_preferred=True)
    except BaseException:
        transport.close()
        if preferred is not None:
            preferred.close()
        raise
