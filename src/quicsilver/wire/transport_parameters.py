"""QUIC transport parameters: encoding, parsing and validation (RFC 9000 §7.3, §7.4, §18).

Covers every parameter of RFC 9000 §18.2 (including preferred_address), version_information
(RFC 9368 §3), max_datagram_frame_size (RFC 9221 §3) and grease_quic_bit (RFC 9287 §3).
``parse_transport_parameters`` treats its input as hostile: a truncated encoding, a duplicate
parameter, a server-only parameter sent by a client or an out-of-range value raises
``TransportError(TRANSPORT_PARAMETER_ERROR)`` (RFC 9000 §7.4, §18.2). Unknown parameters, including
the reserved greasing identifiers 31 * N + 27 (§18.1), are ignored.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import Perspective
from quicsilver.wire.varint import append_varint, decode_varint, varint_len

__all__ = [
    "PreferredAddress",
    "TransportParameterId",
    "TransportParameters",
    "VersionInformation",
    "check_connection_id_parameters",
    "encode_transport_parameters",
    "parse_transport_parameters",
]

Buffer = bytes | bytearray | memoryview

_TPE: Final = TransportErrorCode.TRANSPORT_PARAMETER_ERROR
_MAX_CID_LEN: Final = 20
_RESET_TOKEN_LEN: Final = 16
_MAX_STREAMS: Final = 1 << 60
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")

# A parameter's field name in TransportParameters and the function validating its value.
_ParseFn = Callable[[Buffer, Perspective], object]
_Handler = tuple[str, _ParseFn]


class TransportParameterId:
    """Transport parameter identifiers (RFC 9000 §18.2, RFC 9368 §3, RFC 9221 §3, RFC 9287 §3)."""

    ORIGINAL_DESTINATION_CONNECTION_ID: Final = 0x00
    MAX_IDLE_TIMEOUT: Final = 0x01
    STATELESS_RESET_TOKEN: Final = 0x02
    MAX_UDP_PAYLOAD_SIZE: Final = 0x03
    INITIAL_MAX_DATA: Final = 0x04
    INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: Final = 0x05
    INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: Final = 0x06
    INITIAL_MAX_STREAM_DATA_UNI: Final = 0x07
    INITIAL_MAX_STREAMS_BIDI: Final = 0x08
    INITIAL_MAX_STREAMS_UNI: Final = 0x09
    ACK_DELAY_EXPONENT: Final = 0x0A
    MAX_ACK_DELAY: Final = 0x0B
    DISABLE_ACTIVE_MIGRATION: Final = 0x0C
    PREFERRED_ADDRESS: Final = 0x0D
    ACTIVE_CONNECTION_ID_LIMIT: Final = 0x0E
    INITIAL_SOURCE_CONNECTION_ID: Final = 0x0F
    RETRY_SOURCE_CONNECTION_ID: Final = 0x10
    VERSION_INFORMATION: Final = 0x11
    MAX_DATAGRAM_FRAME_SIZE: Final = 0x20
    GREASE_QUIC_BIT: Final = 0x2AB2


_ID: Final = TransportParameterId

# RFC 9000 §18.2: "A client MUST NOT include any server-only transport parameter:
# original_destination_connection_id, preferred_address, retry_source_connection_id, or
# stateless_reset_token. A server MUST treat receipt of any of these transport parameters as a
# connection error of type TRANSPORT_PARAMETER_ERROR."
SERVER_ONLY_PARAMETERS: Final = frozenset(
    (
        _ID.ORIGINAL_DESTINATION_CONNECTION_ID,
        _ID.PREFERRED_ADDRESS,
        _ID.RETRY_SOURCE_CONNECTION_ID,
        _ID.STATELESS_RESET_TOKEN,
    )
)


@dataclass(frozen=True, slots=True)
class PreferredAddress:
    """The server's preferred_address (RFC 9000 §18.2, §9.6).

    ``ipv4_address`` / ``ipv6_address`` are ``(host, port)``, or None when the server sends the
    all-zero address and port for that family.
    """

    ipv4_address: tuple[str, int] | None
    ipv6_address: tuple[str, int] | None
    connection_id: bytes
    stateless_reset_token: bytes


@dataclass(frozen=True, slots=True)
class VersionInformation:
    """Version Information (RFC 9368 §3): the sender's Chosen Version and its Available Versions."""

    chosen_version: int
    available_versions: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportParameters:
    """The transport parameters of one endpoint, each with its RFC 9000 §18.2 default.

    Durations are in milliseconds, as on the wire. Connection ID parameters are None when absent.
    ``max_datagram_frame_size`` is None when DATAGRAM is not supported (RFC 9221 §3).
    """

    original_destination_connection_id: bytes | None = None
    max_idle_timeout: int = 0  # ms; 0 = no idle timeout from this endpoint
    stateless_reset_token: bytes | None = None
    max_udp_payload_size: int = 65527
    initial_max_data: int = 0
    initial_max_stream_data_bidi_local: int = 0
    initial_max_stream_data_bidi_remote: int = 0
    initial_max_stream_data_uni: int = 0
    initial_max_streams_bidi: int = 0
    initial_max_streams_uni: int = 0
    ack_delay_exponent: int = 3
    max_ack_delay: int = 25  # ms
    disable_active_migration: bool = False
    preferred_address: PreferredAddress | None = None
    active_connection_id_limit: int = 2
    initial_source_connection_id: bytes | None = None
    retry_source_connection_id: bytes | None = None
    max_datagram_frame_size: int | None = None
    version_information: VersionInformation | None = None
    grease_quic_bit: bool = False
    unknown: tuple[tuple[int, bytes], ...] = field(default=(), compare=False)
    """Parameters this implementation does not know, as received (ignored, RFC 9000 §7.4.2).
    Also written by the encoder, e.g. for greasing with reserved IDs (RFC 9000 §18.1)."""


