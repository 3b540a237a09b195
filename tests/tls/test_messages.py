"""Handshake message codec (RFC 8446 §4): round trips, every truncation is decode_error, and the
format rules the parser enforces (duplicate extensions, pre_shared_key last, binder count)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.errors import TransportError
from quicsilver.handshake.tls.messages import (
    HRR_RANDOM,
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    NewSessionTicket,
    ServerHello,
    parse_untrusted_certificate,
    parse_untrusted_certificate_request,
    parse_untrusted_certificate_verify,
    parse_untrusted_client_hello,
    parse_untrusted_encrypted_extensions,
    parse_untrusted_finished,
    parse_untrusted_new_session_ticket,
    parse_untrusted_server_hello,
)

DECODE_ERROR = 0x100 + 50
ILLEGAL_PARAMETER = 0x100 + 47
CODEC = settings(max_examples=60, derandomize=True, deadline=None)

u16 = st.integers(0, 0xFFFF)
opaque = st.binary(min_size=1, max_size=40)
host = st.from_regex(r"[a-z][a-z0-9.-]{0,30}", fullmatch=True)


@st.composite
def client_hellos(draw: st.DrawFn) -> ClientHello:
    groups = draw(st.lists(u16, min_size=1, max_size=5, unique=True))
    shares = tuple((g, draw(opaque)) for g in groups[: draw(st.integers(0, len(groups)))])
    identities = draw(
        st.one_of(st.none(), st.lists(st.tuples(opaque, st.integers(0, 2**32 - 1)), min_size=1, max_size=3))
    )
    return ClientHello(
        random=draw(st.binary(min_size=32, max_size=32)),
        legacy_session_id=draw(st.binary(max_size=32)),
        cipher_suites=tuple(draw(st.lists(u16, min_size=1, max_size=5))),
        supported_versions=tuple(draw(st.lists(u16, min_size=1, max_size=4))),
        server_name=draw(st.one_of(st.none(), host)),
        supported_groups=tuple(groups),
        key_shares=shares,
        signature_algorithms=tuple(draw(st.lists(u16, min_size=1, max_size=8))),
        alpn=draw(st.one_of(st.none(), st.lists(opaque, min_size=1, max_size=3).map(tuple))),
        transport_parameters=draw(st.one_of(st.none(), st.binary(max_size=60))),
        psk_modes=draw(
            st.one_of(st.none(), st.lists(st.integers(0, 255), min_size=1, max_size=2).map(tuple))
        ),
        early_data=draw(st.booleans()),
        cookie=draw(st.one_of(st.none(), opaque)),
        psk_identities=tuple(identities) if identities else None,
        psk_binders=tuple(draw(st.binary(min_size=32, max_size=48)) for _ in identities or ()),
    )


def _strip(hello: ClientHello) -> ClientHello:
    from dataclasses import replace

    return replace(hello, extension_types=())


@CODEC
@given(client_hellos())
def test_client_hello_round_trip(hello: ClientHello) -> None:
    encoded = hello.encode()
    assert int.from_bytes(encoded[1:4], "big") == len(encoded) - 4
    assert _strip(parse_untrusted_client_hello(encoded[4:])) == hello


@CODEC
@given(
    st.binary(min_size=32, max_size=32),
    u16,
    st.one_of(st.none(), st.tuples(u16, opaque)),
    st.one_of(st.none(), u16),
)
def test_server_hello_round_trip(
    random: bytes, suite: int, key_share: tuple[int, bytes] | None, identity: int | None
) -> None:
    if random == HRR_RANDOM:
        return
    hello = ServerHello(random, b"", suite, 0x0304, key_share=key_share, selected_identity=identity)
    assert parse_untrusted_server_hello(hello.encode()[4:]) == hello


def test_hello_retry_request_round_trip() -> None:
    retry = ServerHello(HRR_RANDOM, b"\x01" * 32, 0x1301, 0x0304, selected_group=0x17, cookie=b"c" * 10)
    parsed = parse_untrusted_server_hello(retry.encode()[4:])
    assert parsed == retry and parsed.is_retry_request


MESSAGES: list[tuple[object, Callable[[bytes], object]]] = [
    (
        EncryptedExtensions(alpn=b"h3", transport_parameters=b"\x01\x02", early_data=True),
        parse_untrusted_encrypted_extensions,
    ),
    (EncryptedExtensions(), parse_untrusted_encrypted_extensions),
    (Certificate(b"", (b"\x30\x03\x02\x01\x01", b"\x30\x00")), parse_untrusted_certificate),
    (Certificate(b"ctx", ()), parse_untrusted_certificate),
    (CertificateRequest(b"", (0x0403, 0x0804)), parse_untrusted_certificate_request),
    (CertificateVerify(0x0807, b"s" * 64), parse_untrusted_certificate_verify),
    (NewSessionTicket(60, 7, b"\x00", b"ticket", 0xFFFFFFFF), parse_untrusted_new_session_ticket),
    (NewSessionTicket(60, 7, b"", b"t"), parse_untrusted_new_session_ticket),
    (Finished(b"f" * 32), lambda body: parse_untrusted_finished(body, 32)),
]


@pytest.mark.parametrize(("message", "parse"), MESSAGES, ids=lambda v: type(v).__name__)
def test_round_trip_and_every_truncation(message: object, parse: Callable[[bytes], object]) -> None:
    encoded = message.encode()  # type: ignore[attr-defined]
    body = encoded[4:]
    assert int.from_bytes(encoded[1:4], "big") == len(body)
    assert parse(body) == message
    for cut in range(len(body)):
        with pytest.raises(TransportError) as info:
            parse(body[:cut])
        assert info.value.code == DECODE_ERROR, cut


def test_every_client_hello_truncation_is_decode_error() -> None:
    hello = ClientHello(
        random=bytes(32),
        cipher_suites=(0x1301,),
        supported_versions=(0x0304,),
        server_name="example.com",
        supported_groups=(0x1D,),
        key_shares=((0x1D, bytes(32)),),
        signature_algorithms=(0x0403,),
        alpn=(b"h3",),
        transport_parameters=b"tp",
        psk_modes=(1,),
        psk_identities=((b"id", 5),),
        psk_binders=(bytes(32),),
    )
    body = hello.encode()[4:]
    without_extensions = 2 + 32 + 1 + 4 + 2
    for cut in range(len(body)):
        if cut == without_extensions:
            # A hello without an extension block is well-formed (a pre-TLS 1.3 hello); the server
            # refuses it for its missing supported_versions (protocol_version), not as malformed.
            assert parse_untrusted_client_hello(body[:cut]).supported_versions is None
            continue
        with pytest.raises(TransportError) as info:
            parse_untrusted_client_hello(body[:cut])
        assert info.value.code == DECODE_ERROR, cut


def test_duplicate_extension_is_illegal_parameter() -> None:
    body = EncryptedExtensions(alpn=b"h3").encode()[4:]
    ext = body[2:]
    doubled = (2 * len(ext)).to_bytes(2, "big") + ext + ext
    with pytest.raises(TransportError) as info:
        parse_untrusted_encrypted_extensions(doubled)
    assert info.value.code == ILLEGAL_PARAMETER


def test_pre_shared_key_must_be_the_last_extension() -> None:
    hello = ClientHello(
        random=bytes(32), cipher_suites=(0x1301,), psk_identities=((b"id", 0),), psk_binders=(bytes(32),)
    )
    encoded = hello.encode()
    # Append an empty extension after pre_shared_key.
    body = bytearray(encoded[4:])
    ext_start = 2 + 32 + 1 + 4 + 2
    length = int.from_bytes(body[ext_start : ext_start + 2], "big")
    body[ext_start : ext_start + 2] = (length + 4).to_bytes(2, "big")
    body += b"\xff\x01\x00\x00"
    with pytest.raises(TransportError) as info:
        parse_untrusted_client_hello(bytes(body))
    assert info.value.code == ILLEGAL_PARAMETER


def test_binder_count_must_match_identities() -> None:
    hello = ClientHello(
        random=bytes(32),
        cipher_suites=(0x1301,),
        psk_identities=((b"a", 0), (b"b", 0)),
        psk_binders=(bytes(32),),
    )
    with pytest.raises(TransportError) as info:
        parse_untrusted_client_hello(hello.encode()[4:])
    assert info.value.code == ILLEGAL_PARAMETER


def test_server_alpn_must_name_one_protocol() -> None:
    # RFC 7301 §3.1: the server's ProtocolNameList holds exactly one name; here it holds two.
    two = b"\x00\x06\x02h3\x03hq1"
    ext = b"\x00\x10" + len(two).to_bytes(2, "big") + two
    with pytest.raises(TransportError) as info:
        parse_untrusted_encrypted_extensions(len(ext).to_bytes(2, "big") + ext)
    assert info.value.code == DECODE_ERROR


def test_unsolicited_server_hello_extension_is_unsupported_extension() -> None:
    hello = ServerHello(bytes(32), b"", 0x1301, 0x0304).encode()
    body = bytearray(hello[4:])
    body[-6:-4] = (6 + 4).to_bytes(2, "big")  # extensions length: supported_versions + one more
    body += b"\x00\x10\x00\x00"  # ALPN in a ServerHello
    with pytest.raises(TransportError) as info:
        parse_untrusted_server_hello(bytes(body))
    assert info.value.code == 0x100 + 110
