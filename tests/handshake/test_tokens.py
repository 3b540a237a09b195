"""Address validation tokens (RFC 9000 §8.1): round trip, tampering, expiry, address, hostile input."""

from __future__ import annotations

import ipaddress
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.handshake.tokens import (
    MAX_TOKEN_LENGTH,
    Address,
    Token,
    TokenProtector,
    encode_token,
    packed_ip,
    parse_token,
)
from quicsilver.protocol import VERSION_1, VERSION_2

KEY = bytes(range(32))
CLIENT_V4: Address = ("192.0.2.7", 51234)
CLIENT_V6: Address = ("2001:db8::7", 443, 0, 0)
ODCID = bytes.fromhex("8394c8f03e515708")
RSCID = bytes.fromhex("f067a5502a4262b5")


def sample_tokens() -> list[Token]:
    return [
        Token.for_retry(CLIENT_V4, ODCID, RSCID, VERSION_1, 1000.0),
        Token.for_retry(CLIENT_V6, bytes(20), b"", VERSION_2, 0.0),
        Token.for_retry(CLIENT_V4, b"", bytes(range(20)), VERSION_1, 12.345),
        Token.for_new_token(CLIENT_V4, VERSION_1, 86_400.5),
        Token.for_new_token(CLIENT_V6, VERSION_2, 3.0),
    ]


@pytest.mark.parametrize(
    "token", sample_tokens(), ids=lambda t: f"{'retry' if t.is_retry else 'new'}-{len(t.ip)}"
)
def test_round_trip(token: Token) -> None:
    protector = TokenProtector(KEY)
    sealed = protector.seal_token(token)
    assert len(sealed) <= MAX_TOKEN_LENGTH
    opened = protector.open_token(sealed)
    assert opened == token
    # Another protector with the same key (another server of the same deployment) opens it too.
    assert TokenProtector(KEY).open_token(bytearray(sealed)) == token


def test_issue_time_is_kept_to_the_millisecond() -> None:
    token = Token.for_new_token(CLIENT_V4, VERSION_1, 1234.5678)
    parsed = parse_token(encode_token(token))
    assert parsed is not None
    assert parsed.issued == pytest.approx(1234.567)


def test_new_token_binds_ip_not_port_and_retry_binds_both() -> None:
    retry = Token.for_retry(CLIENT_V4, ODCID, RSCID, VERSION_1, 0.0)
    new = Token.for_new_token(CLIENT_V4, VERSION_1, 0.0)
    assert retry.matches_address(CLIENT_V4) and new.matches_address(CLIENT_V4)
    moved_port: Address = (CLIENT_V4[0], CLIENT_V4[1] + 1)
    assert not retry.matches_address(moved_port)
    assert new.matches_address(moved_port)
    other_ip: Address = ("192.0.2.8", CLIENT_V4[1])
    assert not retry.matches_address(other_ip) and not new.matches_address(other_ip)
    assert not new.matches_address(CLIENT_V6)
    assert not new.matches_address(("not-an-ip", 1))


def test_ipv4_mapped_ipv6_matches_ipv4() -> None:
    token = Token.for_retry(("::ffff:192.0.2.7", 51234, 0, 0), ODCID, RSCID, VERSION_1, 0.0)
    assert token.ip == packed_ip("192.0.2.7")
    assert token.matches_address(CLIENT_V4)


def test_expiry() -> None:
    token = Token.for_retry(CLIENT_V4, ODCID, RSCID, VERSION_1, 100.0)
    assert token.is_valid(100.0, 10.0)
    assert token.is_valid(110.0, 10.0)
    assert not token.is_valid(110.01, 10.0)
    assert not token.is_valid(99.0, 10.0)  # issued in the future


def test_expired_after_sealing_round_trip() -> None:
    protector = TokenProtector(KEY)
    opened = protector.open_token(protector.seal_token(Token.for_new_token(CLIENT_V4, VERSION_1, 5000.0)))
    assert opened is not None
    assert opened.is_valid(5000.0 + 24 * 3600, 24 * 3600)
    assert not opened.is_valid(5000.0 + 24 * 3600 + 1, 24 * 3600)