# --------------------------------------------------------------------------------------------------
# Encoding


def _append_param(buf: bytearray, param_id: int, value: bytes | bytearray) -> None:
    append_varint(buf, param_id)
    append_varint(buf, len(value))
    buf += value


def _append_int_param(buf: bytearray, param_id: int, value: int) -> None:
    append_varint(buf, param_id)
    append_varint(buf, varint_len(value))
    append_varint(buf, value)


def _encode_preferred_address(pa: PreferredAddress) -> bytes:
    out = bytearray()
    if pa.ipv4_address is None:
        out += bytes(6)
    else:
        out += ipaddress.IPv4Address(pa.ipv4_address[0]).packed + _U16.pack(pa.ipv4_address[1])
    if pa.ipv6_address is None:
        out += bytes(18)
    else:
        out += ipaddress.IPv6Address(pa.ipv6_address[0]).packed + _U16.pack(pa.ipv6_address[1])
    out.append(len(pa.connection_id))
    out += pa.connection_id
    out += pa.stateless_reset_token
    return bytes(out)


def encode_transport_parameters(tp: TransportParameters) -> bytes:
    """Encode ``tp`` for the quic_transport_parameters TLS extension (RFC 9000 §18).

    Parameters at their default value are omitted (absence means the default); parameters in
    ``tp.unknown`` are appended as given.
    """
    buf = bytearray()
    d = _DEFAULTS
    if tp.original_destination_connection_id is not None:
        _append_param(buf, _ID.ORIGINAL_DESTINATION_CONNECTION_ID, tp.original_destination_connection_id)
    if tp.max_idle_timeout != d.max_idle_timeout:
        _append_int_param(buf, _ID.MAX_IDLE_TIMEOUT, tp.max_idle_timeout)
    if tp.stateless_reset_token is not None:
        _append_param(buf, _ID.STATELESS_RESET_TOKEN, tp.stateless_reset_token)
    for param_id, value, default in (
        (_ID.MAX_UDP_PAYLOAD_SIZE, tp.max_udp_payload_size, d.max_udp_payload_size),
        (_ID.INITIAL_MAX_DATA, tp.initial_max_data, 0),
        (_ID.INITIAL_MAX_STREAM_DATA_BIDI_LOCAL, tp.initial_max_stream_data_bidi_local, 0),
        (_ID.INITIAL_MAX_STREAM_DATA_BIDI_REMOTE, tp.initial_max_stream_data_bidi_remote, 0),
        (_ID.INITIAL_MAX_STREAM_DATA_UNI, tp.initial_max_stream_data_uni, 0),
        (_ID.INITIAL_MAX_STREAMS_BIDI, tp.initial_max_streams_bidi, 0),
        (_ID.INITIAL_MAX_STREAMS_UNI, tp.initial_max_streams_uni, 0),
        (_ID.ACK_DELAY_EXPONENT, tp.ack_delay_exponent, d.ack_delay_exponent),
        (_ID.MAX_ACK_DELAY, tp.max_ack_delay, d.max_ack_delay),
    ):
        if value != default:
            _append_int_param(buf, param_id, value)
    if tp.disable_active_migration:
        _append_param(buf, _ID.DISABLE_ACTIVE_MIGRATION, b"")
    if tp.preferred_address is not None:
        _append_param(buf, _ID.PREFERRED_ADDRESS, _encode_preferred_address(tp.preferred_address))
    if tp.active_connection_id_limit != d.active_connection_id_limit:
        _append_int_param(buf, _ID.ACTIVE_CONNECTION_ID_LIMIT, tp.active_connection_id_limit)
    if tp.initial_source_connection_id is not None:
        _append_param(buf, _ID.INITIAL_SOURCE_CONNECTION_ID, tp.initial_source_connection_id)
    if tp.retry_source_connection_id is not None:
        _append_param(buf, _ID.RETRY_SOURCE_CONNECTION_ID, tp.retry_source_connection_id)
    if tp.version_information is not None:
        vi = tp.version_information
        encoded = b"".join(_U32.pack(v) for v in (vi.chosen_version, *vi.available_versions))
        _append_param(buf, _ID.VERSION_INFORMATION, encoded)
    if tp.max_datagram_frame_size is not None:
        _append_int_param(buf, _ID.MAX_DATAGRAM_FRAME_SIZE, tp.max_datagram_frame_size)
    if tp.grease_quic_bit:
        _append_param(buf, _ID.GREASE_QUIC_BIT, b"")
    for param_id, raw in tp.unknown:
        _append_param(buf, param_id, raw)
    return bytes(buf)


