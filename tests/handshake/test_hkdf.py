"""HKDF-Extract / HKDF-Expand (RFC 5869 Appendix A) and HKDF-Expand-Label (RFC 8446 §7.1, RFC 8448 §3)."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st

from quicsilver.handshake.hkdf import (
    HmacKey,
    hkdf_expand,
    hkdf_expand_label,
    hkdf_expand_labels,
    hkdf_extract,
    hmac_digest,
)

SHA256 = hashes.SHA256()
SHA384 = hashes.SHA384()


def test_rfc5869_a1_sha256() -> None:
    ikm = bytes([0x0B] * 22)
    salt = bytes(range(13))
    info = bytes(range(0xF0, 0xFA))
    prk = hkdf_extract(SHA256, salt, ikm)
    assert prk == bytes.fromhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    assert hkdf_expand(SHA256, prk, info, 42) == bytes.fromhex(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_rfc8448_key_schedule_start() -> None:
    # RFC 8448 §3: early secret = HKDF-Extract(0, 0^32); derived = Derive-Secret(early, "derived", "");
    # handshake secret = HKDF-Extract(derived, ECDHE shared secret).
    early = hkdf_extract(SHA256, b"", bytes(32))
    assert early == bytes.fromhex("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
    empty_hash = hashes.Hash(SHA256)
    derived = hkdf_expand_label(SHA256, early, b"derived", empty_hash.finalize(), 32)
    assert derived == bytes.fromhex("6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba")
    ecdhe = bytes.fromhex("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d")
    assert hkdf_extract(SHA256, derived, ecdhe) == bytes.fromhex(
        "1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac"
    )


def test_empty_salt_is_hash_length_zeros() -> None:
    assert hkdf_extract(SHA384, b"", b"ikm") == hkdf_extract(SHA384, bytes(48), b"ikm")


def test_expand_label_is_length_and_label_sensitive() -> None:
    secret = bytes(range(48))
    a = hkdf_expand_label(SHA384, secret, b"quic key", b"", 32)
    assert len(a) == 32
    assert hkdf_expand_label(SHA384, secret, b"quic key", b"", 16) != a[:16]  # length is in the info
    assert hkdf_expand_label(SHA384, secret, b"quic iv", b"", 32) != a
    assert hkdf_expand_label(SHA384, secret, b"quic key", b"x", 32) != a


@pytest.mark.parametrize(
    ("label", "context", "length"),
    [
        pytest.param(b"x" * 250, b"", 32, id="label-too-long"),
        pytest.param(b"key", b"c" * 256, 32, id="context-too-long"),
        pytest.param(b"key", b"", 255 * 32 + 1, id="output-too-long"),
        pytest.param(b"key", b"", -1, id="negative-length"),
    ],
)
def test_expand_label_rejects_unencodable(label: bytes, context: bytes, length: int) -> None:
    with pytest.raises(ValueError):
        hkdf_expand_label(SHA256, bytes(32), label, context, length)


@given(
    name=st.sampled_from(["sha256", "sha384", "sha512"]),
    key=st.binary(max_size=300),  # past both block sizes (64, 128): such keys are hashed first
    msg=st.binary(max_size=300),
)
def test_hmac_is_rfc2104(name: str, key: bytes, msg: bytes) -> None:
    assert hmac_digest(name, key, msg) == hmac.digest(key, msg, name)


@given(
    name=st.sampled_from(["sha256", "sha384"]),
    key=st.binary(max_size=300),
    msgs=st.lists(st.binary(max_size=200), min_size=1, max_size=4),
)
def test_a_prepared_hmac_key_gives_rfc2104_for_every_message(
    name: str, key: bytes, msgs: list[bytes]
) -> None:
    prepared = HmacKey(name, key)
    for msg in msgs:  # the prepared states are copied, never consumed
        assert prepared.digest(msg) == hmac.digest(key, msg, name)


def test_a_prepared_hmac_key_is_only_for_the_tls_hashes() -> None:
    with pytest.raises(ValueError, match="sha512"):
        HmacKey("sha512", b"key")


@given(
    hash=st.sampled_from([SHA256, SHA384]),
    secret=st.binary(min_size=32, max_size=48),
    wanted=st.lists(
        st.tuples(st.binary(min_size=1, max_size=40), st.integers(min_value=1, max_value=32)), max_size=4
    ),
)
def test_expand_labels_equals_one_expand_label_each(
    hash: hashes.HashAlgorithm, secret: bytes, wanted: list[tuple[bytes, int]]
) -> None:
    got = hkdf_expand_labels(hash, secret, tuple(wanted))
    assert got == [hkdf_expand_label(hash, secret, label, b"", length) for label, length in wanted]


@pytest.mark.parametrize("length", [0, 33])
def test_expand_labels_makes_one_block_only(length: int) -> None:
    with pytest.raises(ValueError):
        hkdf_expand_labels(SHA256, bytes(32), ((b"quic key", length),))
