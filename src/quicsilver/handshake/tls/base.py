"""What the client and server handshakes share: events out, keys out, key log, helpers.

RFC 9001 §4.1.3 (the TLS stack gives QUIC handshake bytes per encryption level and secrets to
install), §4.1.4 (the order of those), RFC 8446 §7.1 (the traffic secrets).
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Final

from cryptography import x509

from ...protocol import EncryptionLevel
from ..hkdf import hkdf_expand_label
from ..protection import CipherSuite
from .alerts import AlertDescription, tls_error
from .certs import public_key_of
from .config import TLSConfig
from .events import KeysReady, TLSEvent, WriteData
from .key_schedule import KeySchedule, Transcript
from .messages import parse_untrusted_certificate_verify
from .signatures import CERTIFICATE_VERIFY_SCHEMES, verify_certificate_verify

__all__ = ["HandshakeBase", "unexpected"]

# Key log labels per (level, is_client_secret).
_LABELS: Final = {
    (EncryptionLevel.ZERO_RTT, True): "CLIENT_EARLY_TRAFFIC_SECRET",
    (EncryptionLevel.HANDSHAKE, True): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    (EncryptionLevel.HANDSHAKE, False): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    (EncryptionLevel.ONE_RTT, True): "CLIENT_TRAFFIC_SECRET_0",
    (EncryptionLevel.ONE_RTT, False): "SERVER_TRAFFIC_SECRET_0",
}


def unexpected(what: str) -> Exception:
    return tls_error(AlertDescription.UNEXPECTED_MESSAGE, what)


class HandshakeBase:
    """State common to both sides. ``expected_level`` is where the next message must arrive."""

    is_client: bool

    def __init__(self, config: TLSConfig, events: deque[TLSEvent], *, quic: bool, now: float) -> None:
        self.config = config
        self.events = events
        self.quic = quic
        self.now = now
        self.expected_level: EncryptionLevel | None = EncryptionLevel.INITIAL
        self.client_random = b""
        self.suite: CipherSuite | None = None
        self.group: int | None = None
        self.alpn: str | None = None
        self.key_schedule: KeySchedule | None = None
        self.transcript: Transcript | None = None
        self.session_resumed = False
        self.early_data_accepted = False
        self.peer_certificates: tuple[x509.Certificate, ...] = ()
        self.resumption_master_secret = b""
        self._exporter_inputs: tuple[bytes, bytes] | None = None  # (master secret, transcript hash)
        self.complete = False

    def write(self, level: EncryptionLevel, data: bytes) -> None:
        self.events.append(WriteData(level, data))

    def install(self, level: EncryptionLevel, is_write: bool, suite: CipherSuite, secret: bytes) -> None:
        """Emits KeysReady and the key log line for a traffic secret."""
        self.events.append(KeysReady(level, is_write, suite, secret))
        keylog = self.config.keylog
        if keylog is not None:
            is_client_secret = is_write == self.is_client
            keylog.write(_LABELS[level, is_client_secret], self.client_random, secret)

    @property
    def exporter_secret(self) -> bytes:
        """exporter_master_secret (RFC 8446 §7.1), derived on first use; b"" before the Master Secret."""
        if self._exporter_inputs is None or self.key_schedule is None:
            return b""
        master, transcript_hash = self._exporter_inputs
        return self.key_schedule.derive_from(master, b"exp master", transcript_hash)

    def export_keying_material(self, label: bytes, context: bytes, length: int) -> bytes:
        """TLS-Exporter(label, context_value, key_length) of RFC 8446 §7.5."""
        ks = self.key_schedule
        exporter = self.exporter_secret
        if ks is None or not exporter:
            raise ValueError("keying material can be exported only once the handshake has derived it")
        secret = ks.derive_from(exporter, label, hashlib.new(ks.hash_name, b"").digest())
        return hkdf_expand_label(
            ks.hash, secret, b"exporter", hashlib.new(ks.hash_name, context).digest(), length
        )

    def check_peer_certificate_verify(self, body: memoryview, raw: bytes) -> None:
        """Verify the peer's CertificateVerify over the transcript so far, then add it to the transcript.

        The peer is the server when we are the client (RFC 8446 §4.4.3 context strings differ).
        """
        verify = parse_untrusted_certificate_verify(body)
        assert self.transcript is not None
        if verify.algorithm not in CERTIFICATE_VERIFY_SCHEMES:
            # RFC 8446 §4.4.3: the algorithm must be one we offered (and RSA must be PSS).
            raise tls_error(
                AlertDescription.ILLEGAL_PARAMETER, "CertificateVerify with a scheme we did not offer"
            )
        key = public_key_of(self.peer_certificates[0])
        verify_certificate_verify(
            key, verify.algorithm, verify.signature, self.transcript.digest(), self.is_client
        )
        self.transcript.update(raw)

    def derive_application_secrets(self) -> tuple[bytes, bytes]:
        """Master Secret and (client, server) application traffic secrets, after server Finished."""
        assert self.key_schedule is not None and self.transcript is not None
        ks = self.key_schedule
        ks.enter_master()
        th = self.transcript.digest()
        client_secret = ks.derive_secret(b"c ap traffic", th)
        server_secret = ks.derive_secret(b"s ap traffic", th)
        self._exporter_inputs = (ks.secret, th)
        if self.config.keylog is not None:
            self.config.keylog.write("EXPORTER_SECRET", self.client_random, self.exporter_secret)
        return client_secret, server_secret
