"""Connection configuration: quic-go's ``Config`` in snake_case, validated and populated.

quic-go's ``createServer`` first validates the Config, then fills in defaults. quic-go clamps
out-of-range values silently; quicsilver raises :class:`ConfigError` naming the field instead, at
the call that passed the bad Config.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from .errors import ConfigError
from .protocol import MAX_PACKET_BUFFER_SIZE, MAX_VARINT, MIN_INITIAL_PACKET_SIZE, SUPPORTED_VERSIONS

_MAX_STREAMS = 1 << 60  # RFC 9000 §4.6: a stream count cannot exceed 2^60

HostPort = tuple[str, int]
"""A literal IP address (no brackets) and a UDP port."""


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of a QUIC connection. Every field has quic-go's default."""

    handshake_idle_timeout: float = 5.0
    """Seconds the handshake may be idle; the whole handshake must finish within twice this. > 0."""
    max_idle_timeout: float = 30.0
    """Seconds without network activity before the connection is closed (min of both peers'). > 0."""
    keep_alive_period: float = 0.0
    """Seconds between keep-alive PINGs; 0 disables them. Capped at half the idle timeout."""
    initial_stream_receive_window: int = 512 * 1024
    """Bytes: the initial per-stream flow-control window. 1 .. max_stream_receive_window."""
    max_stream_receive_window: int = 6 * 1024 * 1024
    """Bytes: the per-stream window auto-tuning never exceeds. <= 2^62-1."""
    initial_connection_receive_window: int = 768 * 1024
    """Bytes: the initial connection flow-control window. 1 .. max_connection_receive_window."""
    max_connection_receive_window: int = 15 * 1024 * 1024
    """Bytes: the connection window auto-tuning never exceeds. <= 2^62-1."""
    max_incoming_streams: int = 100
    """Concurrent bidirectional streams the peer may open. 0 .. 2^60."""
    max_incoming_uni_streams: int = 100
    """Concurrent unidirectional streams the peer may open. 0 .. 2^60."""
    allow_0rtt: bool = False
    """Server: accept 0-RTT data (also needs listen_early)."""
    enable_datagrams: bool = False
    """Negotiate RFC 9221 DATAGRAM frames (advertises max_datagram_frame_size 16383)."""
    disable_path_mtu_discovery: bool = False
    """Do not probe for a larger path MTU (RFC 9000 §14.3)."""
    initial_packet_size: int = 1280
    """Bytes: the UDP payload size used before PMTUD. 1200 .. 1452."""
    versions: tuple[int, ...] = SUPPORTED_VERSIONS
    """QUIC versions, most preferred first: VERSION_1 and/or VERSION_2."""
    congestion_control: str = "cubic"
    """'cubic' (RFC 9438, the default, as in quic-go) or 'newreno' (RFC 9002 §7)."""
    key_update_interval: int = 100_000
    """Packets sent with one key phase before we initiate a key update (RFC 9001 §6). >= 10."""
    first_key_update_interval: int = 100
    """Packets before the first key update (quic-go updates early to exercise the path). >= 10."""
    max_datagram_queue: int = 128
    """Received DATAGRAM frames buffered before the oldest is dropped. >= 1."""
    disable_active_migration: bool = False
    """Advertise disable_active_migration (RFC 9000 §18.2)."""
    preferred_address: str | tuple[str, ...] | None = None
    """Server only (clients ignore it): the address clients should move to once the handshake is
    confirmed (RFC 9000 §9.6), advertised in the preferred_address transport parameter (§18.2).
    ``"host:port"`` with a literal IPv4 address or ``"[v6]:port"``, or a tuple of at most one IPv4
    and one IPv6 address; no names, no unspecified address, port 1..65535. None (the default): the
    address of the ``preferred`` Transport given to ``listen`` / ``listen_addr``'s ``preferred_addr``,
    or no preferred address without one. Set it when clients must reach that socket by another
    address (a NAT); without a ``preferred`` Transport the network must deliver packets sent to it to
    the listener's own socket. Needs connection IDs of 1 byte or more (§18.2)."""
    ignore_preferred_address: bool = False
    """Client: stay on the original address even if the server offers a preferred one (RFC 9000
    §9.6.1: a SHOULD, not a MUST); the parameter is still checked and its CID kept. Default False."""
    tracer: Callable[..., Any] | None = None
    """Called as tracer(perspective, odcid) -> ConnectionTracer | None for each new connection."""
    token_store: Any = None
    """Client: a TokenStore that keeps NEW_TOKEN tokens per server (None disables)."""
    max_token_age: float = 24 * 3600.0
    """Server: seconds a NEW_TOKEN token stays valid."""
    max_retry_token_age: float = 0.0
    """Server: seconds a Retry token stays valid; 0 means 2 * handshake_idle_timeout."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Unvalidated experimental knobs (tests use them); not part of the stable API."""

    def validated(self) -> Config:
        """Check every field; raise ConfigError naming the first bad one. Returns self."""
        validate_config(self)
        return self

    def populated(self) -> Config:
        """A copy with derived defaults filled in (quic-go's populateConfig).

        The copy is made once per Config and remembered (the fields are frozen): every dial and every
        accepted connection asks for it, and ``dataclasses.replace`` costs tens of microseconds.
        """
        if self.__dict__.get("_is_populated"):
            return self
        cached = self.__dict__.get("_populated")
        if cached is not None:
            return cast(Config, cached)
        changes: dict[str, Any] = {}
        if self.max_retry_token_age == 0:
            changes["max_retry_token_age"] = 2 * self.handshake_idle_timeout
        if self.keep_alive_period > self.max_idle_timeout / 2:
            changes["keep_alive_period"] = self.max_idle_timeout / 2
        result = dataclasses.replace(self, **changes) if changes else self
        # Frozen: a cache, not a field. The copy is only flagged (a reference to itself would be a
        # cycle, left to the garbage collector).
        object.__setattr__(result, "_is_populated", True)
        if result is not self:
            object.__setattr__(self, "_populated", result)
        return result


