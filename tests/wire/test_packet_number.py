"""Packet number encoding and decoding (RFC 9000 §17.1, Appendix A.2 and A.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.wire.packet_number import decode_packet_number, encode_packet_number, packet_number_length
from tests.wire.strategies import WIRE_SETTINGS


@pytest.mark.parametrize(
    ("largest_acked", "pn", "length"),
    [
        # RFC 9000 §17.1 / Appendix A.2: 29,519 packets outstanding need 16 bits ...
        pytest.param(0xABE8B3, 0xAC5C02, 2, id="rfc9000-A.2-16-bit"),
        # ... and 0xace8fe needs 24 bits.
        pytest.param(0xABE8B3, 0xACE8FE, 3, id="rfc9000-A.2-24-bit"),
        pytest.param(None, 0, 1, id="first-packet"),
        pytest.param(None, 127, 1, id="128-unacked-fits-one-byte"),
        pytest.param(None, 128, 2, id="129-unacked-needs-two-bytes"),
        pytest.param(0, 2**31, 4, id="capped-at-4-bytes"),
    ],
)
def test_encode_length(largest_acked: int | None, pn: int, length: int) -> None:
    truncated, n = encode_packet_number(pn, largest_acked)
    assert n == length == packet_number_length(pn, largest_acked)
    assert truncated == pn & ((1 << (8 * n)) - 1)


def test_rfc9000_a3_decode_example() -> None:
    # RFC 9000 Appendix A.3: largest 0xa82f30ea, 16-bit truncated 0x9b32 -> 0xa82f9b32.
    assert decode_packet_number(0xA82F30EA, 0x9B32, 16) == 0xA82F9B32


@pytest.mark.parametrize(
    ("largest", "truncated", "nbits", "expected"),
    [
        pytest.param(None, 0, 8, 0, id="no-packet-yet"),
        pytest.param(0xFF, 0x00, 8, 0x100, id="wraps-forward"),
        pytest.param(0x100, 0xFF, 8, 0xFF, id="just-below-expected"),
        pytest.param(0x17F, 0x00, 8, 0x200, id="forward-to-next-window"),
        pytest.param(2**62 - 2, 0xFF, 8, 2**62 - 1, id="no-overflow-past-2^62"),
        pytest.param(10, 0x05, 8, 5, id="candidate-below-window-stays"),
    ],
)
def test_decode_edges(largest: int | None, truncated: int, nbits: int, expected: int) -> None:
    assert decode_packet_number(largest, truncated, nbits) == expected


@settings(WIRE_SETTINGS, max_examples=500)
@given(
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=2**30),
    st.integers(min_value=0, max_value=2**30),
)
def test_round_trip_within_window(largest_acked: int, in_flight: int, received_ahead: int) -> None:
    # The sender encodes pn knowing largest_acked; the receiver has processed some packet between
    # largest_acked and pn - 1 (it cannot have acked what it did not receive).
    pn = largest_acked + 1 + in_flight
    largest_received = largest_acked + min(received_ahead, in_flight)
    truncated, n = encode_packet_number(pn, largest_acked)
    assert 1 <= n <= 4
    assert decode_packet_number(largest_received, truncated, 8 * n) == pn
