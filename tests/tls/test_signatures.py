"""CertificateVerify signatures for every scheme (RFC 8446 §4.2.3, §4.4.3)."""

from __future__ import annotations

import pytest

from quicsilver.errors import TransportError
from quicsilver.handshake.tls.signatures import (
    SignatureScheme,
    choose_scheme,
    schemes_for_key,
    sign_certificate_verify,
    verify_certificate_verify,
)

from .helpers import new_key

S = SignatureScheme
CASES = [
    ("ec", S.ECDSA_SECP256R1_SHA256),
    ("ec384", S.ECDSA_SECP384R1_SHA384),
    ("rsa", S.RSA_PSS_RSAE_SHA256),
    ("rsa", S.RSA_PSS_RSAE_SHA384),
    ("rsa", S.RSA_PSS_RSAE_SHA512),
    ("ed25519", S.ED25519),
]
KEYS = {kind: new_key(kind) for kind in ("ec", "ec384", "rsa", "ed25519")}
TRANSCRIPT = bytes(range(32))


@pytest.mark.parametrize(("kind", "scheme"), CASES, ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("is_server", [True, False], ids=["server", "client"])
def test_sign_then_verify(kind: str, scheme: SignatureScheme, is_server: bool) -> None:
    key = KEYS[kind]
    signature = sign_certificate_verify(key, scheme, TRANSCRIPT, is_server)
    verify_certificate_verify(key.public_key(), scheme, signature, TRANSCRIPT, is_server)
    # The context string separates server and client signatures (RFC 8446 §4.4.3).
    with pytest.raises(TransportError) as info:
        verify_certificate_verify(key.public_key(), scheme, signature, TRANSCRIPT, not is_server)
    assert info.value.code == 0x100 + 51
    with pytest.raises(TransportError) as info:
        verify_certificate_verify(key.public_key(), scheme, signature, bytes(32), is_server)
    assert info.value.code == 0x100 + 51  # decrypt_error


def test_scheme_that_does_not_fit_the_key_is_illegal_parameter() -> None:
    signature = sign_certificate_verify(KEYS["ec"], S.ECDSA_SECP256R1_SHA256, TRANSCRIPT, True)
    for scheme in (S.ECDSA_SECP384R1_SHA384, S.RSA_PSS_RSAE_SHA256, S.ED25519, S.RSA_PKCS1_SHA256):
        with pytest.raises(TransportError) as info:
            verify_certificate_verify(KEYS["ec"].public_key(), scheme, signature, TRANSCRIPT, True)
        assert info.value.code == 0x100 + 47


def test_rsa_never_signs_with_pkcs1() -> None:
    # RFC 8446 §4.4.3: "RSA signatures MUST use an RSASSA-PSS algorithm".
    assert all(
        s in (S.RSA_PSS_RSAE_SHA256, S.RSA_PSS_RSAE_SHA384, S.RSA_PSS_RSAE_SHA512)
        for s in schemes_for_key(KEYS["rsa"])
    )
    with pytest.raises(TransportError) as info:
        choose_scheme(KEYS["rsa"], (S.RSA_PKCS1_SHA256,))
    assert info.value.code == 0x100 + 40  # handshake_failure: nothing in common
    assert choose_scheme(KEYS["rsa"], (S.RSA_PSS_RSAE_SHA512, S.RSA_PKCS1_SHA256)) == S.RSA_PSS_RSAE_SHA512
