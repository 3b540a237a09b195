"""Varint codec (RFC 9000 §16, Appendix A.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.wire.varint import (
    MAX_VARINT,
    append_varint,
    append_varint_2,
    decode_varint,
    encode_varint,
    varint_len,
)
from tests.wire.strategies import WIRE_SETTINGS

# RFC 9000 Appendix A.1 / §16 Table 5 examples.
RFC_VECTORS = [
    pytest.param("c2197c5eff14e88c", 151288809941952652, id="rfc9000-A.1-8-byte"),
    pytest.param("9d7f3e7d", 494878333, id="rfc9000-A.1-4-byte"),
    pytest.param("7bbd", 15293, id="rfc9000-A.1-2-byte"),
    pytest.param("25", 37, id="rfc9000-A.1-1-byte"),
    pytest.param("4025", 37, id="rfc9000-A.1-2-byte-non-minimal"),
]


@pytest.mark.parametrize(("hexstr", "value"), RFC_VECTORS)
def test_rfc_vectors_decode(hexstr: str, value: int) -> None:
    data = bytes.fromhex(hexstr)
    assert decode_varint(data, 0) == (value, len(data))
    assert decode_varint(memoryview(b"\xff" + data), 1) == (value, len(data) + 1)


@pytest.mark.parametrize(("hexstr", "value"), RFC_VECTORS[:4])
def test_rfc_vectors_encode_minimal(hexstr: str, value: int) -> None:
    assert encode_varint(value).hex() == hexstr
    buf = bytearray()
    append_varint(buf, value)
    assert buf.hex() == hexstr


@pytest.mark.parametrize(
    ("value", "length"),
    [(0, 1), (63, 1), (64, 2), (16383, 2), (16384, 4), (2**30 - 1, 4), (2**30, 8), (MAX_VARINT, 8)],
)
def test_length_boundaries(value: int, length: int) -> None:
    assert varint_len(value) == length
    assert len(encode_varint(value)) == length


@pytest.mark.parametrize("value", [-1, MAX_VARINT + 1])
def test_out_of_range_values_rejected(value: int) -> None:
    with pytest.raises(ValueError):
        encode_varint(value)
    with pytest.raises(ValueError):
        varint_len(value)
    with pytest.raises(ValueError):
        append_varint(bytearray(), value)


def test_two_byte_form_for_patching() -> None:
    buf = bytearray()
    append_varint_2(buf, 5)
    assert buf == b"\x40\x05"
    assert decode_varint(buf, 0) == (5, 2)
    with pytest.raises(ValueError):
        append_varint_2(buf, 0x4000)


@settings(WIRE_SETTINGS, max_examples=300)
@given(st.integers(min_value=0, max_value=MAX_VARINT))
def test_round_trip(value: int) -> None:
    data = encode_varint(value)
    assert len(data) == varint_len(value)
    assert decode_varint(data, 0) == (value, len(data))
    # Every truncation is a FRAME_ENCODING_ERROR.
    for cut in range(len(data)):
        with pytest.raises(TransportError) as exc:
            decode_varint(data[:cut], 0)
        assert exc.value.code == TransportErrorCode.FRAME_ENCODING_ERROR


@settings(WIRE_SETTINGS, max_examples=300)
@given(st.binary(max_size=10), st.integers(min_value=0, max_value=12))
def test_random_bytes_only_transport_error(data: bytes, pos: int) -> None:
    try:
        value, new_pos = decode_varint(data, pos)
    except TransportError as e:
        assert e.code == TransportErrorCode.FRAME_ENCODING_ERROR
    else:
        assert 0 <= value <= MAX_VARINT
        assert pos < new_pos <= len(data)