# --------------------------------------------------------------------------------------------------
# Parsing and validation


def _error(reason: str) -> TransportError:
    return TransportError(_TPE, reason)


def _int_value(value: Buffer, name: str) -> int:
    """A parameter whose value is a single varint filling the whole value field."""
    if not value:
        raise _error(f"{name}: empty value")
    try:
        v, end = decode_varint(value, 0)
    except TransportError:
        raise _error(f"{name}: truncated varint") from None
    if end != len(value):
        raise _error(f"{name}: value length {len(value)} does not match its varint")
    return v


def _cid_value(value: Buffer, name: str) -> bytes:
    if len(value) > _MAX_CID_LEN:
        raise _error(f"{name}: connection ID of {len(value)} bytes > 20")
    return bytes(value)


def _parse_preferred_address(value: Buffer) -> PreferredAddress:
    # IPv4 (4) + port (2) + IPv6 (16) + port (2) + CID length (1) + CID + reset token (16).
    if len(value) < 25:
        raise _error("preferred_address truncated")
    cid_len = value[24]
    # RFC 9000 §18.2: "A server that chooses a zero-length connection ID MUST NOT provide a
    # preferred address. Similarly, a server MUST NOT include a zero-length connection ID in this
    # transport parameter. A client MUST treat a violation of these requirements as a connection
    # error of type TRANSPORT_PARAMETER_ERROR."
    if not 1 <= cid_len <= _MAX_CID_LEN:
        raise _error(f"preferred_address connection ID length {cid_len}")
    if len(value) != 25 + cid_len + _RESET_TOKEN_LEN:
        raise _error("preferred_address has the wrong length")
    v4_port = _U16.unpack_from(value, 4)[0]
    v6_port = _U16.unpack_from(value, 22)[0]
    v4_raw = bytes(value[0:4])
    v6_raw = bytes(value[6:22])
    ipv4 = None if v4_raw == bytes(4) and v4_port == 0 else (str(ipaddress.IPv4Address(v4_raw)), v4_port)
    ipv6 = None if v6_raw == bytes(16) and v6_port == 0 else (str(ipaddress.IPv6Address(v6_raw)), v6_port)
    return PreferredAddress(ipv4, ipv6, bytes(value[25 : 25 + cid_len]), bytes(value[25 + cid_len :]))


