"""Tracer hooks, shaped like quic-go's logging.Tracer / logging.ConnectionTracer.

Owners call these with structured values; the default is ``None`` (no tracer), and callers
guard with ``if tracer is not None`` only at the owner, so tracing costs nothing when unused.
A tracer may implement any subset: use :class:`ConnectionTracer` / :class:`Tracer` as base
classes, whose methods do nothing.
"""

from __future__ import annotations

from typing import Any


class DropReason:
    """Why a packet was dropped (qlog packet_dropped trigger names)."""

    DOS_PREVENTION = "dos_prevention"
    UNKNOWN_CONNECTION_ID = "unknown_connection_id"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNEXPECTED_PACKET = "unexpected_packet"
    UNEXPECTED_VERSION = "unexpected_version"
    HEADER_PARSE_ERROR = "header_parse_error"
    PAYLOAD_DECRYPT_ERROR = "payload_decrypt_error"
    KEY_UNAVAILABLE = "key_unavailable"
    DUPLICATE = "duplicate"
    TOO_SMALL = "too_small"
    INVALID_TOKEN = "invalid_token"
    PROTOCOL_VIOLATION = "protocol_violation"


class Tracer:
    """Transport-level events (one per Transport)."""

    def sent_packet(self, addr: Any, header: Any, size: int, frames: Any) -> None:
        """A packet sent outside any connection (VN, Retry, stateless reset, refusal)."""

    def sent_version_negotiation_packet(self, addr: Any, dcid: bytes, scid: bytes, versions: Any) -> None:
        """A Version Negotiation packet was sent."""

    def dropped_packet(self, addr: Any, packet_type: str, size: int, reason: str) -> None:
        """A datagram was dropped before reaching a connection."""

    def debug(self, name: str, msg: str) -> None:
        """Free-form debug output."""


class ConnectionTracer:
    """Connection-level events (one per connection). All methods optional, default no-op."""

    def started_connection(self, local: Any, remote: Any, src_cid: bytes, dest_cid: bytes) -> None:
        pass

    def negotiated_version(self, chosen: int, client_versions: Any, server_versions: Any) -> None:
        pass

    def closed_connection(self, error: Exception) -> None:
        pass

    def sent_transport_parameters(self, params: Any) -> None:
        pass

    def received_transport_parameters(self, params: Any) -> None:
        pass

    def sent_packet(self, packet_type: str, pn: int, size: int, frames: Any) -> None:
        pass

    def received_packet(self, packet_type: str, pn: int, size: int, frames: Any) -> None:
        pass

    def dropped_packet(self, packet_type: str, pn: int | None, size: int, reason: str) -> None:
        pass

    def lost_packet(self, packet_type: str, pn: int, trigger: str) -> None:
        pass

    def updated_metrics(self, rtt: Any, cwnd: int, bytes_in_flight: int, packets_in_flight: int) -> None:
        pass

    def updated_congestion_state(self, state: str) -> None:
        pass

    def updated_key(self, generation: int, remote: bool) -> None:
        pass

    def updated_key_from_tls(self, level: Any, is_client_key: bool) -> None:
        pass

    def dropped_encryption_level(self, level: Any) -> None:
        pass

    def set_loss_timer(self, timer_type: str, level: Any, time: float) -> None:
        pass

    def loss_timer_expired(self, timer_type: str, level: Any) -> None:
        pass

    def updated_mtu(self, mtu: int, done: bool) -> None:
        pass

    def updated_state(self, old: str, new: str) -> None:
        pass

    def debug(self, name: str, msg: str) -> None:
        pass

    def close(self) -> None:
        pass
