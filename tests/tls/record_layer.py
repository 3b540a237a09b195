"""A minimal TLS 1.3 record layer (RFC 8446 §5), test-only: it lets our TLSEngine (``quic=False``)
talk to OpenSSL through Python's ``ssl`` module over a stream socket.

QUIC replaces this layer with CRYPTO frames; over TCP the handshake needs it: plaintext records for
ClientHello/ServerHello, then records protected with the traffic keys the engine hands out
(``key``/``iv`` from HKDF-Expand-Label, nonce = iv XOR sequence number, the record header as AAD,
the real content type at the end of the inner plaintext). ChangeCipherSpec records from a peer in
middlebox compatibility mode are skipped (RFC 8446 §5).
"""

from __future__ import annotations

import socket
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from quicsilver.handshake.hkdf import hkdf_expand_label
from quicsilver.handshake.protection import CipherSuite
from quicsilver.handshake.tls import KeysReady, TLSEngine, WriteData
from quicsilver.handshake.tls.events import TLSEvent
from quicsilver.handshake.tls.key_schedule import hash_for_suite
from quicsilver.protocol import EncryptionLevel

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
MAX_FRAGMENT = 1 << 14


class RecordProtection:
    """One direction's AEAD state for one traffic secret (RFC 8446 §5.2, §5.3, §7.3)."""

    def __init__(self, suite: CipherSuite, secret: bytes) -> None:
        hash_algorithm = hash_for_suite(suite)[0]
        key_length = 32 if suite != CipherSuite.AES_128_GCM_SHA256 else 16
        key = hkdf_expand_label(hash_algorithm, secret, b"key", b"", key_length)
        self.iv = hkdf_expand_label(hash_algorithm, secret, b"iv", b"", 12)
        self.aead: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(key) if suite == CipherSuite.CHACHA20_POLY1305_SHA256 else AESGCM(key)
        )
        self.sequence = 0

    def _nonce(self) -> bytes:
        nonce = bytes(a ^ b for a, b in zip(self.iv, self.sequence.to_bytes(12, "big"), strict=True))
        self.sequence += 1
        return nonce

    def seal(self, content_type: int, data: bytes) -> bytes:
        inner = data + bytes((content_type,))
        header = struct.pack("!BHH", APPLICATION_DATA, 0x0303, len(inner) + 16)
        return header + self.aead.encrypt(self._nonce(), inner, header)

    def open(self, header: bytes, ciphertext: bytes) -> tuple[int, bytes]:
        inner = self.aead.decrypt(self._nonce(), ciphertext, header).rstrip(b"\x00")
        return inner[-1], inner[:-1]


class RecordLayer:
    """Drives a TLSEngine over a blocking stream socket."""

    def __init__(self, engine: TLSEngine, sock: socket.socket) -> None:
        self.engine = engine
        self.sock = sock
        self.read: RecordProtection | None = None
        self.read_level = EncryptionLevel.INITIAL
        self.write: dict[EncryptionLevel, RecordProtection] = {}
        self.events: list[TLSEvent] = []
        self.application_data = bytearray()
        self._buffer = bytearray()
        self.closed = False

    def flush(self) -> None:
        """Turns queued engine events into records on the socket (and installs keys)."""
        out = bytearray()
        while (event := self.engine.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, KeysReady):
                if event.level == EncryptionLevel.ZERO_RTT:
                    continue
                protection = RecordProtection(event.suite, event.secret)
                if event.is_write:
                    self.write[event.level] = protection
                else:
                    self.read, self.read_level = protection, event.level
            elif isinstance(event, WriteData):
                for start in range(0, len(event.data), MAX_FRAGMENT):
                    fragment = event.data[start : start + MAX_FRAGMENT]
                    if event.level == EncryptionLevel.INITIAL:
                        out += struct.pack("!BHH", HANDSHAKE, 0x0303, len(fragment)) + fragment
                    else:
                        out += self.write[event.level].seal(HANDSHAKE, fragment)
        if out:
            self.sock.sendall(out)

    def send_application_data(self, data: bytes) -> None:
        self.sock.sendall(self.write[EncryptionLevel.ONE_RTT].seal(APPLICATION_DATA, data))

    def receive_once(self) -> None:
        """Reads from the socket and processes every complete record."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed the connection")
        self._buffer += chunk
        while len(self._buffer) >= 5:
            content_type, _version, length = struct.unpack_from("!BHH", self._buffer)
            if len(self._buffer) < 5 + length:
                return
            header = bytes(self._buffer[:5])
            body = bytes(self._buffer[5 : 5 + length])
            del self._buffer[: 5 + length]
            if content_type == CHANGE_CIPHER_SPEC:
                continue
            if content_type == APPLICATION_DATA and self.read is not None:
                content_type, body = self.read.open(header, body)
            if content_type == ALERT:
                if body[-1:] == b"\x00":  # close_notify: the peer is done sending (RFC 8446 §6.1)
                    self.closed = True
                    continue
                raise ConnectionError(f"peer sent alert {body.hex()}")
            if content_type == HANDSHAKE:
                self.engine.handle_message(body, self.read_level)
                self.flush()
            elif content_type == APPLICATION_DATA:
                self.application_data += body

    def run_handshake(self) -> None:
        self.engine.start()
        self.flush()
        while not self.engine.handshake_complete:
            self.receive_once()

    def receive_application_data(self, n: int) -> bytes:
        while len(self.application_data) < n:
            if self.closed:
                raise ConnectionError("peer closed the connection (close_notify)")
            self.receive_once()
        data = bytes(self.application_data[:n])
        del self.application_data[:n]
        return data
