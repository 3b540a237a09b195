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
from dataclasses import dataclass
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


_FIELD_NAMES: Final = (
    "original_destination_connection_id",
    "max_idle_timeout",
    "stateless_reset_token",
    "max_udp_payload_size",
    "initial_max_data",
    "initial_max_stream_data_bidi_local",
    "initial_max_stream_data_bidi_remote",
    "initial_max_stream_data_uni",
    "initial_max_streams_bidi",
    "initial_max_streams_uni",
    "ack_delay_exponent",
    "max_ack_delay",
    "disable_active_migration",
    "preferred_address",
    "active_connection_id_limit",
    "initial_source_connection_id",
    "retry_source_connection_id",
    "max_datagram_frame_size",
    "version_information",
    "grease_quic_bit",
)


class TransportParameters:
    """The transport parameters of one endpoint, each with its RFC 9000 §18.2 default.

    Durations are in milliseconds, as on the wire. Connection ID parameters are None when absent.
    ``max_datagram_frame_size`` is None when DATAGRAM is not supported (RFC 9221 §3).
    ``unknown`` holds the parameters this implementation does not know, as received (ignored, RFC
    9000 §7.4.2); the encoder also writes them, e.g. for greasing with reserved IDs (RFC 9000
    §18.1). They take no part in equality.

    Immutable, like a frozen dataclass (compiled, its attributes are read-only), but a plain class:
    each side builds two per handshake, and a frozen dataclass's generated ``__init__`` sets its 21
    fields one ``object.__setattr__`` at a time in interpreted code (~8 us against ~1 us).
    ``replace`` and ``as_dict`` stand in for :func:`dataclasses.replace` and
    :func:`dataclasses.asdict`.
    """

    __slots__ = (*_FIELD_NAMES, "unknown")

    def __init__(
        self,
        *,
        original_destination_connection_id: bytes | None = None,
        max_idle_timeout: int = 0,  # ms; 0 = no idle timeout from this endpoint
        stateless_reset_token: bytes | None = None,
        max_udp_payload_size: int = 65527,
        initial_max_data: int = 0,
        initial_max_stream_data_bidi_local: int = 0,
        initial_max_stream_data_bidi_remote: int = 0,
        initial_max_stream_data_uni: int = 0,
        initial_max_streams_bidi: int = 0,
        initial_max_streams_uni: int = 0,
        ack_delay_exponent: int = 3,
        max_ack_delay: int = 25,  # ms
        disable_active_migration: bool = False,
        preferred_address: PreferredAddress | None = None,
        active_connection_id_limit: int = 2,
        initial_source_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
        max_datagram_frame_size: int | None = None,
        version_information: VersionInformation | None = None,
        grease_quic_bit: bool = False,
        unknown: tuple[tuple[int, bytes], ...] = (),
    ) -> None:
        self.original_destination_connection_id: Final = original_destination_connection_id
        self.max_idle_timeout: Final = max_idle_timeout
        self.stateless_reset_token: Final = stateless_reset_token
        self.max_udp_payload_size: Final = max_udp_payload_size
        self.initial_max_data: Final = initial_max_data
        self.initial_max_stream_data_bidi_local: Final = initial_max_stream_data_bidi_local
        self.initial_max_stream_data_bidi_remote: Final = initial_max_stream_data_bidi_remote
        self.initial_max_stream_data_uni: Final = initial_max_stream_data_uni
        self.initial_max_streams_bidi: Final = initial_max_streams_bidi
        self.initial_max_streams_uni: Final = initial_max_streams_uni
        self.ack_delay_exponent: Final = ack_delay_exponent
        self.max_ack_delay: Final = max_ack_delay
        self.disable_active_migration: Final = disable_active_migration
        self.preferred_address: Final = preferred_address
        self.active_connection_id_limit: Final = active_connection_id_limit
        self.initial_source_connection_id: Final = initial_source_connection_id
        self.retry_source_connection_id: Final = retry_source_connection_id
        self.max_datagram_frame_size: Final = max_datagram_frame_size
        self.version_information: Final = version_information
        self.grease_quic_bit: Final = grease_quic_bit
        self.unknown: Final = unknown

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _FIELD_NAMES)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransportParameters):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in (*_FIELD_NAMES, "unknown"))
        return f"TransportParameters({fields})"

    def as_dict(self) -> dict[str, Any]:
        """Every field by name (``unknown`` included), as :func:`dataclasses.asdict` would list them."""
        return {name: getattr(self, name) for name in (*_FIELD_NAMES, "unknown")}

    def replace(self, **changes: Any) -> TransportParameters:
        """A copy with ``changes`` applied (as :func:`dataclasses.replace`)."""
        values = self.as_dict()
        unexpected = changes.keys() - values.keys()
        if unexpected:
            raise TypeError(f"TransportParameters has no field {sorted(unexpected)[0]!r}")
        values.update(changes)
        return TransportParameters(**values)


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
    if tp.max_udp_payload_size != d.max_udp_payload_size:
        _append_int_param(buf, _ID.MAX_UDP_PAYLOAD_SIZE, tp.max_udp_payload_size)
    if tp.initial_max_data:
        _append_int_param(buf, _ID.INITIAL_MAX_DATA, tp.initial_max_data)
    if tp.initial_max_stream_data_bidi_local:
        _append_int_param(buf, _ID.INITIAL_MAX_STREAM_DATA_BIDI_LOCAL, tp.initial_max_stream_data_bidi_local)
    if tp.initial_max_stream_data_bidi_remote:
        remote = tp.initial_max_stream_data_bidi_remote
        _append_int_param(buf, _ID.INITIAL_MAX_STREAM_DATA_BIDI_REMOTE, remote)
    if tp.initial_max_stream_data_uni:
        _append_int_param(buf, _ID.INITIAL_MAX_STREAM_DATA_UNI, tp.initial_max_stream_data_uni)
    if tp.initial_max_streams_bidi:
        _append_int_param(buf, _ID.INITIAL_MAX_STREAMS_BIDI, tp.initial_max_streams_bidi)
    if tp.initial_max_streams_uni:
        _append_int_param(buf, _ID.INITIAL_MAX_STREAMS_UNI, tp.initial_max_streams_uni)
    if tp.ack_delay_exponent != d.ack_delay_exponent:
        _append_int_param(buf, _ID.ACK_DELAY_EXPONENT, tp.ack_delay_exponent)
    if tp.max_ack_delay != d.max_ack_delay:
        _append_int_param(buf, _ID.MAX_ACK_DELAY, tp.max_ack_delay)
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
        append_varint(buf, _ID.VERSION_INFORMATION)
        append_varint(buf, 4 + 4 * len(vi.available_versions))
        buf += _U32.pack(vi.chosen_version)
        for version in vi.available_versions:
            buf += _U32.pack(version)
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