def _check_range(name: str, value: float, lo: float, hi: float, unit: str = "") -> None:
    """Integer fields only: windows, counts, sizes."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}{unit}, got {value}")


def validate_config(config: Config) -> None:
    """quic-go's validateConfig, strict: raise ConfigError for the first field out of range."""
    if config.handshake_idle_timeout <= 0:
        raise ConfigError(
            "handshake_idle_timeout", f"must be > 0 seconds, got {config.handshake_idle_timeout}"
        )
    if config.max_idle_timeout <= 0:
        raise ConfigError("max_idle_timeout", f"must be > 0 seconds, got {config.max_idle_timeout}")
    if config.keep_alive_period < 0:
        raise ConfigError("keep_alive_period", f"must be >= 0 seconds, got {config.keep_alive_period}")
    _check_range("max_stream_receive_window", config.max_stream_receive_window, 1, MAX_VARINT, " bytes")
    _check_range(
        "max_connection_receive_window", config.max_connection_receive_window, 1, MAX_VARINT, " bytes"
    )
    _check_range(
        "initial_stream_receive_window",
        config.initial_stream_receive_window,
        1,
        config.max_stream_receive_window,
        " bytes (max_stream_receive_window)",
    )
    _check_range(
        "initial_connection_receive_window",
        config.initial_connection_receive_window,
        1,
        config.max_connection_receive_window,
        " bytes (max_connection_receive_window)",
    )
    _check_range("max_incoming_streams", config.max_incoming_streams, 0, _MAX_STREAMS)
    _check_range("max_incoming_uni_streams", config.max_incoming_uni_streams, 0, _MAX_STREAMS)
    _check_range(
        "initial_packet_size", config.initial_packet_size, MIN_INITIAL_PACKET_SIZE, MAX_PACKET_BUFFER_SIZE
    )
    if not config.versions:
        raise ConfigError("versions", "must name at least one QUIC version")
    for v in config.versions:
        if v not in SUPPORTED_VERSIONS:
            raise ConfigError(
                "versions",
                f"unknown QUIC version {v:#010x}; supported: "
                + ", ".join(f"{s:#010x}" for s in SUPPORTED_VERSIONS),
            )
    if len(set(config.versions)) != len(config.versions):
        raise ConfigError("versions", "lists a version twice")
    if config.congestion_control not in ("cubic", "newreno"):
        raise ConfigError(
            "congestion_control", f"must be 'cubic' or 'newreno', got {config.congestion_control!r}"
        )
    _check_range("key_update_interval", config.key_update_interval, 10, 1 << 62)
    _check_range("first_key_update_interval", config.first_key_update_interval, 10, 1 << 62)
    _check_range("max_datagram_queue", config.max_datagram_queue, 1, 1 << 20)
    if config.max_token_age <= 0:
        raise ConfigError("max_token_age", f"must be > 0 seconds, got {config.max_token_age}")
    if config.max_retry_token_age < 0:
        raise ConfigError("max_retry_token_age", f"must be >= 0 seconds, got {config.max_retry_token_age}")
    if config.tracer is not None and not callable(config.tracer):
        raise ConfigError("tracer", "must be a callable(perspective, odcid) returning a ConnectionTracer")
    preferred_address_pair(config)


