"""Certificates: loading, self-signed generation and peer chain verification (RFC 8446 §4.4.2.4).

Chain building and the Web PKI checks (signatures, validity period, name or IP SAN, key usage) are
``cryptography.x509.verification``'s. The trust store and the verifiers are built once and cached by
the owning :class:`~quicsilver.handshake.tls.config.TLSConfig`; parsed peer certificates are cached
by their DER bytes so a server seen again is not parsed again.

Alerts (RFC 8446 §6.2): an expired or not yet valid certificate is certificate_expired, any other
verification failure (unknown issuer, wrong host name, bad signature) bad_certificate, bytes that are
not a certificate decode_error.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.general_name import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    PolicyBuilder,
    ServerVerifier,
    Store,
    VerificationError,
)

from ...errors import ConfigError
from .alerts import AlertDescription, tls_error
from .signatures import PrivateKey, PublicKey

__all__ = [
    "CertificateVerifier",
    "generate_self_signed",
    "load_pem_certificates",
    "load_private_key",
    "load_trust_bundle",
    "public_key_of",
    "system_ca_file",
]

# Where distributions keep their CA bundle (the same places OpenSSL and Go look).
_SYSTEM_CA_FILES: Final = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
)
_PARSED_CACHE_SIZE: Final = 128
# Peer certificates by DER and their keys by certificate (parse_der_certificate, public_key_of).
_PARSED: Final[OrderedDict[bytes, x509.Certificate]] = OrderedDict()
_KEYS: Final[OrderedDict[int, tuple[x509.Certificate, PublicKey]]] = OrderedDict()


def system_ca_file() -> str | None:
    """The system CA bundle: ``$SSL_CERT_FILE``, the first distribution path that exists, or certifi's
    bundle when that package is installed."""
    env = os.environ.get("SSL_CERT_FILE")
    if env and os.path.isfile(env):
        return env
    for path in _SYSTEM_CA_FILES:
        if os.path.isfile(path):
            return path
    try:
        import certifi  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    where: str = certifi.where()
    return where if os.path.isfile(where) else None


_PEM_END: Final = b"-----END CERTIFICATE-----"


def load_trust_bundle(data: bytes) -> list[x509.Certificate]:
    """The certificates of a CA bundle, one by one: an entry that does not parse (or that only parses
    with a deprecation warning, such as a negative serial number) is skipped, not fatal."""
    anchors: list[x509.Certificate] = []
    for block in data.split(_PEM_END)[:-1]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            with contextlib.suppress(ValueError):
                anchors.append(x509.load_pem_x509_certificate(block + _PEM_END))
    return anchors


def load_pem_certificates(data: bytes, field: str) -> list[x509.Certificate]:
    """Every certificate in PEM ``data``; ConfigError(field) if there is none."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(field, f"no PEM certificate could be read ({exc})")
    if not certs:
        raise ConfigError(field, "contains no PEM certificate")
    return certs


def load_private_key(data: bytes, password: bytes | None, field: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError) as exc:
        raise ConfigError(field, f"no usable PEM private key ({exc})")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(
            field, f"unsupported private key type {type(key).__name__} (use EC, RSA or Ed25519)"
        )
    if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
        raise ConfigError(field, f"unsupported curve {key.curve.name} (use P-256 or P-384)")
    return key


def public_key_of(cert: x509.Certificate) -> PublicKey:
    """The certificate's key; unsupported_certificate for key types TLS 1.3 cannot use here.

    Remembered per certificate object (bounded, as the parses): a client that meets the same server
    certificate again gets the same parsed certificate (``parse_der_certificate``) and its key
    without decoding the SubjectPublicKeyInfo again (~20 us).
    """
    entry = _KEYS.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        _KEYS[id(cert)] = (cert, key)  # the entry keeps the certificate alive: its id stays its own
        if len(_KEYS) > _PARSED_CACHE_SIZE:
            _KEYS.popitem(last=False)
        return key
    raise tls_error(AlertDescription.UNSUPPORTED_CERTIFICATE, f"unsupported key type {type(key).__name__}")