def test_seal_uses_a_fresh_nonce() -> None:
    protector = TokenProtector(KEY)
    payload = encode_token(Token.for_new_token(CLIENT_V4, VERSION_1, 1.0))
    assert protector.seal(payload) != protector.seal(payload)


def test_tampered_token_is_refused() -> None:
    protector = TokenProtector(KEY)
    sealed = protector.seal_token(sample_tokens()[0])
    for position in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x40
        assert protector.open(bytes(tampered)) is None
    assert protector.open(sealed[:-1]) is None
    assert protector.open(sealed + b"\x00") is None


def test_other_key_is_refused() -> None:
    sealed = TokenProtector(KEY).seal_token(sample_tokens()[0])
    assert TokenProtector(os.urandom(32)).open_token(sealed) is None


@pytest.mark.parametrize(
    "token",
    [b"", bytes(27), bytes(28), os.urandom(60), bytes(MAX_TOKEN_LENGTH + 1), bytes(100_000)],
    ids=["empty", "27", "28", "random", "too-long", "huge"],
)
def test_garbage_is_refused(token: bytes) -> None:
    assert TokenProtector(KEY).open_token(token) is None


def test_short_key_is_rejected() -> None:
    with pytest.raises(ValueError):
        TokenProtector(bytes(15))


@pytest.mark.parametrize(
    "token",
    [
        Token(False, VERSION_1, b"\x01\x02\x03", 0.0),
        Token(True, VERSION_1, bytes(4), 0.0, 443, bytes(21), b""),
        Token(True, VERSION_1, bytes(4), 0.0, 70_000),
        Token(False, 1 << 32, bytes(4), 0.0),
        Token(False, VERSION_1, bytes(4), 1e300),
    ],
    ids=["ip-3-bytes", "odcid-21-bytes", "port-overflow", "version-overflow", "time-overflow"],
)
def test_encode_rejects_fields_that_do_not_fit(token: Token) -> None:
    with pytest.raises(ValueError):
        encode_token(token)


def test_parse_rejects_every_truncation_and_trailing_bytes() -> None:
    for token in sample_tokens():
        payload = encode_token(token)
        assert parse_token(payload) == token
        for cut in range(len(payload)):
            assert parse_token(payload[:cut]) is None
        assert parse_token(payload + b"\x00") is None


def test_parse_rejects_unknown_kind_and_ip_length() -> None:
    payload = bytearray(encode_token(sample_tokens()[3]))
    payload[0] = 2
    assert parse_token(payload) is None
    payload = bytearray(encode_token(sample_tokens()[3]))
    payload[13] = 5
    assert parse_token(payload) is None


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.binary(max_size=120))
def test_parse_random_bytes_never_raises(data: bytes) -> None:
    token = parse_token(data)
    if token is not None:
        assert len(token.ip) in (4, 16)
        assert len(token.original_dcid) <= 20 and len(token.retry_scid) <= 20
        assert token.is_retry or (token.port, token.original_dcid, token.retry_scid) == (0, b"", b"")


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.binary(max_size=300))
def test_open_random_bytes_never_raises(data: bytes) -> None:
    assert TokenProtector(KEY).open_token(data) is None


def _reference_packed(host: str) -> bytes | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.packed
    return ip.packed


@given(
    st.one_of(
        st.ip_addresses().map(str),
        st.ip_addresses(v=4).map(lambda ip: f"::ffff:{ip}"),
        st.lists(st.text("0123456789", max_size=4), min_size=3, max_size=5).map(".".join),
        st.text(max_size=20),
    )
)
def test_packed_ip_agrees_with_ipaddress(host: str) -> None:
    # The hand-written IPv4 path must accept and reject exactly what ipaddress does.
    expected = _reference_packed(host)
    if expected is None:
        with pytest.raises(ValueError):
            packed_ip(host)
    else:
        assert packed_ip(host) == expected