def preferred_address_pair(config: Config) -> tuple[HostPort | None, HostPort | None] | None:
    """``Config.preferred_address`` as (IPv4 (host, port) | None, IPv6 (host, port) | None), the two
    families of the preferred_address transport parameter (RFC 9000 §18.2); None when unset.

    Raises ConfigError("preferred_address", ...) saying what to fix.
    """
    value = config.preferred_address
    if value is None:
        return None
    if isinstance(value, str):
        items: tuple[object, ...] = (value,)
    elif isinstance(value, tuple):
        items = value
    else:
        raise ConfigError(
            "preferred_address",
            f"must be a 'host:port' string or a tuple of them, got {type(value).__name__}",
        )
    if len(items) == 2 and isinstance(items[0], str) and isinstance(items[1], int):
        raise ConfigError(
            "preferred_address",
            f"give 'host:port' strings, not a (host, port) pair: write {_join(items[0], items[1])!r}",
        )
    if not items:
        raise ConfigError("preferred_address", "names no address: give one, or None for no preferred address")
    if len(items) > 2:
        # §18.2: the parameter carries one IPv4 and one IPv6 address.
        raise ConfigError(
            "preferred_address",
            f"names {len(items)} addresses; the transport parameter holds at most one IPv4 and one IPv6",
        )
    ipv4: HostPort | None = None
    ipv6: HostPort | None = None
    for item in items:
        host, port, version = _parse_preferred(item)
        if version == 4:
            if ipv4 is not None:
                raise ConfigError(
                    "preferred_address", f"names two IPv4 addresses ({ipv4[0]} and {host}); keep one"
                )
            ipv4 = (host, port)
        else:
            if ipv6 is not None:
                raise ConfigError(
                    "preferred_address", f"names two IPv6 addresses ({ipv6[0]} and {host}); keep one"
                )
            ipv6 = (host, port)
    return ipv4, ipv6


def _join(host: str, port: object) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_preferred(item: object) -> tuple[str, int, int]:
    """One ``"a.b.c.d:port"`` / ``"[v6]:port"`` → (host, port, IP version)."""
    if not isinstance(item, str):
        raise ConfigError("preferred_address", f"each address must be a 'host:port' string, got {item!r}")
    shape = "expected 'a.b.c.d:port' or '[v6]:port'"
    if item.startswith("["):
        end = item.find("]")
        if end < 0 or not item[end + 1 :].startswith(":"):
            raise ConfigError("preferred_address", f"{item!r} is malformed; {shape}")
        host, port_text, bracketed = item[1:end], item[end + 2 :], True
    else:
        host, sep, port_text = item.rpartition(":")
        if not sep:
            raise ConfigError("preferred_address", f"{item!r} has no port; {shape}")
        if ":" in host:
            raise ConfigError(
                "preferred_address", f"{item!r}: put the IPv6 address in brackets: [{host}]:port"
            )
        bracketed = False
    if not port_text.isdigit():
        raise ConfigError("preferred_address", f"the port in {item!r} is not a number; {shape}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        # A client cannot send to port 0 (RFC 9000 §21.5.6 lists such addresses as refused).
        raise ConfigError("preferred_address", f"the port in {item!r} must be 1..65535, got {port}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            "preferred_address",
            f"{host!r} in {item!r} is not a literal IP address; the transport parameter carries "
            "addresses, not names (resolve it first)",
        ) from None
    if isinstance(ip, ipaddress.IPv4Address) and bracketed:
        raise ConfigError("preferred_address", f"{item!r}: write an IPv4 address without brackets")
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            raise ConfigError(
                "preferred_address", f"{item!r}: a scope (%{ip.scope_id}) cannot be sent to clients; drop it"
            )
        if ip.ipv4_mapped is not None:
            raise ConfigError(
                "preferred_address", f"{item!r} is IPv4-mapped; give it as IPv4: '{ip.ipv4_mapped}:{port}'"
            )
    if ip.is_unspecified:
        raise ConfigError(
            "preferred_address",
            f"{item!r} is the unspecified address; give the specific address clients should move to",
        )
    if ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ConfigError(
            "preferred_address", f"{item!r} is a multicast or broadcast address; clients cannot move there"
        )
    return str(ip), port, ip.version