def _int_at(data: Buffer, pos: int, end: int, name: str, low: int = 0, high: int = (1 << 62) - 1) -> int:
    """A parameter whose value, ``data[pos:end]``, is a single varint filling the whole value field,
    within ``low..high``."""
    if pos == end:
        raise _error(f"{name}: empty value")
    try:
        v, stop = decode_varint(data, pos)
    except TransportError:
        raise _error(f"{name}: truncated varint") from None
    if stop != end:
        raise _error(f"{name}: value length {end - pos} does not match its varint")
    if not low <= v <= high:
        raise _error(f"{name} {v} outside {low}..{high}")
    return v


def _cid_at(data: Buffer, pos: int, end: int, name: str) -> bytes:
    if end - pos > _MAX_CID_LEN:
        raise _error(f"{name}: connection ID of {end - pos} bytes > 20")
    return bytes(data[pos:end])


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


def _flag_at(pos: int, end: int, name: str) -> bool:
    if end != pos:
        raise _error(f"{name} must be empty")
    return True


def parse_transport_parameters(data: Buffer, sent_by: Perspective) -> TransportParameters:
    """Parse and validate the transport parameters an endpoint (``sent_by``) sent.

    Raises TransportError(TRANSPORT_PARAMETER_ERROR) for any violation of RFC 9000 §7.4 / §18.2,
    RFC 9368 §4, RFC 9221 §3 or RFC 9287 §3. Unknown parameters are kept in ``unknown``.

    One pass over the encoding into local variables (each side parses its peer's parameters on
    the handshake's critical path), then one TransportParameters.
    """
    n = len(data)
    pos = 0
    seen: set[int] = set()
    unknown: list[tuple[int, bytes]] = []
    by_client = sent_by == Perspective.CLIENT
    odcid: bytes | None = None
    idle = 0
    reset_token: bytes | None = None
    udp_payload = 65527
    max_data = 0
    bidi_local = 0
    bidi_remote = 0
    uni = 0
    streams_bidi = 0
    streams_uni = 0
    ack_exponent = 3
    ack_delay = 25
    no_migration = False
    preferred: PreferredAddress | None = None
    cid_limit = 2
    iscid: bytes | None = None
    rscid: bytes | None = None
    datagram_size: int | None = None
    version_info: VersionInformation | None = None
    grease = False
    while pos < n:
        try:
            param_id, pos = decode_varint(data, pos)
            length, pos = decode_varint(data, pos)
        except TransportError:
            raise _error("truncated transport parameter header") from None
        end = pos + length
        if end > n:
            raise _error(f"transport parameter {param_id:#x} truncated")
        # RFC 9000 §7.4: "An endpoint SHOULD treat receipt of duplicate transport parameters as a
        # connection error of type TRANSPORT_PARAMETER_ERROR."
        if param_id in seen:
            raise _error(f"duplicate transport parameter {param_id:#x}")
        seen.add(param_id)
        if by_client and param_id in SERVER_ONLY_PARAMETERS:
            raise _error(f"server-only transport parameter {param_id:#x} sent by the client")
        if param_id == TransportParameterId.INITIAL_MAX_DATA:
            max_data = _int_at(data, pos, end, "initial_max_data")
        elif param_id == TransportParameterId.INITIAL_MAX_STREAM_DATA_BIDI_LOCAL:
            bidi_local = _int_at(data, pos, end, "initial_max_stream_data_bidi_local")
        elif param_id == TransportParameterId.INITIAL_MAX_STREAM_DATA_BIDI_REMOTE:
            bidi_remote = _int_at(data, pos, end, "initial_max_stream_data_bidi_remote")
        elif param_id == TransportParameterId.INITIAL_MAX_STREAM_DATA_UNI:
            uni = _int_at(data, pos, end, "initial_max_stream_data_uni")
        # RFC 9000 §4.6: a max_streams value above 2^60 is a TRANSPORT_PARAMETER_ERROR.
        elif param_id == TransportParameterId.INITIAL_MAX_STREAMS_BIDI:
            streams_bidi = _int_at(data, pos, end, "initial_max_streams_bidi", 0, _MAX_STREAMS)
        elif param_id == TransportParameterId.INITIAL_MAX_STREAMS_UNI:
            streams_uni = _int_at(data, pos, end, "initial_max_streams_uni", 0, _MAX_STREAMS)
        elif param_id == TransportParameterId.MAX_IDLE_TIMEOUT:
            idle = _int_at(data, pos, end, "max_idle_timeout")
        elif param_id == TransportParameterId.MAX_UDP_PAYLOAD_SIZE:
            # RFC 9000 §18.2: "Values below 1200 are invalid."
            udp_payload = _int_at(data, pos, end, "max_udp_payload_size", 1200)
        elif param_id == TransportParameterId.ACK_DELAY_EXPONENT:
            # RFC 9000 §18.2: "Values above 20 are invalid."
            ack_exponent = _int_at(data, pos, end, "ack_delay_exponent", 0, 20)
        elif param_id == TransportParameterId.MAX_ACK_DELAY:
            # RFC 9000 §18.2: "Values of 2^14 or greater are invalid."
            ack_delay = _int_at(data, pos, end, "max_ack_delay", 0, (1 << 14) - 1)
        elif param_id == TransportParameterId.ACTIVE_CONNECTION_ID_LIMIT:
            # RFC 9000 §18.2: "The value of the active_connection_id_limit parameter MUST be at least 2."
            cid_limit = _int_at(data, pos, end, "active_connection_id_limit", 2)
        elif param_id == TransportParameterId.MAX_DATAGRAM_FRAME_SIZE:
            datagram_size = _int_at(data, pos, end, "max_datagram_frame_size")
        elif param_id == TransportParameterId.INITIAL_SOURCE_CONNECTION_ID:
            iscid = _cid_at(data, pos, end, "initial_source_connection_id")
        elif param_id == TransportParameterId.ORIGINAL_DESTINATION_CONNECTION_ID:
            odcid = _cid_at(data, pos, end, "original_destination_connection_id")
        elif param_id == TransportParameterId.RETRY_SOURCE_CONNECTION_ID:
            rscid = _cid_at(data, pos, end, "retry_source_connection_id")
        elif param_id == TransportParameterId.STATELESS_RESET_TOKEN:
            # RFC 9000 §18.2: "This transport parameter ... is a sequence of 16 bytes."
            if length != _RESET_TOKEN_LEN:
                raise _error(f"stateless_reset_token of {length} bytes")
            reset_token = bytes(data[pos:end])
        elif param_id == TransportParameterId.DISABLE_ACTIVE_MIGRATION:
            no_migration = _flag_at(pos, end, "disable_active_migration")
        elif param_id == TransportParameterId.GREASE_QUIC_BIT:
            # RFC 9287 §3: "the grease_quic_bit transport parameter ... has a zero-length value. An
            # endpoint that receives ... with non-zero length MUST treat ... TRANSPORT_PARAMETER_ERROR."
            grease = _flag_at(pos, end, "grease_quic_bit")
        elif param_id == TransportParameterId.VERSION_INFORMATION:
            version_info = _parse_version_information(data[pos:end], sent_by)
        elif param_id == TransportParameterId.PREFERRED_ADDRESS:
            preferred = _parse_preferred_address(data[pos:end])
        else:
            # RFC 9000 §7.4.2: "An endpoint MUST ignore transport parameters that it does not support."
            unknown.append((param_id, bytes(data[pos:end])))
        pos = end
    return TransportParameters(
        original_destination_connection_id=odcid,
        max_idle_timeout=idle,
        stateless_reset_token=reset_token,
        max_udp_payload_size=udp_payload,
        initial_max_data=max_data,
        initial_max_stream_data_bidi_local=bidi_local,
        initial_max_stream_data_bidi_remote=bidi_remote,
        initial_max_stream_data_uni=uni,
        initial_max_streams_bidi=streams_bidi,
        initial_max_streams_uni=streams_uni,
        ack_delay_exponent=ack_exponent,
        max_ack_delay=ack_delay,
        disable_active_migration=no_migration,
        preferred_address=preferred,
        active_connection_id_limit=cid_limit,
        initial_source_connection_id=iscid,
        retry_source_connection_id=rscid,
        max_datagram_frame_size=datagram_size,
        version_information=version_info,
        grease_quic_bit=grease,
        unknown=tuple(unknown),
    )


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
