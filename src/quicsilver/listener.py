"""Listener / EarlyListener and listen_addr / listen_addr_early (quic-go ``ListenAddr``, ``Listener``).

``listen_addr(addr, tls_config, config)`` binds a UDP socket, wraps it in a single-use Transport that
closes the socket (and every connection on it) when the listener closes, and listens on it, as
quic-go's ``ListenAddr`` does with ``createdConn: true, isSingleUse: true``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import ConfigError
from .server import Server, ServerClosedError
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
        the listener came from ``listen_addr`` (single-use: its Transport and socket close too)."""
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
    addr: str | tuple[Any, ...], tls_config: TLSConfig, config: Config | None = None, **transport_options: Any
) -> Listener:
    """Listen for QUIC connections on ``addr`` ("host:port", ":port", "[::1]:port" or (host, port)).

    Raises ValueError for a malformed address or port, ConfigError for a bad Config or a TLS config
    without a certificate, OSError if the address cannot be bound. ``transport_options`` go to
    :class:`Transport` (e.g. ``stateless_reset_key``, ``verify_source_address``, ``tracer``).
    """
    checked = _check(tls_config, config)
    transport = Transport(addr, _single_use=True, **transport_options)
    try:
        return transport.listen(tls_config, checked)
    except BaseException:
        transport.close()
        raise


async def listen_addr_early(
    addr: str | tuple[Any, ...], tls_config: TLSConfig, config: Config | None = None, **transport_options: Any
) -> EarlyListener:
    """Like :func:`listen_addr`, returning an :class:`EarlyListener` (0-RTT with ``allow_0rtt``)."""
    checked = _check(tls_config, config)
    transport = Transport(addr, _single_use=True, **transport_options)
    try:
        return transport.listen_early(tls_config, checked)
    except BaseException:
        transport.close()
        raise
