"""TLS 1.3 handshake message codec (RFC 8446 §4, RFC 9001 §8).

Each message is a frozen dataclass with ``encode() -> bytes`` (the whole message, with its 4-byte
handshake header) and a ``parse_untrusted_*`` function taking the message *body*. Parsers treat their
input as hostile: every length is checked against the bytes present before anything is allocated, and
every malformation raises :class:`~quicsilver.errors.TransportError` with CRYPTO_ERROR + decode_error
(RFC 8446 §6: "decode_error: A message could not be decoded because some field was out of the
specified range or the length of the message was incorrect"). Semantic checks (which extensions may
appear, whether a value is acceptable) belong to the client and server state machines, except where
RFC 8446 pins them to the message format (duplicate extensions, pre_shared_key last).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from .alerts import AlertDescription, tls_error

__all__ = [
    "HRR_RANDOM",
    "TLS13",
    "Certificate",
    "CertificateRequest",
    "CertificateVerify",
    "ClientHello",
    "EncryptedExtensions",
    "ExtensionType",
    "Finished",
    "HandshakeType",
    "NewSessionTicket",
    "Reader",
    "ServerHello",
    "encode_message_hash",
    "parse_untrusted_certificate",
    "parse_untrusted_certificate_request",
    "parse_untrusted_certificate_verify",
    "parse_untrusted_client_hello",
    "parse_untrusted_encrypted_extensions",
    "parse_untrusted_finished",
    "parse_untrusted_new_session_ticket",
    "parse_untrusted_server_hello",
]

TLS12: Final = 0x0303  # legacy_version of every TLS 1.3 hello (RFC 8446 §4.1.2)
TLS13: Final = 0x0304  # supported_versions value (RFC 8446 §4.2.1)

# RFC 8446 §4.1.3: the ServerHello.random of a HelloRetryRequest, SHA-256("HelloRetryRequest").
HRR_RANDOM: Final = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


class HandshakeType(IntEnum):
    """Handshake message types (RFC 8446 §4)."""

    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    CERTIFICATE_REQUEST = 13
    CERTIFICATE_VERIFY = 15
    FINISHED = 20
    KEY_UPDATE = 24
    MESSAGE_HASH = 254


class ExtensionType(IntEnum):
    """Extension code points (RFC 8446 §4.2, RFC 7301, RFC 9001 §8.2)."""

    SERVER_NAME = 0
    SUPPORTED_GROUPS = 10
    SIGNATURE_ALGORITHMS = 13
    ALPN = 16
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    PSK_KEY_EXCHANGE_MODES = 45
    CERTIFICATE_AUTHORITIES = 47
    SIGNATURE_ALGORITHMS_CERT = 50
    KEY_SHARE = 51
    QUIC_TRANSPORT_PARAMETERS = 0x39


_EXT: Final = ExtensionType


def _decode_error(reason: str) -> Exception:
    return tls_error(AlertDescription.DECODE_ERROR, reason)


class Reader:
    """A bounds-checked cursor over untrusted bytes; every overrun is a decode_error."""

    __slots__ = ("_buf", "end", "pos")

    def __init__(self, buf: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self._buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def _take(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise _decode_error("message truncated")
        self.pos = p + n
        return p

    def u8(self) -> int:
        p = self.pos
        if p >= self.end:
            raise _decode_error("message truncated")
        self.pos = p + 1
        return self._buf[p]

    def u16(self) -> int:
        p = self.pos
        if p + 2 > self.end:
            raise _decode_error("message truncated")
        self.pos = p + 2
        buf = self._buf
        return (buf[p] << 8) | buf[p + 1]

    def u24(self) -> int:
        p = self._take(3)
        return int.from_bytes(self._buf[p : p + 3], "big")

    def u32(self) -> int:
        value: int = struct.unpack_from("!I", self._buf, self._take(4))[0]
        return value

    def raw(self, n: int) -> bytes:
        p = self._take(n)
        return bytes(self._buf[p : p + n])

    def _region(self, len_bytes: int, minimum: int) -> tuple[int, int]:
        """Reads a length prefix; returns the (start, end) of the region it announces and skips it."""
        buf, p, end = self._buf, self.pos, self.end
        if p + len_bytes > end:
            raise _decode_error("message truncated")
        if len_bytes == 1:
            n = buf[p]
        elif len_bytes == 2:
            n = (buf[p] << 8) | buf[p + 1]
        else:
            n = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2]
        p += len_bytes
        q = p + n
        if q > end:
            raise _decode_error("message truncated")
        if n < minimum:
            raise _decode_error("vector shorter than its minimum length")
        self.pos = q
        return p, q

    def vector(self, len_bytes: int, minimum: int = 0) -> bytes:
        """An ``opaque x<minimum..2^(8*len_bytes)-1>`` vector."""
        p, q = self._region(len_bytes, minimum)
        return bytes(self._buf[p:q])

    def sub(self, len_bytes: int, minimum: int = 0) -> Reader:
        """A reader over a length-prefixed region, which this reader skips."""
        p, q = self._region(len_bytes, minimum)
        return Reader(self._buf, p, q)

    def at_end(self) -> bool:
        return self.pos >= self.end

    def finish(self) -> None:
        if self.pos != self.end:
            raise _decode_error("trailing bytes")

    def u16_list(self, len_bytes: int, minimum: int) -> tuple[int, ...]:
        """A vector of uint16 values (length in bytes, even)."""
        p, q = self._region(len_bytes, minimum)
        n = q - p
        if n & 1:
            raise _decode_error("odd length for a list of uint16")
        return struct.unpack_from(f"!{n >> 1}H", self._buf, p)


# ---- writing helpers -------------------------------------------------------------------------------


def _begin(buf: bytearray, len_bytes: int) -> int:
    buf += bytes(len_bytes)
    return len(buf)


def _end(buf: bytearray, start: int, len_bytes: int) -> None:
    n = len(buf) - start
    if n >= 1 << (8 * len_bytes):
        raise ValueError("TLS vector too long for its length field")
    buf[start - len_bytes : start] = n.to_bytes(len_bytes, "big")


def _vec(buf: bytearray, len_bytes: int, data: bytes) -> None:
    if len(data) >= 1 << (8 * len_bytes):
        raise ValueError("TLS vector too long for its length field")
    buf += len(data).to_bytes(len_bytes, "big")
    buf += data


def _u16_list(buf: bytearray, len_bytes: int, values: tuple[int, ...]) -> None:
    _vec(buf, len_bytes, struct.pack(f"!{len(values)}H", *values))


def _message(msg_type: HandshakeType, body: bytearray) -> bytes:
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


def _extension(buf: bytearray, ext_type: int, data: bytes) -> None:
    buf += struct.pack("!HH", ext_type, len(data))
    buf += data


def encode_message_hash(transcript_hash: bytes) -> bytes:
    """The synthetic ``message_hash`` message replacing ClientHello1 after HRR (RFC 8446 §4.4.1)."""
    return bytes((HandshakeType.MESSAGE_HASH, 0, 0, len(transcript_hash))) + transcript_hash


def _iter_extensions(r: Reader) -> list[tuple[int, Reader]]:
    """Splits an extension block; duplicates are illegal_parameter (RFC 8446 §4.2)."""
    p, end = r._region(2, 0)
    buf = r._buf
    seen: set[int] = set()
    out: list[tuple[int, Reader]] = []
    while p < end:
        if p + 4 > end:
            raise _decode_error("extension header truncated")
        ext_type = (buf[p] << 8) | buf[p + 1]
        q = p + 4 + ((buf[p + 2] << 8) | buf[p + 3])
        if q > end:
            raise _decode_error("extension truncated")
        if ext_type in seen:
            # RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type in a given
            # extension block."
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, f"duplicate extension {ext_type}")
        seen.add(ext_type)
        out.append((ext_type, Reader(buf, p + 4, q)))
        p = q
    return out


def _parse_alpn(r: Reader) -> tuple[bytes, ...]:
    names = r.sub(2, minimum=2)
    out: list[bytes] = []
    while not names.at_end():
        out.append(names.vector(1, minimum=1))
    r.finish()
    return tuple(out)


def _encode_alpn(names: tuple[bytes, ...]) -> bytes:
    buf = bytearray()
    start = _begin(buf, 2)
    for name in names:
        _vec(buf, 1, name)
    _end(buf, start, 2)
    return bytes(buf)


# ---- ClientHello (RFC 8446 §4.1.2) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A ClientHello. Absent extensions are ``None``; ``extension_types`` lists what was present."""

    random: bytes
    legacy_session_id: bytes = b""
    cipher_suites: tuple[int, ...] = ()
    legacy_compression_methods: bytes = b"\x00"
    supported_versions: tuple[int, ...] | None = None
    server_name: str | None = None
    supported_groups: tuple[int, ...] | None = None
    key_shares: tuple[tuple[int, bytes], ...] | None = None
    signature_algorithms: tuple[int, ...] | None = None
    alpn: tuple[bytes, ...] | None = None
    transport_parameters: bytes | None = None
    psk_modes: tuple[int, ...] | None = None
    early_data: bool = False
    cookie: bytes | None = None
    psk_identities: tuple[tuple[bytes, int], ...] | None = None
    psk_binders: tuple[bytes, ...] = ()
    extension_types: tuple[int, ...] = ()

    def encode(self) -> bytes:
        """The whole message; binders are written last as RFC 8446 §4.2.11 requires."""
        body = bytearray(struct.pack("!H", TLS12))
        body += self.random
        _vec(body, 1, self.legacy_session_id)
        _u16_list(body, 2, self.cipher_suites)
        _vec(body, 1, self.legacy_compression_methods)
        start = _begin(body, 2)
        if self.server_name is not None:
            host = self.server_name.encode("ascii")
            _extension(body, _EXT.SERVER_NAME, struct.pack("!HBH", len(host) + 3, 0, len(host)) + host)
        if self.supported_versions is not None:
            ext = bytearray()
            _u16_list(ext, 1, self.supported_versions)
            _extension(body, _EXT.SUPPORTED_VERSIONS, bytes(ext))
        if self.supported_groups is not None:
            ext = bytearray()
            _u16_list(ext, 2, self.supported_groups)
            _extension(body, _EXT.SUPPORTED_GROUPS, bytes(ext))
        if self.signature_algorithms is not None:
            ext = bytearray()
            _u16_list(ext, 2, self.signature_algorithms)
            _extension(body, _EXT.SIGNATURE_ALGORITHMS, bytes(ext))
        if self.key_shares is not None:
            ext = bytearray()
            shares_start = _begin(ext, 2)
            for group, share in self.key_shares:
                ext += struct.pack("!H", group)
                _vec(ext, 2, share)
            _end(ext, shares_start, 2)
            _extension(body, _EXT.KEY_SHARE, bytes(ext))
        if self.alpn is not None:
            _extension(body, _EXT.ALPN, _encode_alpn(self.alpn))
        if self.cookie is not None:
            ext = bytearray()
            _vec(ext, 2, self.cookie)
            _extension(body, _EXT.COOKIE, bytes(ext))
        if self.transport_parameters is not None:
            _extension(body, _EXT.QUIC_TRANSPORT_PARAMETERS, self.transport_parameters)
        if self.psk_modes is not None:
            _extension(body, _EXT.PSK_KEY_EXCHANGE_MODES, bytes((len(self.psk_modes), *self.psk_modes)))
        if self.early_data:
            _extension(body, _EXT.EARLY_DATA, b"")
        if self.psk_identities is not None:
            ext = bytearray()
            ids_start = _begin(ext, 2)
            for identity, age in self.psk_identities:
                _vec(ext, 2, identity)
                ext += struct.pack("!I", age)
            _end(ext, ids_start, 2)
            binders_start = _begin(ext, 2)
            for binder in self.psk_binders:
                _vec(ext, 1, binder)
            _end(ext, binders_start, 2)
            _extension(body, _EXT.PRE_SHARED_KEY, bytes(ext))
        _end(body, start, 2)
        return _message(HandshakeType.CLIENT_HELLO, body)

    def binders_length(self) -> int:
        """Bytes of the binders list at the end of the encoded message (RFC 8446 §4.2.11.2)."""
        return 2 + sum(1 + len(b) for b in self.psk_binders)


