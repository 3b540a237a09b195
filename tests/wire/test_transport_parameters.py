"""Transport parameters (RFC 9000 §7.3, §7.4, §18; RFC 9368 §3-4; RFC 9221 §3; RFC 9287 §3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import VERSION_1, VERSION_2, Perspective
from quicsilver.wire.transport_parameters import (
    PreferredAddress,
    TransportParameterId,
    TransportParameters,
    VersionInformation,
    check_connection_id_parameters,
    encode_transport_parameters,
    parse_transport_parameters,
)
from quicsilver.wire.varint import MAX_VARINT, decode_varint, encode_varint
from tests.wire.strategies import WIRE_SETTINGS

TPE = TransportErrorCode.TRANSPORT_PARAMETER_ERROR
CLIENT, SERVER = Perspective.CLIENT, Perspective.SERVER
varints = st.integers(min_value=0, max_value=MAX_VARINT)
cids = st.binary(max_size=20)
versions = st.integers(min_value=1, max_value=2**32 - 1)


def param(param_id: int, value: bytes) -> bytes:
    return encode_varint(param_id) + encode_varint(len(value)) + value


def int_param(param_id: int, value: int) -> bytes:
    return param(param_id, encode_varint(value))


def tpe(data: bytes, sent_by: Perspective = SERVER) -> TransportError:
    with pytest.raises(TransportError) as exc:
        parse_transport_parameters(data, sent_by)
    assert exc.value.code == TPE
    return exc.value


preferred_addresses = st.builds(
    PreferredAddress,
    st.none() | st.tuples(st.ip_addresses(v=4).map(str), st.integers(min_value=1, max_value=65535)),
    st.none() | st.tuples(st.ip_addresses(v=6).map(str), st.integers(min_value=1, max_value=65535)),
    st.binary(min_size=1, max_size=20),
    st.binary(min_size=16, max_size=16),
)


@st.composite
def version_informations(draw: st.DrawFn) -> VersionInformation:
    available = draw(st.lists(versions, min_size=1, max_size=5))
    return VersionInformation(draw(st.sampled_from(available)), tuple(available))


@st.composite
def transport_parameters(draw: st.DrawFn, sent_by: Perspective) -> TransportParameters:
    server = sent_by == SERVER
    maybe = st.none() if not server else st.none() | cids
    return TransportParameters(
        original_destination_connection_id=draw(maybe),
        max_idle_timeout=draw(varints),
        stateless_reset_token=draw(st.none() | st.binary(min_size=16, max_size=16)) if server else None,
        max_udp_payload_size=draw(st.integers(min_value=1200, max_value=MAX_VARINT)),
        initial_max_data=draw(varints),
        initial_max_stream_data_bidi_local=draw(varints),
        initial_max_stream_data_bidi_remote=draw(varints),
        initial_max_stream_data_uni=draw(varints),
        initial_max_streams_bidi=draw(st.integers(min_value=0, max_value=1 << 60)),
        initial_max_streams_uni=draw(st.integers(min_value=0, max_value=1 << 60)),
        ack_delay_exponent=draw(st.integers(min_value=0, max_value=20)),
        max_ack_delay=draw(st.integers(min_value=0, max_value=2**14 - 1)),
        disable_active_migration=draw(st.booleans()),
        preferred_address=draw(st.none() | preferred_addresses) if server else None,
        active_connection_id_limit=draw(st.integers(min_value=2, max_value=MAX_VARINT)),
        initial_source_connection_id=draw(st.none() | cids),
        retry_source_connection_id=draw(maybe),
        max_datagram_frame_size=draw(st.none() | varints),
        version_information=draw(st.none() | version_informations()),
        grease_quic_bit=draw(st.booleans()),
    )


def boundaries(data: bytes) -> set[int]:
    """Offsets at which one encoded parameter ends and the next begins."""
    pos, ends = 0, {0}
    while pos < len(data):
        _, pos = decode_varint(data, pos)
        length, pos = decode_varint(data, pos)
        pos += length
        ends.add(pos)
    return ends


@pytest.mark.parametrize("sent_by", [CLIENT, SERVER], ids=["client", "server"])
@settings(WIRE_SETTINGS, max_examples=100)
@given(data=st.data())
def test_round_trip_and_truncations(sent_by: Perspective, data: st.DataObject) -> None:
    tp = data.draw(transport_parameters(sent_by))
    encoded = encode_transport_parameters(tp)
    assert parse_transport_parameters(encoded, sent_by) == tp
    assert parse_transport_parameters(memoryview(encoded), sent_by) == tp
    ends = boundaries(encoded)
    for cut in range(len(encoded)):
        if cut not in ends:
            tpe(encoded[:cut], sent_by)


def test_defaults_are_the_rfc_defaults() -> None:
    # RFC 9000 §18.2 defaults; an empty extension means all of them.
    tp = parse_transport_parameters(b"", CLIENT)
    assert tp == TransportParameters()
    assert (tp.max_udp_payload_size, tp.ack_delay_exponent, tp.max_ack_delay) == (65527, 3, 25)
    assert tp.active_connection_id_limit == 2
    assert tp.max_idle_timeout == 0 and tp.initial_max_data == 0
    assert tp.max_datagram_frame_size is None and tp.version_information is None
    assert not tp.disable_active_migration and not tp.grease_quic_bit
    assert encode_transport_parameters(TransportParameters()) == b""


def test_wire_encoding_of_a_few_parameters() -> None:
    tp = TransportParameters(initial_max_data=1 << 20, disable_active_migration=True, grease_quic_bit=True)
    assert encode_transport_parameters(tp) == (
        int_param(0x04, 1 << 20) + param(0x0C, b"") + param(0x2AB2, b"")
    )


@pytest.mark.parametrize(
    "param_id",
    [0x00, 0x02, 0x0D, 0x10],
    ids=["original_dcid", "stateless_reset_token", "preferred_address", "retry_scid"],
)
def test_server_only_parameters_from_client(param_id: int) -> None:
    value = {0x02: bytes(16), 0x0D: bytes(24) + b"\x01a" + bytes(16)}.get(param_id, b"abcd")
    assert "server-only" in tpe(param(param_id, value), CLIENT).reason
    parse_transport_parameters(param(param_id, value), SERVER)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(int_param(0x03, 1199), id="max_udp_payload_size-below-1200"),
        pytest.param(int_param(0x0A, 21), id="ack_delay_exponent-above-20"),
        pytest.param(int_param(0x0B, 1 << 14), id="max_ack_delay-2^14"),
        pytest.param(int_param(0x0E, 1), id="active_connection_id_limit-1"),
        pytest.param(int_param(0x0E, 0), id="active_connection_id_limit-0"),
        pytest.param(int_param(0x08, (1 << 60) + 1), id="max_streams_bidi-above-2^60"),
        pytest.param(int_param(0x09, (1 << 60) + 1), id="max_streams_uni-above-2^60"),
        pytest.param(param(0x02, bytes(15)), id="reset-token-15-bytes"),
        pytest.param(param(0x02, bytes(17)), id="reset-token-17-bytes"),
        pytest.param(param(0x0F, bytes(21)), id="cid-21-bytes"),
        pytest.param(param(0x0C, b"\x00"), id="disable_active_migration-not-empty"),
        pytest.param(param(0x2AB2, b"\x00"), id="grease_quic_bit-not-empty"),
        pytest.param(param(0x01, b""), id="int-empty"),
        pytest.param(param(0x01, b"\x05\x00"), id="int-value-longer-than-varint"),
        pytest.param(param(0x01, b"\x40"), id="int-truncated-varint"),
        pytest.param(int_param(0x04, 1) + int_param(0x04, 1), id="duplicate"),
        pytest.param(param(0x4000, b"") + param(0x4000, b""), id="duplicate-unknown"),
        pytest.param(param(0x11, b""), id="version_information-empty"),
        pytest.param(param(0x11, b"\x00\x00\x00\x01\x00"), id="version_information-not-multiple-of-4"),
        pytest.param(param(0x11, bytes(4)), id="version_information-chosen-zero"),
        pytest.param(param(0x11, b"\x00\x00\x00\x01" + bytes(4)), id="version_information-available-zero"),
        pytest.param(param(0x0D, bytes(24) + b"\x00" + bytes(16)), id="preferred_address-empty-cid"),
        pytest.param(param(0x0D, bytes(24) + b"\x15" + bytes(21 + 16)), id="preferred_address-cid-21"),
        pytest.param(param(0x0D, bytes(24) + b"\x01a" + bytes(15)), id="preferred_address-short-token"),
        pytest.param(param(0x0D, bytes(20)), id="preferred_address-truncated"),
        pytest.param(b"\x04\x05\x01", id="value-beyond-end"),
        pytest.param(b"\x40", id="truncated-id"),
    ],
)
def test_invalid_values(data: bytes) -> None:
    tpe(data, SERVER)


def test_limits_at_the_boundary_are_valid() -> None:
    tp = parse_transport_parameters(
        int_param(0x03, 1200)
        + int_param(0x0A, 20)
        + int_param(0x0B, (1 << 14) - 1)
        + int_param(0x0E, 2)
        + int_param(0x08, 1 << 60),
        SERVER,
    )
    assert (tp.max_udp_payload_size, tp.ack_delay_exponent, tp.max_ack_delay) == (1200, 20, (1 << 14) - 1)
    assert tp.active_connection_id_limit == 2 and tp.initial_max_streams_bidi == 1 << 60


def test_version_information_chosen_must_be_available_when_sent_by_client() -> None:
    # RFC 9368 §4: a server treats a Chosen Version missing from Available Versions as a parsing failure.
    value = b"\x00\x00\x00\x01" + VERSION_2.to_bytes(4, "big")
    tpe(param(0x11, value), CLIENT)
    # A server's Available Versions need not include its Chosen Version, and may be empty.
    tp = parse_transport_parameters(param(0x11, value), SERVER)
    assert tp.version_information == VersionInformation(VERSION_1, (VERSION_2,))
    tp = parse_transport_parameters(param(0x11, value[:4]), SERVER)
    assert tp.version_information == VersionInformation(VERSION_1, ())


def test_unknown_and_reserved_parameters_are_ignored() -> None:
    grease = 31 * 5 + 27  # RFC 9000 §18.1 reserved identifier
    data = param(grease, b"anything") + int_param(0x04, 7) + param(0xFF04DE1B, b"\x01")
    tp = parse_transport_parameters(data, CLIENT)
    assert tp.initial_max_data == 7
    assert tp.unknown == ((grease, b"anything"), (0xFF04DE1B, b"\x01"))
    assert tp == TransportParameters(initial_max_data=7)
    # Unknown parameters are re-encoded as given (e.g. for greasing).
    assert parse_transport_parameters(encode_transport_parameters(tp), CLIENT).unknown == tp.unknown


def test_preferred_address_all_zero_family_means_absent() -> None:
    pa = PreferredAddress(None, ("2001:db8::1", 4433), b"\x01\x02", bytes(range(16)))
    tp = TransportParameters(preferred_address=pa)
    encoded = encode_transport_parameters(tp)
    assert encoded[2:8] == bytes(6)  # 0.0.0.0:0
    assert parse_transport_parameters(encoded, SERVER).preferred_address == pa


@pytest.mark.parametrize("sent_by", [CLIENT, SERVER], ids=["client", "server"])
@settings(WIRE_SETTINGS, max_examples=400)
@given(data=st.binary(max_size=80))
def test_random_bytes_raise_only_transport_parameter_error(sent_by: Perspective, data: bytes) -> None:
    try:
        parse_transport_parameters(data, sent_by)
    except TransportError as e:
        assert e.code == TPE


@settings(WIRE_SETTINGS, max_examples=300)
@given(st.sampled_from(range(0x12)), st.binary(max_size=48))
def test_random_values_of_known_parameters(param_id: int, value: bytes) -> None:
    try:
        parse_transport_parameters(param(param_id, value), SERVER)
    except TransportError as e:
        assert e.code == TPE


# ---------------------------------------------------------------------------------------------
# RFC 9000 §7.3: authenticating connection IDs


def test_connection_id_authentication() -> None:
    server = TransportParameters(
        original_destination_connection_id=b"odcid", initial_source_connection_id=b"s"
    )
    check_connection_id_parameters(server, SERVER, initial_scid=b"s", original_dcid=b"odcid")
    client = TransportParameters(initial_source_connection_id=b"")
    check_connection_id_parameters(client, CLIENT, initial_scid=b"")


@pytest.mark.parametrize(
    ("tp", "kwargs", "code"),
    [
        pytest.param(TransportParameters(), {"initial_scid": b"c"}, TPE, id="missing-initial-scid"),
        pytest.param(
            TransportParameters(initial_source_connection_id=b"x"),
            {"initial_scid": b"c"},
            TransportErrorCode.PROTOCOL_VIOLATION,
            id="initial-scid-mismatch",
        ),
    ],
)
def test_connection_id_authentication_client_failures(
    tp: TransportParameters, kwargs: dict[str, bytes], code: int
) -> None:
    with pytest.raises(TransportError) as exc:
        check_connection_id_parameters(tp, CLIENT, **kwargs)
    assert exc.value.code == code


@pytest.mark.parametrize(
    ("odcid", "retry_scid", "retry_seen", "code"),
    [
        pytest.param(None, None, None, TPE, id="missing-odcid"),
        pytest.param(b"other", None, None, TransportErrorCode.PROTOCOL_VIOLATION, id="odcid-mismatch"),
        pytest.param(b"odcid", None, b"r", TransportErrorCode.PROTOCOL_VIOLATION, id="retry-scid-missing"),
        pytest.param(
            b"odcid", b"r", None, TransportErrorCode.PROTOCOL_VIOLATION, id="retry-scid-without-retry"
        ),
        pytest.param(b"odcid", b"r", b"x", TransportErrorCode.PROTOCOL_VIOLATION, id="retry-scid-mismatch"),
    ],
)
def test_connection_id_authentication_server_failures(
    odcid: bytes | None, retry_scid: bytes | None, retry_seen: bytes | None, code: int
) -> None:
    tp = TransportParameters(
        original_destination_connection_id=odcid,
        initial_source_connection_id=b"s",
        retry_source_connection_id=retry_scid,
    )
    with pytest.raises(TransportError) as exc:
        check_connection_id_parameters(
            tp, SERVER, initial_scid=b"s", original_dcid=b"odcid", retry_scid=retry_seen
        )
    assert exc.value.code == code


def test_parameter_ids() -> None:
    assert TransportParameterId.VERSION_INFORMATION == 0x11
    assert TransportParameterId.MAX_DATAGRAM_FRAME_SIZE == 0x20
    assert TransportParameterId.GREASE_QUIC_BIT == 0x2AB2


def test_parameters_are_a_value() -> None:
    tp = TransportParameters(initial_max_data=7, unknown=((0x1B, b"x"),))
    same = TransportParameters(initial_max_data=7)
    assert tp == same and hash(tp) == hash(same)  # unknown parameters take no part in equality
    assert tp != TransportParameters(initial_max_data=8) and tp != "initial_max_data=7"
    bigger = tp.replace(initial_max_data=9, max_idle_timeout=30_000)
    assert (bigger.initial_max_data, bigger.max_idle_timeout, bigger.unknown) == (9, 30_000, ((0x1B, b"x"),))
    assert tp.initial_max_data == 7  # replace copies
    with pytest.raises(TypeError, match="initial_max_datum"):
        tp.replace(initial_max_datum=1)
    fields = tp.as_dict()
    assert len(fields) == 21 and fields["initial_max_data"] == 7 and fields["unknown"] == ((0x1B, b"x"),)
    assert "initial_max_data=7" in repr(tp) and repr(tp).startswith("TransportParameters(")
