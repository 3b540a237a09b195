"""Connection configuration: quic-go's ``Config`` in snake_case, validated and populated.

quic-go's ``createServer`` first validates the Config, then fills in defaults. quic-go clamps
out-of-range values silently; quicsilver raises :class:`ConfigError` naming the field instead, at
the call that passed the bad Config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .protocol import MAX_PACKET_BUFFER_SIZE, MAX_VARINT, MIN_INITIAL_PACKET_SIZE, SUPPORTED_VERSIONS

_MAX_STREAMS = 1 << 60  # RFC 9000 §4.6: a stream count cannot exceed 2^60


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
        """A copy with derived defaults filled in (quic-go's populateConfig)."""
        changes: dict[str, Any] = {}
        if self.max_retry_token_age == 0:
            changes["max_retry_token_age"] = 2 * self.handshake_idle_timeout
        if self.keep_alive_period > self.max_idle_timeout / 2:
            changes["keep_alive_period"] = self.max_idle_timeout / 2
        return dataclasses.replace(self, **changes) if changes else self


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
