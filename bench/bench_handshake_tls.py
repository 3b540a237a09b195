"""CPU cost of one full TLS 1.3 handshake (RFC 8446 / RFC 9001 §4), client + server, in memory.

For ECDSA P-256 and RSA-2048 server certificates (chained to a CA the client trusts, with chain
and host name verification on) and the X25519 and X25519MLKEM768 key exchanges, runs complete
handshakes between our TLSEngine client and server with no network and no packet protection,
and prints CPU milliseconds per handshake, client + server and the server's share (best of R runs
of N handshakes), plus the resumed (PSK, no certificates, a new ticket each time) case.

    python bench/bench_handshake_tls.py [--number N] [--repeat R]
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from quicsilver.handshake.tls import (
    MemorySessionTicketStore,
    NamedGroup,
    SessionTicketReceived,
    TLSConfig,
    TLSEngine,
    WriteData,
)
from quicsilver.handshake.tls.signatures import PrivateKey
from quicsilver.protocol import EncryptionLevel

ALPN = ["bench"]


def make_ca() -> tuple[x509.Certificate, PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca: tuple[x509.Certificate, PrivateKey], key: PrivateKey) -> x509.Certificate:
    ca_cert, ca_key = ca
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )


def handshake(client_config: TLSConfig, server_config: TLSConfig, send_ticket: bool = False) -> float:
    """One handshake; returns the CPU seconds spent in the server engine."""
    clock = time.process_time
    client = TLSEngine(
        client_config, is_client=True, transport_parameters=b"tp", server_name="localhost", now=0.0
    )
    started = clock()
    server = TLSEngine(server_config, is_client=False, transport_parameters=b"tp", now=0.0)
    server_cpu = clock() - started
    client.start()
    progress = True
    while progress:
        progress = False
        for src, dst in ((client, server), (server, client)):
            while (event := src.next_event()) is not None:
                progress = True
                if isinstance(event, WriteData):
                    if dst is server:
                        started = clock()
                        dst.handle_message(event.data, event.level)
                        server_cpu += clock() - started
                    else:
                        dst.handle_message(event.data, event.level)
    assert client.handshake_complete and server.handshake_complete
    if send_ticket:
        started = clock()
        server.send_session_ticket(0.0)
        event = server.next_event()
        server_cpu += clock() - started
        assert isinstance(event, WriteData)
        client.handle_message(event.data, EncryptionLevel.ONE_RTT)
        assert isinstance(client.next_event(), SessionTicketReceived)
    return server_cpu


def measure(number: int, repeat: int, fn: Callable[[], float]) -> tuple[float, float]:
    """Best (total, server) CPU milliseconds per handshake over ``repeat`` runs of ``number``
    (process time: other processes on the machine do not count)."""
    best: tuple[float, float] | None = None
    for _ in range(repeat):
        started = time.process_time()
        server = sum(fn() for _ in range(number))
        total = time.process_time() - started
        if best is None or total < best[0]:
            best = (total, server)
    assert best is not None
    return best[0] / number * 1000, best[1] / number * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ca = make_ca()
    ca_pem = ca[0].public_bytes(serialization.Encoding.PEM)
    print(f"{'certificate':<14}{'group':<17}{'ms/handshake':>13}{'server ms':>11}{'handshakes/s':>14}")

    def row(name: str, group: str, timings: tuple[float, float]) -> None:
        total, server = timings
        print(f"{name:<14}{group:<17}{total:>13.3f}{server:>11.3f}{1000 / total:>14.0f}")

    for cert_name, key in (
        ("ECDSA P-256", ec.generate_private_key(ec.SECP256R1())),
        ("RSA-2048", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ):
        for group in (NamedGroup.X25519, NamedGroup.X25519MLKEM768):
            server_config = TLSConfig(alpn=ALPN, groups=[group])
            server_config.set_certificate([make_leaf(ca, key)], key)
            client_config = TLSConfig(alpn=ALPN, cadata=ca_pem, groups=[group])
            timings = measure(
                args.number, args.repeat, lambda c=client_config, s=server_config: handshake(c, s)
            )
            row(cert_name, group.name, timings)
    # Resumption: a ticket per handshake, kept in the client's store and used by the next one.
    key = ec.generate_private_key(ec.SECP256R1())
    server_config = TLSConfig(alpn=ALPN, groups=[NamedGroup.X25519])
    server_config.set_certificate([make_leaf(ca, key)], key)
    store = MemorySessionTicketStore()
    client_config = TLSConfig(
        alpn=ALPN, cadata=ca_pem, groups=[NamedGroup.X25519], session_ticket_store=store
    )
    handshake(client_config, server_config, send_ticket=True)
    timings = measure(
        args.number, args.repeat, lambda: handshake(client_config, server_config, send_ticket=True)
    )
    row("resumed (PSK)", "X25519", timings)


if __name__ == "__main__":
    main()