def _parse_key_shares(r: Reader) -> tuple[tuple[int, bytes], ...]:
    shares = r.sub(2)
    out: list[tuple[int, bytes]] = []
    groups: set[int] = set()
    while not shares.at_end():
        group = shares.u16()
        share = shares.vector(2, minimum=1)
        if group in groups:
            # RFC 8446 §4.2.8: "Clients MUST NOT offer multiple KeyShareEntry values for the same group."
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "two key shares for one group")
        groups.add(group)
        out.append((group, share))
    r.finish()
    return tuple(out)


def _parse_server_name(r: Reader) -> str | None:
    names = r.sub(2, minimum=1)
    host: str | None = None
    while not names.at_end():
        name_type = names.u8()
        name = names.vector(2, minimum=1)
        if name_type == 0:
            if host is not None:
                # RFC 6066 §3: "The ServerNameList MUST NOT contain more than one name of the same type."
                raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "two host names in server_name")
            try:
                host = name.decode("ascii")
            except UnicodeDecodeError:
                raise _decode_error("server_name is not ASCII")
    r.finish()
    return host


def _ch_u16_list(data: Reader, len_bytes: int) -> tuple[int, ...]:
    values = data.u16_list(len_bytes, minimum=2)
    data.finish()
    return values


def _ch_cookie(data: Reader) -> bytes:
    cookie = data.vector(2, minimum=1)
    data.finish()
    return cookie


