"""TLSConfig: certificates, trust, ALPN and TLS 1.3 options of a QUIC endpoint (public API).

quic-go takes a ``crypto/tls.Config``; quicsilver takes a :class:`TLSConfig`. Everything costly is
done once per config, not per handshake: the certificate chain is parsed and its Certificate message
encoded once, the trust store and chain verifiers are built on first use and cached. Bad input
raises :class:`~quicsilver.errors.ConfigError` naming the argument to fix, at the call that passed it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ...errors import ConfigError
from ..protection import CipherSuite
from .certs import (
    CertificateVerifier,
    generate_self_signed,
    key_matches_certificate,
    load_pem_certificates,
    load_private_key,
    load_trust_bundle,
    system_ca_file,
)
from .groups import NamedGroup
from .keylog import KeyLog
from .messages import Certificate
from .signatures import PrivateKey
from .tickets import MAX_TICKET_LIFETIME, EarlyDataReplayFilter, SessionTicketStore, TicketProtector

__all__ = ["DEFAULT_CIPHER_SUITES", "DEFAULT_GROUPS", "TLSConfig"]

DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.AES_128_GCM_SHA256,
    CipherSuite.CHACHA20_POLY1305_SHA256,
    CipherSuite.AES_256_GCM_SHA384,
)
# Go's default: the post-quantum hybrid first, with key shares for it and for X25519.
DEFAULT_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.X25519MLKEM768,
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
)
_CLIENT_AUTH = ("none", "optional", "required")


def _read(path: str | os.PathLike[str], field: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(field, f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}")


class TLSConfig:
    """TLS settings of a QUIC client or server.

    Args:
        certfile: PEM file with our certificate chain, leaf first (servers need one; clients only for
            mTLS). ``keyfile``: PEM private key (default: read from ``certfile``); ``password`` decrypts it.
        cafile / cadata: PEM trust anchors for verifying the peer; default: the system CA bundle.
        alpn: application protocols, most preferred first; required and non-empty (RFC 9001 §8.1).
        server_name: client: the name sent in SNI and checked against the server certificate
            (default: the host dialed). Server: unused.
        verify: client: verify the server's chain and name (default True; False only for tests).
        keylog_file: path or text stream receiving SSLKEYLOGFILE lines (default: none).
        client_auth: server: "none" (default), "optional" or "required" client certificates (mTLS).
        cipher_suites: TLS 1.3 suites, most preferred first (default AES-128-GCM, ChaCha20, AES-256-GCM).
        groups: key exchange groups, most preferred first (default X25519MLKEM768, X25519, secp256r1,
            secp384r1; the client sends key shares for X25519MLKEM768 and X25519 like Go).
        session_ticket_store: client: where tickets are kept for resumption and 0-RTT (default none:
            no resumption, as Go's nil ClientSessionCache).
        ticket_key: server: 16/24/32-byte AES-GCM key sealing session tickets (default: random per
            config, so tickets survive only as long as this config object).
        session_tickets: server: issue tickets when asked (default True; never with client_auth, as a
            ticket does not carry the client's certificate).
        ticket_lifetime: server: seconds a ticket is valid (default and maximum 7 days, RFC 8446 §4.6.1).
    """

    def __init__(
        self,
        *,
        alpn: Sequence[str],
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        password: bytes | None = None,
        cafile: str | os.PathLike[str] | None = None,
        cadata: str | bytes | None = None,
        server_name: str | None = None,
        verify: bool = True,
        keylog_file: str | os.PathLike[str] | IO[str] | None = None,
        client_auth: str = "none",
        cipher_suites: Sequence[int] = DEFAULT_CIPHER_SUITES,
        groups: Sequence[int] = DEFAULT_GROUPS,
        session_ticket_store: SessionTicketStore | None = None,
        ticket_key: bytes | None = None,
        session_tickets: bool = True,
        ticket_lifetime: int = MAX_TICKET_LIFETIME,
    ) -> None:
        if isinstance(alpn, str | bytes) or not alpn:
            raise ConfigError("alpn", "give a non-empty list of application protocol names, e.g. alpn=['h3']")
        encoded: list[bytes] = []
        for name in alpn:
            raw = name.encode() if isinstance(name, str) else b""
            if not 1 <= len(raw) <= 255:
                raise ConfigError("alpn", f"{name!r}: each protocol name must be a str of 1 to 255 bytes")
            encoded.append(raw)
        self.alpn: tuple[str, ...] = tuple(alpn)
        self.alpn_wire: tuple[bytes, ...] = tuple(encoded)
        if client_auth not in _CLIENT_AUTH:
            raise ConfigError("client_auth", f"{client_auth!r} is not one of {', '.join(_CLIENT_AUTH)}")
        self.client_auth = client_auth
        try:
            self.cipher_suites: tuple[CipherSuite, ...] = tuple(CipherSuite(s) for s in cipher_suites)
        except ValueError as exc:
            raise ConfigError("cipher_suites", f"{exc}; use CipherSuite members")
        if not self.cipher_suites:
            raise ConfigError("cipher_suites", "needs at least one cipher suite")
        try:
            self.groups: tuple[NamedGroup, ...] = tuple(NamedGroup(g) for g in groups)
        except ValueError as exc:
            raise ConfigError("groups", f"{exc}; use NamedGroup members")
        if not self.groups:
            raise ConfigError("groups", "needs at least one key exchange group")
        if ticket_key is not None and len(ticket_key) not in (16, 24, 32):
            raise ConfigError("ticket_key", "must be 16, 24 or 32 bytes (an AES-GCM key)")
        if not 1 <= ticket_lifetime <= MAX_TICKET_LIFETIME:
            raise ConfigError("ticket_lifetime", f"must be 1..{MAX_TICKET_LIFETIME} seconds")
        self.server_name = server_name
        self.verify = verify
        self.session_ticket_store = session_ticket_store
        self.session_tickets = session_tickets
        self.ticket_lifetime = ticket_lifetime
        self.ticket_protector = TicketProtector(ticket_key if ticket_key is not None else os.urandom(32))
        self.early_data_replay_filter = EarlyDataReplayFilter()
        self.keylog: KeyLog | None = KeyLog(keylog_file) if keylog_file is not None else None
        self.certificate_chain: tuple[x509.Certificate, ...] = ()
        self.private_key: PrivateKey | None = None
        self._certificate_message: bytes | None = None
        self._anchors: list[x509.Certificate] | None = None
        self._verifier: CertificateVerifier | None = None
        if certfile is not None:
            self.load_cert_chain(certfile, keyfile, password)
        elif keyfile is not None:
            raise ConfigError("certfile", "a keyfile was given without the certfile it belongs to")
        if cafile is not None or cadata is not None:
            self.load_verify_locations(cafile, cadata)

    # ---- our certificate --------------------------------------------------------------------------

    def load_cert_chain(
        self,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str] | None = None,
        password: bytes | None = None,
    ) -> None:
        """Loads our PEM chain (leaf first) and its key; ConfigError if unreadable or mismatched."""
        cert_data = _read(certfile, "certfile")
        chain = load_pem_certificates(cert_data, "certfile")
        if keyfile is None:
            if b"PRIVATE KEY-----" not in cert_data:
                raise ConfigError("keyfile", f"{os.fspath(certfile)!r} holds no private key: pass keyfile=")
            key = load_private_key(cert_data, password, "certfile")
        else:
            key = load_private_key(_read(keyfile, "keyfile"), password, "keyfile")
        self.set_certificate(chain, key)

    def set_certificate(self, chain: Sequence[x509.Certificate], key: PrivateKey) -> None:
        """Uses an in-memory chain (leaf first) and key; ConfigError if the key is not the leaf's."""
        if not chain:
            raise ConfigError("certfile", "the certificate chain is empty")
        if not key_matches_certificate(key, chain[0]):
            raise ConfigError("keyfile", "the private key does not match the first certificate of certfile")
        self.certificate_chain = tuple(chain)
        self.private_key = key
        ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in chain)
        self._certificate_message = Certificate(request_context=b"", certificates=ders).encode()

    def certificate_message(self, request_context: bytes = b"") -> bytes:
        """Our encoded Certificate message (cached for the empty request context)."""
        if self._certificate_message is None:
            return Certificate(request_context=request_context, certificates=()).encode()
        if not request_context:
            return self._certificate_message
        ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in self.certificate_chain)
        return Certificate(request_context=request_context, certificates=ders).encode()

    @property
    def certificate_pem(self) -> bytes:
        """Our chain as PEM (what a peer passes as ``cadata`` to trust a self-signed certificate)."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.certificate_chain)

    def check_server(self) -> None:
        """ConfigError unless this config can serve: a server needs a certificate and key."""
        if self.private_key is None:
            raise ConfigError(
                "certfile",
                "a server needs a certificate: pass certfile=/keyfile= or use TLSConfig.self_signed()",
            )

    # ---- trust --------------------------------------------------------------------------------------

    def load_verify_locations(
        self, cafile: str | os.PathLike[str] | None = None, cadata: str | bytes | None = None
    ) -> None:
        """Adds PEM trust anchors from a file and/or in-memory PEM data."""
        if cafile is None and cadata is None:
            raise ConfigError("cafile", "give cafile= or cadata=")
        anchors = list(self._anchors or ())
        if cafile is not None:
            anchors += load_pem_certificates(_read(cafile, "cafile"), "cafile")
        if cadata is not None:
            anchors += load_pem_certificates(cadata.encode() if isinstance(cadata, str) else cadata, "cadata")
        self._anchors = anchors
        self._verifier = None

    def verifier(self) -> CertificateVerifier:
        """The cached chain verifier: our anchors, or the system CA bundle when none were loaded."""
        if self._verifier is None:
            anchors = self._anchors
            if anchors is None:
                path = system_ca_file()
                anchors = load_trust_bundle(_read(path, "cafile")) if path else []
            self._verifier = CertificateVerifier(anchors)
        return self._verifier

    # ---- constructors -------------------------------------------------------------------------------

    @classmethod
    def self_signed(
        cls,
        alpn: Sequence[str],
        hosts: Iterable[str] = ("localhost", "127.0.0.1", "::1"),
        key_type: str = "ec",
        **kwargs: object,
    ) -> TLSConfig:
        """A config with a fresh key and self-signed certificate in memory (the seed's generateTLSConfig).

        key_type "ec" (P-256, default), "rsa" (2048 bits) or "ed25519". Clients trust it with
        ``TLSConfig(alpn=..., cadata=server_config.certificate_pem)`` or ``verify=False``.
        """
        config = cls(alpn=alpn, **kwargs)  # type: ignore[arg-type]
        cert, key = generate_self_signed(list(hosts), key_type)
        config.set_certificate([cert], key)
        return config
