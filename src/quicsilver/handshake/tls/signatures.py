"""Signature schemes and CertificateVerify (RFC 8446 §4.2.3, §4.4.3).

CertificateVerify signs ``64 * 0x20 || context string || 0x00 || Transcript-Hash``. RSA keys sign
with RSASSA-PSS only (RFC 8446 §4.4.3: "RSA signatures MUST use an RSASSA-PSS algorithm"); the
PKCS#1 v1.5 schemes are offered for certificate signatures only.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .alerts import AlertDescription, tls_error

__all__ = [
    "CERTIFICATE_VERIFY_SCHEMES",
    "OFFERED_SCHEMES",
    "PrivateKey",
    "PublicKey",
    "SignatureScheme",
    "choose_scheme",
    "schemes_for_key",
    "sign_certificate_verify",
    "verify_certificate_verify",
]

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class SignatureScheme(IntEnum):
    RSA_PKCS1_SHA256 = 0x0401
    RSA_PKCS1_SHA384 = 0x0501
    RSA_PKCS1_SHA512 = 0x0601
    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    RSA_PSS_RSAE_SHA256 = 0x0804
    RSA_PSS_RSAE_SHA384 = 0x0805
    RSA_PSS_RSAE_SHA512 = 0x0806
    ED25519 = 0x0807


_S: Final = SignatureScheme
# Schemes we accept in CertificateVerify, in our preference order.
CERTIFICATE_VERIFY_SCHEMES: tuple[int, ...] = (
    _S.ECDSA_SECP256R1_SHA256,
    _S.ED25519,
    _S.RSA_PSS_RSAE_SHA256,
    _S.ECDSA_SECP384R1_SHA384,
    _S.RSA_PSS_RSAE_SHA384,
    _S.RSA_PSS_RSAE_SHA512,
)
# What signature_algorithms offers: CertificateVerify schemes plus PKCS#1 for CA signatures.
OFFERED_SCHEMES: tuple[int, ...] = (
    *CERTIFICATE_VERIFY_SCHEMES,
    _S.RSA_PKCS1_SHA256,
    _S.RSA_PKCS1_SHA384,
    _S.RSA_PKCS1_SHA512,
)

_PSS_HASHES: Final[dict[int, hashes.HashAlgorithm]] = {
    _S.RSA_PSS_RSAE_SHA256: hashes.SHA256(),
    _S.RSA_PSS_RSAE_SHA384: hashes.SHA384(),
    _S.RSA_PSS_RSAE_SHA512: hashes.SHA512(),
}
_ECDSA: Final[dict[int, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm]]] = {
    _S.ECDSA_SECP256R1_SHA256: (ec.SECP256R1, hashes.SHA256()),
    _S.ECDSA_SECP384R1_SHA384: (ec.SECP384R1, hashes.SHA384()),
}

_PAD: Final = b"\x20" * 64
SERVER_CONTEXT: Final = _PAD + b"TLS 1.3, server CertificateVerify\x00"
CLIENT_CONTEXT: Final = _PAD + b"TLS 1.3, client CertificateVerify\x00"


def schemes_for_key(key: PrivateKey | PublicKey) -> tuple[int, ...]:
    """The CertificateVerify schemes a key can produce, most preferred first."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return (_S.ED25519,)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return (_S.RSA_PSS_RSAE_SHA256, _S.RSA_PSS_RSAE_SHA384, _S.RSA_PSS_RSAE_SHA512)
    if isinstance(key.curve, ec.SECP256R1):
        return (_S.ECDSA_SECP256R1_SHA256,)
    if isinstance(key.curve, ec.SECP384R1):
        return (_S.ECDSA_SECP384R1_SHA384,)
    return ()


def choose_scheme(key: PrivateKey, peer_schemes: tuple[int, ...]) -> int:
    """Our scheme for ``key`` among the peer's; handshake_failure when there is none (RFC 8446 §4.4.3)."""
    for scheme in schemes_for_key(key):
        if scheme in peer_schemes:
            return scheme
    raise tls_error(AlertDescription.HANDSHAKE_FAILURE, "no signature scheme in common with the peer")


def sign_certificate_verify(key: PrivateKey, scheme: int, transcript_hash: bytes, is_server: bool) -> bytes:
    data = (SERVER_CONTEXT if is_server else CLIENT_CONTEXT) + transcript_hash
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = _PSS_HASHES[scheme]
        return key.sign(data, padding.PSS(padding.MGF1(algorithm), algorithm.digest_size), algorithm)
    return key.sign(data, ec.ECDSA(_ECDSA[scheme][1]))


def verify_certificate_verify(
    key: PublicKey, scheme: int, signature: bytes, transcript_hash: bytes, is_server: bool
) -> None:
    """Checks the peer's CertificateVerify (``is_server``: the signer is the server).

    A scheme that does not fit the certificate key is illegal_parameter; a wrong signature is
    decrypt_error (RFC 8446 §4.4.3: "If the verification fails, the receiver MUST terminate the
    handshake with a "decrypt_error" alert").
    """
    if scheme not in schemes_for_key(key):
        raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "signature scheme does not match the certificate")
    data = (SERVER_CONTEXT if is_server else CLIENT_CONTEXT) + transcript_hash
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, rsa.RSAPublicKey):
            algorithm = _PSS_HASHES[scheme]
            key.verify(
                signature, data, padding.PSS(padding.MGF1(algorithm), algorithm.digest_size), algorithm
            )
        else:
            key.verify(signature, data, ec.ECDSA(_ECDSA[scheme][1]))
    except InvalidSignature:
        raise tls_error(AlertDescription.DECRYPT_ERROR, "CertificateVerify signature is invalid")
