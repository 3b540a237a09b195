"""Parsed peer certificates and their keys are reused by exact DER bytes (handshake/tls/certs.py),
bounded, and a malformed certificate is still refused every time."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from quicsilver.errors import TransportError
from quicsilver.handshake.tls import certs
from quicsilver.handshake.tls.certs import generate_self_signed, parse_der_certificate, public_key_of


def _der(host: str) -> bytes:
    cert, _ = generate_self_signed([host])
    return cert.public_bytes(serialization.Encoding.DER)


def test_the_same_bytes_give_the_same_certificate_and_key() -> None:
    der = _der("a.example")
    first = parse_der_certificate(der)
    again = parse_der_certificate(bytes(der))  # equal bytes, another object
    assert again is first
    assert public_key_of(again) is public_key_of(first)
    other = parse_der_certificate(_der("b.example"))
    assert other is not first
    assert public_key_of(other).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != public_key_of(first).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_the_caches_stay_bounded() -> None:
    for i in range(certs._PARSED_CACHE_SIZE + 5):
        public_key_of(parse_der_certificate(_der(f"h{i}.example")))
    assert len(certs._PARSED) <= certs._PARSED_CACHE_SIZE
    assert len(certs._KEYS) <= certs._PARSED_CACHE_SIZE


def test_bad_der_is_refused_each_time_and_not_remembered() -> None:
    before = len(certs._PARSED)
    for _ in range(2):
        with pytest.raises(TransportError):
            parse_der_certificate(b"\x30\x03\x02\x01\x00")
    assert len(certs._PARSED) <= max(before, certs._PARSED_CACHE_SIZE)
    assert b"\x30\x03\x02\x01\x00" not in certs._PARSED