def _ch_psk_modes(data: Reader) -> tuple[int, ...]:
    modes = tuple(data.vector(1, minimum=1))
    data.finish()
    return modes


def _ch_early_data(data: Reader) -> bool:
    data.finish()
    return True


def _ch_pre_shared_key(data: Reader) -> tuple[tuple[tuple[bytes, int], ...], tuple[bytes, ...]]:
    identities = data.sub(2, minimum=7)
    ids: list[tuple[bytes, int]] = []
    while not identities.at_end():
        ids.append((identities.vector(2, minimum=1), identities.u32()))
    binders = data.sub(2, minimum=33)
    bs: list[bytes] = []
    while not binders.at_end():
        bs.append(binders.vector(1, minimum=32))
    data.finish()
    if len(bs) != len(ids):
        # RFC 8446 §4.2.11: one binder per identity.
        raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "PSK binder count mismatch")
    return tuple(ids), tuple(bs)


# ClientHello extensions we read: code point -> (field name, parser). Others are skipped (RFC 8446 §4.2).
_CLIENT_HELLO_EXTENSIONS: Final[dict[int, tuple[str, Callable[[Reader], object]]]] = {
    int(_EXT.SERVER_NAME): ("server_name", lambda data: _parse_server_name(data)),
    int(_EXT.SUPPORTED_VERSIONS): ("supported_versions", lambda data: _ch_u16_list(data, 1)),
    int(_EXT.SUPPORTED_GROUPS): ("supported_groups", lambda data: _ch_u16_list(data, 2)),
    int(_EXT.SIGNATURE_ALGORITHMS): ("signature_algorithms", lambda data: _ch_u16_list(data, 2)),
    int(_EXT.KEY_SHARE): ("key_shares", lambda data: _parse_key_shares(data)),
    int(_EXT.ALPN): ("alpn", lambda data: _parse_alpn(data)),
    int(_EXT.COOKIE): ("cookie", _ch_cookie),
    int(_EXT.QUIC_TRANSPORT_PARAMETERS): ("transport_parameters", lambda data: data.raw(data.end - data.pos)),
    int(_EXT.PSK_KEY_EXCHANGE_MODES): ("psk_modes", _ch_psk_modes),
    int(_EXT.EARLY_DATA): ("early_data", _ch_early_data),
}
_PRE_SHARED_KEY: Final = int(_EXT.PRE_SHARED_KEY)