def _parse_version_information(value: Buffer, sent_by: Perspective) -> VersionInformation:
    # RFC 9368 §4: a Version Information that is too short, not a multiple of four bytes long, has
    # a zero Chosen or Available Version, or (received by a server) whose Chosen Version is not in
    # Available Versions, is a parsing failure: TRANSPORT_PARAMETER_ERROR in QUIC v1.
    if len(value) < 4 or len(value) % 4:
        raise _error(f"version_information of {len(value)} bytes")
    versions = [_U32.unpack_from(value, p)[0] for p in range(0, len(value), 4)]
    if 0 in versions:
        raise _error("version_information contains version 0")
    chosen, available = versions[0], tuple(versions[1:])
    if sent_by == Perspective.CLIENT and chosen not in available:
        raise _error("client's Chosen Version is not among its Available Versions")
    return VersionInformation(chosen, available)


def _flag_value(value: Buffer, name: str) -> bool:
    if value:
        raise _error(f"{name} must be empty")
    return True


def parse_transport_parameters(data: Buffer, sent_by: Perspective) -> TransportParameters:
    """Parse and validate the transport parameters an endpoint (``sent_by``) sent.

    Raises TransportError(TRANSPORT_PARAMETER_ERROR) for any violation of RFC 9000 §7.4 / §18.2,
    RFC 9368 §4, RFC 9221 §3 or RFC 9287 §3. Unknown parameters are kept in ``unknown``.
    """
    n = len(data)
    pos = 0
    seen: set[int] = set()
    values: dict[str, Any] = {}
    unknown: list[tuple[int, bytes]] = []
    while pos < n:
        try:
            param_id, pos = decode_varint(data, pos)
            length, pos = decode_varint(data, pos)
        except TransportError:
            raise _error("truncated transport parameter header") from None
        end = pos + length
        if end > n:
            raise _error(f"transport parameter {param_id:#x} truncated")
        value = data[pos:end]
        pos = end
        # RFC 9000 §7.4: "An endpoint SHOULD treat receipt of duplicate transport parameters as a
        # connection error of type TRANSPORT_PARAMETER_ERROR."
        if param_id in seen:
            raise _error(f"duplicate transport parameter {param_id:#x}")
        seen.add(param_id)
        if sent_by == Perspective.CLIENT and param_id in SERVER_ONLY_PARAMETERS:
            raise _error(f"server-only transport parameter {param_id:#x} sent by the client")
        handler = _HANDLERS.get(param_id)
        if handler is None:
            # RFC 9000 §7.4.2: "An endpoint MUST ignore transport parameters that it does not support."
            unknown.append((param_id, bytes(value)))
            continue
        name, parse = handler
        values[name] = parse(value, sent_by)
    return TransportParameters(**values, unknown=tuple(unknown))


def _ranged(name: str, low: int, high: int) -> _Handler:
    def parse(value: Buffer, sent_by: Perspective) -> object:
        v = _int_value(value, name)
        if not low <= v <= high:
            raise _error(f"{name} {v} outside {low}..{high}")
        return v

    return name, parse


def _varint_param(name: str) -> _Handler:
    return _ranged(name, 0, (1 << 62) - 1)


def _cid_param(name: str) -> _Handler:
    return name, lambda value, sent_by: _cid_value(value, name)


def _flag_param(name: str) -> _Handler:
    return name, lambda value, sent_by: _flag_value(value, name)


def _reset_token(value: Buffer, sent_by: Perspective) -> object:
    # RFC 9000 §18.2: "This transport parameter ... is a sequence of 16 bytes."
    if len(value) != _RESET_TOKEN_LEN:
        raise _error(f"stateless_reset_token of {len(value)} bytes")
    return bytes(value)


