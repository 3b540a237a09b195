"""Test helpers: a certificate authority in memory and an in-memory handshake driver."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from quicsilver.handshake.tls import TLSConfig, TLSEngine, WriteData
from quicsilver.handshake.tls.events import TLSEvent
from quicsilver.handshake.tls.signatures import PrivateKey

UTC = datetime.UTC


def new_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(key_type)


def _sign_alg(key: PrivateKey) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


@dataclass
class CA:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, name: str = "quicsilver test CA") -> CA:
        key = new_key("ec")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def issue(
        self, hosts: list[str], key_type: str = "ec", expired: bool = False, key: PrivateKey | None = None
    ) -> tuple[x509.Certificate, PrivateKey]:
        key = key or new_key(key_type)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = datetime.datetime.now(UTC)
        start = now - datetime.timedelta(days=10 if expired else 1)
        end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=10)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "x")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert, key

    def server_config(
        self, alpn: list[str], hosts: list[str], key_type: str = "ec", **kw: object
    ) -> TLSConfig:
        config = TLSConfig(alpn=alpn, **kw)  # type: ignore[arg-type]
        cert, key = self.issue(hosts, key_type)
        config.set_certificate([cert], key)
        return config


def drive(client: TLSEngine, server: TLSEngine, now: float = 0.0) -> tuple[list[TLSEvent], list[TLSEvent]]:
    """Starts the client and shuttles handshake bytes until both engines are quiet.

    Returns the events each engine emitted; a TransportError from either side propagates.
    """
    client.start()
    client_events: list[TLSEvent] = []
    server_events: list[TLSEvent] = []
    progress = True
    while progress:
        progress = False
        for src, dst, sink in ((client, server, client_events), (server, client, server_events)):
            while (event := src.next_event()) is not None:
                sink.append(event)
                progress = True
                if isinstance(event, WriteData):
                    dst.handle_message(event.data, event.level, now)
    return client_events, server_events


def of_type(events: list[TLSEvent], kind: type) -> list[TLSEvent]:
    return [e for e in events if isinstance(e, kind)]