def parse_untrusted_client_hello(body: bytes | memoryview) -> ClientHello:
    """Parses a ClientHello body (RFC 8446 §4.1.2); unknown extensions are skipped (§4.2)."""
    r = Reader(body)
    r.u16()  # legacy_version: TLS 1.3 servers negotiate with supported_versions instead (§4.2.1)
    random = r.raw(32)
    session_id = r.vector(1)
    if len(session_id) > 32:
        raise _decode_error("legacy_session_id longer than 32 bytes")
    suites = r.u16_list(2, minimum=2)
    compression = r.vector(1, minimum=1)
    fields: dict[str, object] = {}
    types: list[int] = []
    if not r.at_end():
        extensions = _iter_extensions(r)
        known = _CLIENT_HELLO_EXTENSIONS
        for ext_type, data in extensions:
            types.append(ext_type)
            entry = known.get(ext_type)
            if entry is not None:
                fields[entry[0]] = entry[1](data)
            elif ext_type == _PRE_SHARED_KEY:
                if len(types) != len(extensions):
                    # RFC 8446 §4.2.11: pre_shared_key "MUST be the last extension in the ClientHello".
                    raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "pre_shared_key is not last")
                fields["psk_identities"], fields["psk_binders"] = _ch_pre_shared_key(data)
    r.finish()
    return ClientHello(
        random=random,
        legacy_session_id=session_id,
        cipher_suites=suites,
        legacy_compression_methods=compression,
        extension_types=tuple(types),
        **fields,  # type: ignore[arg-type]
    )