_HANDLERS: Final[dict[int, _Handler]] = {
    _ID.ORIGINAL_DESTINATION_CONNECTION_ID: _cid_param("original_destination_connection_id"),
    _ID.MAX_IDLE_TIMEOUT: _varint_param("max_idle_timeout"),
    _ID.STATELESS_RESET_TOKEN: ("stateless_reset_token", _reset_token),
    # RFC 9000 §18.2: "Values below 1200 are invalid."
    _ID.MAX_UDP_PAYLOAD_SIZE: _ranged("max_udp_payload_size", 1200, (1 << 62) - 1),
    _ID.INITIAL_MAX_DATA: _varint_param("initial_max_data"),
    _ID.INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: _varint_param("initial_max_stream_data_bidi_local"),
    _ID.INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: _varint_param("initial_max_stream_data_bidi_remote"),
    _ID.INITIAL_MAX_STREAM_DATA_UNI: _varint_param("initial_max_stream_data_uni"),
    # RFC 9000 §4.6: a max_streams value above 2^60 is a TRANSPORT_PARAMETER_ERROR.
    _ID.INITIAL_MAX_STREAMS_BIDI: _ranged("initial_max_streams_bidi", 0, _MAX_STREAMS),
    _ID.INITIAL_MAX_STREAMS_UNI: _ranged("initial_max_streams_uni", 0, _MAX_STREAMS),
    # RFC 9000 §18.2: "Values above 20 are invalid."
    _ID.ACK_DELAY_EXPONENT: _ranged("ack_delay_exponent", 0, 20),
    # RFC 9000 §18.2: "Values of 2^14 or greater are invalid."
    _ID.MAX_ACK_DELAY: _ranged("max_ack_delay", 0, (1 << 14) - 1),
    _ID.DISABLE_ACTIVE_MIGRATION: _flag_param("disable_active_migration"),
    _ID.PREFERRED_ADDRESS: ("preferred_address", lambda value, sent_by: _parse_preferred_address(value)),
    # RFC 9000 §18.2: "The value of the active_connection_id_limit parameter MUST be at least 2."
    _ID.ACTIVE_CONNECTION_ID_LIMIT: _ranged("active_connection_id_limit", 2, (1 << 62) - 1),
    _ID.INITIAL_SOURCE_CONNECTION_ID: _cid_param("initial_source_connection_id"),
    _ID.RETRY_SOURCE_CONNECTION_ID: _cid_param("retry_source_connection_id"),
    _ID.VERSION_INFORMATION: ("version_information", _parse_version_information),
    _ID.MAX_DATAGRAM_FRAME_SIZE: _varint_param("max_datagram_frame_size"),
    # RFC 9287 §3: "the grease_quic_bit transport parameter ... has a zero-length value. An
    # endpoint that receives ... with non-zero length MUST treat ... TRANSPORT_PARAMETER_ERROR."
    _ID.GREASE_QUIC_BIT: _flag_param("grease_quic_bit"),
}

_DEFAULTS: Final = TransportParameters()


def check_connection_id_parameters(
    tp: TransportParameters,
    sent_by: Perspective,
    *,
    initial_scid: bytes,
    original_dcid: bytes | None = None,
    retry_scid: bytes | None = None,
) -> None:
    """Authenticate the handshake connection IDs (RFC 9000 §7.3).

    ``initial_scid`` is the Source Connection ID of the peer's first Initial packet. For a
    server's parameters (checked by the client), ``original_dcid`` is the DCID of the client's
    first Initial and ``retry_scid`` the SCID of the Retry packet it received (None if none).
    Absence of a required parameter is TRANSPORT_PARAMETER_ERROR; a mismatch, or a
    retry_source_connection_id without a Retry, is PROTOCOL_VIOLATION.
    """
    # RFC 9000 §7.3: "An endpoint MUST treat the absence of the initial_source_connection_id
    # transport parameter from either endpoint or the absence of the
    # original_destination_connection_id transport parameter from the server as a connection error
    # of type TRANSPORT_PARAMETER_ERROR."
    if tp.initial_source_connection_id is None:
        raise _error("initial_source_connection_id missing")
    violation = TransportErrorCode.PROTOCOL_VIOLATION
    if tp.initial_source_connection_id != initial_scid:
        raise TransportError(violation, "initial_source_connection_id does not match the Initial SCID")
    if sent_by != Perspective.SERVER:
        return
    if tp.original_destination_connection_id is None:
        raise _error("original_destination_connection_id missing")
    if tp.original_destination_connection_id != original_dcid:
        raise TransportError(violation, "original_destination_connection_id does not match")
    # RFC 9000 §7.3: absence of retry_source_connection_id after a Retry, or its presence without
    # one, or a mismatch is a TRANSPORT_PARAMETER_ERROR or PROTOCOL_VIOLATION.
    if tp.retry_source_connection_id != retry_scid:
        raise TransportError(violation, "retry_source_connection_id does not match the Retry packet")