def _raw_public(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches_certificate(key: PrivateKey, cert: x509.Certificate) -> bool:
    return _raw_public(key.public_key()) == _raw_public(public_key_of(cert))


def _subject_for(host: str) -> DNSName | IPAddress:
    try:
        return IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return DNSName(host)


class CertificateVerifier:
    """Verifies peer chains against one trust store.

    Verifiers are cached per server name, and so are chains that verified: a server seen again with
    the same chain is accepted without rebuilding the path, as long as every certificate of the path
    found the first time is still within its validity period (checked on each use).
    """

    __slots__ = ("_client_verifier", "_parsed", "_server_verifiers", "_store", "_verified")

    def __init__(self, anchors: Sequence[x509.Certificate]) -> None:
        self._store = Store(list(anchors)) if anchors else None
        self._server_verifiers: dict[str, ServerVerifier] = {}
        self._client_verifier: ClientVerifier | None = None
        self._parsed: OrderedDict[bytes, x509.Certificate] = OrderedDict()
        self._verified: OrderedDict[tuple[object, ...], tuple[datetime.datetime, datetime.datetime]] = (
            OrderedDict()
        )

    def parse_chain(self, ders: Iterable[bytes]) -> list[x509.Certificate]:
        """Parses DER certificates, reusing earlier parses; decode_error for bytes that do not parse."""
        out: list[x509.Certificate] = []
        for der in ders:
            cert = self._parsed.get(der)
            if cert is None:
                cert = parse_der_certificate(der)
                self._parsed[der] = cert
                if len(self._parsed) > _PARSED_CACHE_SIZE:
                    self._parsed.popitem(last=False)
            out.append(cert)
        return out

    def _known_good(self, key: tuple[object, ...]) -> bool:
        window = self._verified.get(key)
        if window is None:
            return False
        not_before, not_after = window
        return not_before <= datetime.datetime.now(datetime.UTC) <= not_after

    def _remember(self, key: tuple[object, ...], path: Sequence[x509.Certificate]) -> None:
        self._verified[key] = (
            max(c.not_valid_before_utc for c in path),
            min(c.not_valid_after_utc for c in path),
        )
        if len(self._verified) > _PARSED_CACHE_SIZE:
            self._verified.popitem(last=False)

    def _store_or_fail(self) -> Store:
        if self._store is None:
            raise tls_error(
                AlertDescription.BAD_CERTIFICATE,
                "no trust anchors: pass cafile=/cadata= or install a CA bundle",
            )
        return self._store

    def verify_server(
        self, chain: Sequence[x509.Certificate], ders: tuple[bytes, ...], server_name: str
    ) -> None:
        """Chain (leaf first, with its DER encodings) to a trust anchor, for ``server_name``."""
        key = (server_name, *ders)
        if self._known_good(key):
            return
        verifier = self._server_verifiers.get(server_name)
        if verifier is None:
            verifier = (
                PolicyBuilder().store(self._store_or_fail()).build_server_verifier(_subject_for(server_name))
            )
            if len(self._server_verifiers) < _PARSED_CACHE_SIZE:
                self._server_verifiers[server_name] = verifier
        _check_validity(chain[0])
        try:
            path = verifier.verify(chain[0], list(chain[1:]))
        except VerificationError as exc:
            raise tls_error(AlertDescription.BAD_CERTIFICATE, f"certificate verification failed: {exc}")
        self._remember(key, path)

    def verify_client(self, chain: Sequence[x509.Certificate], ders: tuple[bytes, ...]) -> None:
        key = (None, *ders)
        if self._known_good(key):
            return
        if self._client_verifier is None:
            self._client_verifier = PolicyBuilder().store(self._store_or_fail()).build_client_verifier()
        _check_validity(chain[0])
        try:
            verified = self._client_verifier.verify(chain[0], list(chain[1:]))
        except VerificationError as exc:
            raise tls_error(
                AlertDescription.BAD_CERTIFICATE, f"client certificate verification failed: {exc}"
            )
        self._remember(key, verified.chain)


def parse_der_certificate(der: bytes) -> x509.Certificate:
    """A peer's DER certificate; decode_error if it does not parse. Deprecation warnings that
    ``cryptography`` raises for lax encodings are not passed on: the peer controls these bytes.

    The last ``_PARSED_CACHE_SIZE`` parses are kept by their exact DER bytes (as Go's crypto/tls
    client does since 1.20): a certificate is immutable, so the same bytes give the same object, and
    a client that connects to one server again and again parses its certificate once.
    """
    cert = _PARSED.get(der)
    if cert is not None:
        return cert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise tls_error(AlertDescription.DECODE_ERROR, "certificate is not valid DER")
    _PARSED[bytes(der)] = cert
    if len(_PARSED) > _PARSED_CACHE_SIZE:
        _PARSED.popitem(last=False)
    return cert


def _check_validity(cert: x509.Certificate) -> None:
    """certificate_expired for a leaf outside its validity period (RFC 8446 §6.2)."""
    now = datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise tls_error(AlertDescription.CERTIFICATE_EXPIRED, "certificate is expired or not yet valid")


def generate_self_signed(
    hosts: Sequence[str], key_type: str = "ec", days: int = 365
) -> tuple[x509.Certificate, PrivateKey]:
    """A fresh key and a self-signed certificate naming ``hosts`` (DNS names or IP addresses).

    The certificate is its own trust anchor: a client that trusts it (``cadata=``) verifies the
    server. key_type: "ec" (P-256, default), "rsa" (2048 bits) or "ed25519".
    """
    key: PrivateKey
    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ConfigError("key_type", f"{key_type!r} is not one of 'ec', 'rsa', 'ed25519'")
    if not hosts:
        raise ConfigError("hosts", "needs at least one host name or IP address")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm), key