# ---- ServerHello / HelloRetryRequest (RFC 8446 §4.1.3, §4.1.4) ------------------------------------


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A ServerHello, or a HelloRetryRequest when ``random == HRR_RANDOM``."""

    random: bytes
    legacy_session_id: bytes
    cipher_suite: int
    supported_version: int | None = None
    key_share: tuple[int, bytes] | None = None
    selected_group: int | None = None  # HelloRetryRequest only
    cookie: bytes | None = None  # HelloRetryRequest only
    selected_identity: int | None = None
    legacy_compression_method: int = 0

    @property
    def is_retry_request(self) -> bool:
        return self.random == HRR_RANDOM

    def encode(self) -> bytes:
        body = bytearray(struct.pack("!H", TLS12))
        body += self.random
        _vec(body, 1, self.legacy_session_id)
        body += struct.pack("!HB", self.cipher_suite, self.legacy_compression_method)
        start = _begin(body, 2)
        if self.supported_version is not None:
            _extension(body, _EXT.SUPPORTED_VERSIONS, struct.pack("!H", self.supported_version))
        if self.key_share is not None:
            group, share = self.key_share
            _extension(body, _EXT.KEY_SHARE, struct.pack("!HH", group, len(share)) + share)
        if self.selected_group is not None:
            _extension(body, _EXT.KEY_SHARE, struct.pack("!H", self.selected_group))
        if self.cookie is not None:
            _extension(body, _EXT.COOKIE, struct.pack("!H", len(self.cookie)) + self.cookie)
        if self.selected_identity is not None:
            _extension(body, _EXT.PRE_SHARED_KEY, struct.pack("!H", self.selected_identity))
        _end(body, start, 2)
        return _message(HandshakeType.SERVER_HELLO, body)


def parse_untrusted_server_hello(body: bytes | memoryview) -> ServerHello:
    """Parses a ServerHello or HelloRetryRequest body.

    RFC 8446 §4.1.3/§4.2: an extension the client did not offer is unsupported_extension.
    """
    r = Reader(body)
    r.u16()  # legacy_version
    random = r.raw(32)
    session_id = r.vector(1)
    if len(session_id) > 32:
        raise _decode_error("legacy_session_id_echo longer than 32 bytes")
    suite = r.u16()
    compression = r.u8()
    is_hrr = random == HRR_RANDOM
    fields: dict[str, object] = {}
    for ext_type, data in _iter_extensions(r):
        if ext_type == _EXT.SUPPORTED_VERSIONS:
            fields["supported_version"] = data.u16()
        elif ext_type == _EXT.KEY_SHARE and is_hrr:
            fields["selected_group"] = data.u16()
        elif ext_type == _EXT.KEY_SHARE:
            group = data.u16()
            fields["key_share"] = (group, data.vector(2, minimum=1))
        elif ext_type == _EXT.COOKIE and is_hrr:
            fields["cookie"] = data.vector(2, minimum=1)
        elif ext_type == _EXT.PRE_SHARED_KEY and not is_hrr:
            fields["selected_identity"] = data.u16()
        else:
            raise tls_error(AlertDescription.UNSUPPORTED_EXTENSION, f"unexpected extension {ext_type}")
        data.finish()
    r.finish()
    return ServerHello(
        random=random,
        legacy_session_id=session_id,
        cipher_suite=suite,
        legacy_compression_method=compression,
        **fields,  # type: ignore[arg-type]
    )


# ---- EncryptedExtensions (RFC 8446 §4.3.1) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncryptedExtensions:
    alpn: bytes | None = None
    transport_parameters: bytes | None = None
    early_data: bool = False
    server_name_acknowledged: bool = False

    def encode(self) -> bytes:
        body = bytearray()
        start = _begin(body, 2)
        if self.server_name_acknowledged:
            _extension(body, _EXT.SERVER_NAME, b"")
        if self.alpn is not None:
            _extension(body, _EXT.ALPN, _encode_alpn((self.alpn,)))
        if self.early_data:
            _extension(body, _EXT.EARLY_DATA, b"")
        if self.transport_parameters is not None:
            _extension(body, _EXT.QUIC_TRANSPORT_PARAMETERS, self.transport_parameters)
        _end(body, start, 2)
        return _message(HandshakeType.ENCRYPTED_EXTENSIONS, body)


# Extensions a server may put in EncryptedExtensions in answer to what our ClientHello offers.
_EE_ALLOWED: Final = frozenset(
    {_EXT.SERVER_NAME, _EXT.SUPPORTED_GROUPS, _EXT.ALPN, _EXT.EARLY_DATA, _EXT.QUIC_TRANSPORT_PARAMETERS}
)


def parse_untrusted_encrypted_extensions(body: bytes | memoryview) -> EncryptedExtensions:
    r = Reader(body)
    fields: dict[str, object] = {}
    for ext_type, data in _iter_extensions(r):
        if ext_type not in _EE_ALLOWED:
            # RFC 8446 §4.2: an extension in a response that the client did not offer is
            # unsupported_extension. Our ClientHello offers exactly the _EE_ALLOWED ones.
            raise tls_error(AlertDescription.UNSUPPORTED_EXTENSION, f"unexpected extension {ext_type}")
        if ext_type == _EXT.ALPN:
            names = _parse_alpn(data)
            if len(names) != 1:
                # RFC 7301 §3.1: the server's list "MUST contain exactly one protocol name".
                raise _decode_error("ALPN response must name exactly one protocol")
            fields["alpn"] = names[0]
        elif ext_type == _EXT.QUIC_TRANSPORT_PARAMETERS:
            fields["transport_parameters"] = data.raw(data.end - data.pos)
        elif ext_type == _EXT.EARLY_DATA:
            data.finish()
            fields["early_data"] = True
        elif ext_type == _EXT.SERVER_NAME:
            data.finish()
            fields["server_name_acknowledged"] = True
        # supported_groups is informational for the client (RFC 8446 §4.2.7) and is ignored.
    r.finish()
    return EncryptedExtensions(**fields)  # type: ignore[arg-type]


# ---- Certificate, CertificateRequest, CertificateVerify, Finished (RFC 8446 §4.3.2, §4.4) ------------


@dataclass(frozen=True, slots=True)
class Certificate:
    """A Certificate message: the DER certificates, leaf first (per-entry extensions are not kept)."""

    request_context: bytes
    certificates: tuple[bytes, ...]

    def encode(self) -> bytes:
        body = bytearray()
        _vec(body, 1, self.request_context)
        start = _begin(body, 3)
        for der in self.certificates:
            _vec(body, 3, der)
            body += b"\x00\x00"  # no per-certificate extensions
        _end(body, start, 3)
        return _message(HandshakeType.CERTIFICATE, body)


MAX_CERTIFICATE_CHAIN: Final = 16  # certificates accepted in one Certificate message


def parse_untrusted_certificate(body: bytes | memoryview) -> Certificate:
    r = Reader(body)
    context = r.vector(1)
    entries = r.sub(3)
    certs: list[bytes] = []
    while not entries.at_end():
        certs.append(entries.vector(3, minimum=1))
        # Per-entry extensions (OCSP status, SCTs) answer requests we never make; they are skipped.
        entries.sub(2)
        if len(certs) > MAX_CERTIFICATE_CHAIN:
            raise tls_error(AlertDescription.BAD_CERTIFICATE, "certificate chain too long")
    r.finish()
    return Certificate(request_context=context, certificates=tuple(certs))


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    request_context: bytes
    signature_algorithms: tuple[int, ...]

    def encode(self) -> bytes:
        body = bytearray()
        _vec(body, 1, self.request_context)
        start = _begin(body, 2)
        ext = bytearray()
        _u16_list(ext, 2, self.signature_algorithms)
        _extension(body, _EXT.SIGNATURE_ALGORITHMS, bytes(ext))
        _end(body, start, 2)
        return _message(HandshakeType.CERTIFICATE_REQUEST, body)


def parse_untrusted_certificate_request(body: bytes | memoryview) -> CertificateRequest:
    r = Reader(body)
    context = r.vector(1)
    algorithms: tuple[int, ...] | None = None
    for ext_type, data in _iter_extensions(r):
        if ext_type == _EXT.SIGNATURE_ALGORITHMS:
            algorithms = data.u16_list(2, minimum=2)
            data.finish()
        # RFC 8446 §4.3.2: "Clients MUST ignore unrecognized extensions."
    r.finish()
    if algorithms is None:
        # RFC 8446 §4.3.2: "The "signature_algorithms" extension MUST be specified".
        raise tls_error(AlertDescription.MISSING_EXTENSION, "CertificateRequest without signature_algorithms")
    return CertificateRequest(request_context=context, signature_algorithms=algorithms)


@dataclass(frozen=True, slots=True)
class CertificateVerify:
    algorithm: int
    signature: bytes

    def encode(self) -> bytes:
        body = bytearray(struct.pack("!H", self.algorithm))
        _vec(body, 2, self.signature)
        return _message(HandshakeType.CERTIFICATE_VERIFY, body)


def parse_untrusted_certificate_verify(body: bytes | memoryview) -> CertificateVerify:
    r = Reader(body)
    algorithm = r.u16()
    signature = r.vector(2, minimum=1)
    r.finish()
    return CertificateVerify(algorithm=algorithm, signature=signature)


@dataclass(frozen=True, slots=True)
class Finished:
    verify_data: bytes

    def encode(self) -> bytes:
        return _message(HandshakeType.FINISHED, bytearray(self.verify_data))


def parse_untrusted_finished(body: bytes | memoryview, hash_length: int) -> Finished:
    if len(body) != hash_length:
        raise _decode_error("Finished of the wrong length")
    return Finished(verify_data=bytes(body))


# ---- NewSessionTicket (RFC 8446 §4.6.1) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSessionTicket:
    lifetime: int
    age_add: int
    nonce: bytes
    ticket: bytes
    max_early_data: int | None = None

    def encode(self) -> bytes:
        body = bytearray(struct.pack("!II", self.lifetime, self.age_add))
        _vec(body, 1, self.nonce)
        _vec(body, 2, self.ticket)
        start = _begin(body, 2)
        if self.max_early_data is not None:
            _extension(body, _EXT.EARLY_DATA, struct.pack("!I", self.max_early_data))
        _end(body, start, 2)
        return _message(HandshakeType.NEW_SESSION_TICKET, body)


def parse_untrusted_new_session_ticket(body: bytes | memoryview) -> NewSessionTicket:
    r = Reader(body)
    lifetime = r.u32()
    age_add = r.u32()
    nonce = r.vector(1)
    ticket = r.vector(2, minimum=1)
    max_early_data: int | None = None
    for ext_type, data in _iter_extensions(r):
        if ext_type == _EXT.EARLY_DATA:
            max_early_data = data.u32()
            data.finish()
        # RFC 8446 §4.6.1: unrecognized NewSessionTicket extensions are ignored.
    r.finish()
    return NewSessionTicket(
        lifetime=lifetime, age_add=age_add, nonce=nonce, ticket=ticket, max_early_data=max_early_data
    )
