"""In-memory TLS 1.3 handshakes between our client and our server (RFC 8446, RFC 9001 §4)."""

from __future__ import annotations

import itertools

import pytest

from quicsilver.errors import ConfigError, TransportError, crypto_error
from quicsilver.handshake.protection import CipherSuite
from quicsilver.handshake.tls import (
    HandshakeComplete,
    KeysReady,
    NamedGroup,
    PeerTransportParameters,
    TLSConfig,
    TLSEngine,
    WriteData,
)
from quicsilver.handshake.tls.alerts import AlertDescription
from quicsilver.protocol import EncryptionLevel as L

from .helpers import CA, drive, of_type

ALPN = ["hq-interop"]


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


@pytest.fixture(scope="module")
def server_configs(ca: CA) -> dict[str, TLSConfig]:
    return {
        kt: ca.server_config(ALPN, ["localhost", "127.0.0.1"], kt) for kt in ("ec", "ec384", "rsa", "ed25519")
    }


def engines(
    client_config: TLSConfig, server_config: TLSConfig, server_name: str = "localhost", **kw: object
) -> tuple[TLSEngine, TLSEngine]:
    client = TLSEngine(
        client_config, is_client=True, transport_parameters=b"client-tp", server_name=server_name, now=0.0
    )
    server = TLSEngine(server_config, is_client=False, transport_parameters=b"server-tp", now=0.0, **kw)  # type: ignore[arg-type]
    return client, server


def test_full_handshake_events_in_rfc9001_order(ca: CA, server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(TLSConfig(alpn=ALPN, cadata=ca.pem), server_configs["ec"])
    c_events, s_events = drive(client, server)
    # RFC 9001 §4.1.4: the client sends Initial, installs handshake keys on ServerHello, learns the
    # transport parameters in EncryptedExtensions, sends its Finished at Handshake, then 1-RTT keys.
    assert [type(e).__name__ for e in c_events] == [
        "WriteData",
        "KeysReady",
        "KeysReady",
        "PeerTransportParameters",
        "WriteData",
        "KeysReady",
        "KeysReady",
        "HandshakeComplete",
    ]
    assert [(e.level, e.is_write) for e in of_type(c_events, KeysReady)] == [  # type: ignore[attr-defined]
        (L.HANDSHAKE, False),
        (L.HANDSHAKE, True),
        (L.ONE_RTT, True),
        (L.ONE_RTT, False),
    ]
    assert [e.level for e in of_type(c_events, WriteData)] == [L.INITIAL, L.HANDSHAKE]  # type: ignore[attr-defined]
    # The server sends ServerHello at Initial, the rest at Handshake, and may write 1-RTT before the
    # client's Finished but reads 1-RTT only after it (RFC 9001 §5.7).
    assert [e.level for e in of_type(s_events, WriteData)] == [L.INITIAL, L.HANDSHAKE]  # type: ignore[attr-defined]
    assert [(e.level, e.is_write) for e in of_type(s_events, KeysReady)] == [  # type: ignore[attr-defined]
        (L.HANDSHAKE, False),
        (L.HANDSHAKE, True),
        (L.ONE_RTT, True),
        (L.ONE_RTT, False),
    ]
    assert of_type(s_events, PeerTransportParameters) == [PeerTransportParameters(b"client-tp")]
    assert of_type(c_events, PeerTransportParameters) == [PeerTransportParameters(b"server-tp")]
    # Both sides derive the same secrets: each write key is the other's read key.
    c_keys = {(e.level, e.is_write): e.secret for e in of_type(c_events, KeysReady)}  # type: ignore[attr-defined]
    s_keys = {(e.level, e.is_write): e.secret for e in of_type(s_events, KeysReady)}  # type: ignore[attr-defined]
    for (level, is_write), secret in c_keys.items():
        assert s_keys[level, not is_write] == secret
    (c_done,) = of_type(c_events, HandshakeComplete)
    (s_done,) = of_type(s_events, HandshakeComplete)
    assert isinstance(c_done, HandshakeComplete) and isinstance(s_done, HandshakeComplete)
    assert c_done.alpn == s_done.alpn == "hq-interop"
    assert c_done.suite == s_done.suite == CipherSuite.AES_128_GCM_SHA256
    assert c_done.group == s_done.group == NamedGroup.X25519MLKEM768
    assert not c_done.session_resumed and not c_done.early_data_accepted
    assert c_done.peer_certificates[0] == server_configs["ec"].certificate_chain[0]
    assert s_done.peer_certificates == ()
    assert client.handshake_complete and server.handshake_complete


@pytest.mark.parametrize(
    ("group", "suite"),
    list(itertools.product(list(NamedGroup), list(CipherSuite))),
    ids=lambda v: v.name,
)
def test_every_group_and_suite(
    ca: CA, server_configs: dict[str, TLSConfig], group: NamedGroup, suite: CipherSuite
) -> None:
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem, groups=[group], cipher_suites=[suite])
    client, server = engines(client_config, server_configs["ec"])
    c_events, s_events = drive(client, server)
    (done,) = of_type(s_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete)
    assert (done.group, done.suite) == (group, suite)
    assert of_type(c_events, HandshakeComplete)


@pytest.mark.parametrize("key_type", ["ec", "ec384", "rsa", "ed25519"])
def test_every_signature_algorithm(ca: CA, server_configs: dict[str, TLSConfig], key_type: str) -> None:
    client, server = engines(TLSConfig(alpn=ALPN, cadata=ca.pem), server_configs[key_type])
    c_events, _ = drive(client, server)
    assert of_type(c_events, HandshakeComplete)


@pytest.mark.parametrize("key_type", ["ec", "rsa", "ed25519"])
def test_self_signed_trusted_by_its_pem(key_type: str) -> None:
    server_config = TLSConfig.self_signed(alpn=ALPN, hosts=["example.test", "10.1.2.3"], key_type=key_type)
    client_config = TLSConfig(alpn=ALPN, cadata=server_config.certificate_pem)
    for name in ("example.test", "10.1.2.3"):
        client, server = engines(client_config, server_config, server_name=name)
        c_events, _ = drive(client, server)
        assert of_type(c_events, HandshakeComplete)


def test_alpn_server_preference_among_client_offers(ca: CA) -> None:
    server_config = ca.server_config(["h3", "hq-interop"], ["localhost"])
    client, server = engines(TLSConfig(alpn=["hq-interop", "h3"], cadata=ca.pem), server_config)
    c_events, _ = drive(client, server)
    (done,) = of_type(c_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.alpn == "h3"


def test_alpn_mismatch_is_no_application_protocol(ca: CA, server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(TLSConfig(alpn=["h3"], cadata=ca.pem), server_configs["ec"])
    with pytest.raises(TransportError) as info:
        drive(client, server)
    assert info.value.code == 0x178  # RFC 9001 §8.1 / RFC 7301: no_application_protocol


def test_missing_transport_parameters_is_missing_extension(
    ca: CA, server_configs: dict[str, TLSConfig]
) -> None:
    client = TLSEngine(
        TLSConfig(alpn=ALPN, cadata=ca.pem),
        is_client=True,
        transport_parameters=b"",
        server_name="localhost",
        now=0.0,
        quic=False,
    )
    server = TLSEngine(server_configs["ec"], is_client=False, transport_parameters=b"tp", now=0.0)
    with pytest.raises(TransportError) as info:
        drive(client, server)
    assert info.value.code == 0x16D  # RFC 9001 §8.2: missing_extension


def test_untrusted_certificate_is_bad_certificate(server_configs: dict[str, TLSConfig]) -> None:
    other_ca = CA.create("someone else")
    client, server = engines(TLSConfig(alpn=ALPN, cadata=other_ca.pem), server_configs["ec"])
    with pytest.raises(TransportError) as info:
        drive(client, server)
    assert info.value.code == crypto_error(AlertDescription.BAD_CERTIFICATE)


def test_wrong_host_name_is_bad_certificate(ca: CA, server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(
        TLSConfig(alpn=ALPN, cadata=ca.pem), server_configs["ec"], server_name="evil.test"
    )
    with pytest.raises(TransportError) as info:
        drive(client, server)
    assert info.value.code == 0x12A


def test_wrong_ip_address_is_bad_certificate(ca: CA, server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(
        TLSConfig(alpn=ALPN, cadata=ca.pem), server_configs["ec"], server_name="127.0.0.2"
    )
    with pytest.raises(TransportError) as info:
        drive(client, server)
    assert info.value.code == 0x12A


def test_expired_certificate_is_certificate_expired(ca: CA) -> None:
    server_config = TLSConfig(alpn=ALPN)
    server_config.set_certificate(*_as_chain(ca.issue(["localhost"], expired=True)))
    client, server = engines(TLSConfig(alpn=ALPN, cadata=ca.pem), server_config)
    with pytest.raises(TransportError) as info:
        drive(client, server)
    assert info.value.code == crypto_error(AlertDescription.CERTIFICATE_EXPIRED)


def _as_chain(pair: tuple[object, object]) -> tuple[list[object], object]:
    return [pair[0]], pair[1]


def test_verify_false_accepts_any_certificate(server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(
        TLSConfig(alpn=ALPN, verify=False), server_configs["rsa"], server_name="whatever"
    )
    c_events, _ = drive(client, server)
    assert of_type(c_events, HandshakeComplete)


def test_engine_is_dead_after_an_error(ca: CA, server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(TLSConfig(alpn=["h3"], cadata=ca.pem), server_configs["ec"])
    client.start()
    hello = client.next_event()
    assert isinstance(hello, WriteData)
    with pytest.raises(TransportError) as first:
        server.handle_message(hello.data, L.INITIAL)
    with pytest.raises(TransportError) as second:
        server.handle_message(b"", L.INITIAL)
    assert second.value is first.value


def test_messages_split_byte_by_byte(ca: CA, server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(TLSConfig(alpn=ALPN, cadata=ca.pem), server_configs["ec"])
    client.start()
    pending = [client]
    while pending:
        src = pending.pop()
        dst = server if src is client else client
        while (event := src.next_event()) is not None:
            if isinstance(event, WriteData):
                for i in range(len(event.data)):
                    dst.handle_message(event.data[i : i + 1], event.level)
                pending.append(dst)
    assert client.handshake_complete and server.handshake_complete


def test_data_at_the_wrong_level_is_unexpected_message(server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(TLSConfig(alpn=ALPN, verify=False), server_configs["ec"])
    client.start()
    hello = client.next_event()
    assert isinstance(hello, WriteData)
    with pytest.raises(TransportError) as info:
        server.handle_message(hello.data, L.HANDSHAKE)
    assert info.value.code == crypto_error(AlertDescription.UNEXPECTED_MESSAGE)


def test_key_update_message_is_unexpected_message(server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(TLSConfig(alpn=ALPN, verify=False), server_configs["ec"])
    drive(client, server)
    with pytest.raises(TransportError) as info:
        client.handle_message(bytes([24, 0, 0, 1, 0]), L.ONE_RTT)
    assert info.value.code == 0x10A  # RFC 9001 §6


# ---- TLSConfig input checks --------------------------------------------------------------------------


def test_config_errors_name_what_to_fix(tmp_path: object) -> None:
    with pytest.raises(ConfigError) as info:
        TLSConfig(alpn=[])
    assert info.value.field == "alpn"
    with pytest.raises(ConfigError) as info:
        TLSConfig(alpn=["h3"], certfile="/nonexistent/cert.pem")
    assert info.value.field == "certfile" and "/nonexistent/cert.pem" in str(info.value)
    with pytest.raises(ConfigError) as info:
        TLSEngine(TLSConfig(alpn=["h3"]), is_client=False, transport_parameters=b"", now=0.0)
    assert info.value.field == "certfile"
    with pytest.raises(ConfigError) as info:
        TLSConfig(alpn=["h3"], client_auth="sometimes")
    assert info.value.field == "client_auth"
    with pytest.raises(ConfigError) as info:
        TLSConfig(alpn=["h3"], ticket_key=b"short")
    assert info.value.field == "ticket_key"


def test_key_not_matching_certificate(tmp_path: pytest.TempPathFactory, ca: CA) -> None:
    from cryptography.hazmat.primitives import serialization

    from .helpers import new_key

    cert, _ = ca.issue(["localhost"])
    other = new_key("ec")
    cert_path = tmp_path / "cert.pem"  # type: ignore[operator]
    key_path = tmp_path / "key.pem"  # type: ignore[operator]
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ConfigError) as info:
        TLSConfig(alpn=["h3"], certfile=cert_path, keyfile=key_path)
    assert info.value.field == "keyfile"


def test_load_cert_chain_and_verify_locations_from_files(tmp_path: pytest.TempPathFactory, ca: CA) -> None:
    from cryptography.hazmat.primitives import serialization

    cert, key = ca.issue(["localhost"], "rsa")
    cert_path = tmp_path / "cert.pem"  # type: ignore[operator]
    key_path = tmp_path / "key.pem"  # type: ignore[operator]
    ca_path = tmp_path / "ca.pem"  # type: ignore[operator]
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca.pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca_path.write_bytes(ca.pem)
    server_config = TLSConfig(alpn=ALPN, certfile=cert_path, keyfile=key_path)
    assert len(server_config.certificate_chain) == 2
    client_config = TLSConfig(alpn=ALPN)
    client_config.load_verify_locations(cafile=ca_path)
    client, server = engines(client_config, server_config)
    c_events, _ = drive(client, server)
    assert of_type(c_events, HandshakeComplete)


def _insert_extension(hello: bytes, ext_type: int, data: bytes) -> bytes:
    """The ClientHello with one more extension at the front of its extension block."""
    body = bytearray(hello[4:])
    pos = 2 + 32
    pos += 1 + body[pos]  # legacy_session_id
    pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # cipher_suites
    pos += 1 + body[pos]  # legacy_compression_methods
    ext_len = int.from_bytes(body[pos : pos + 2], "big")
    extension = ext_type.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
    body[pos : pos + 2] = (ext_len + len(extension)).to_bytes(2, "big")
    body[pos + 2 : pos + 2] = extension
    return bytes((hello[0],)) + len(body).to_bytes(3, "big") + bytes(body)


def test_grease_values_are_tolerated(server_configs: dict[str, TLSConfig]) -> None:
    """RFC 8701: a server ignores GREASE cipher suites, groups, key shares, versions, signature
    algorithms, ALPN names and extensions, and never selects them."""
    from dataclasses import replace

    from quicsilver.handshake.tls.messages import parse_untrusted_client_hello, parse_untrusted_server_hello

    client = TLSEngine(
        TLSConfig(alpn=ALPN, verify=False),
        is_client=True,
        transport_parameters=b"c",
        server_name="x",
        now=0.0,
    )
    client.start()
    first = client.next_event()
    assert isinstance(first, WriteData)
    hello = parse_untrusted_client_hello(first.data[4:])
    assert hello.key_shares is not None and hello.supported_groups is not None
    assert hello.signature_algorithms is not None and hello.alpn is not None
    greased = replace(
        hello,
        cipher_suites=(0x0A0A, *hello.cipher_suites),
        supported_groups=(0x1A1A, *hello.supported_groups),
        key_shares=((0x1A1A, b"\x00"), *hello.key_shares),
        supported_versions=(0x2A2A, 0x0304),
        signature_algorithms=(0x3A3A, *hello.signature_algorithms),
        alpn=(b"\x4a\x4a", *hello.alpn),
    ).encode()
    greased = _insert_extension(greased, 0x5A5A, b"")
    greased = _insert_extension(greased, 0x6A6A, b"\x00")
    server = TLSEngine(server_configs["ec"], is_client=False, transport_parameters=b"s", now=0.0)
    server.handle_message(greased, L.INITIAL)
    reply = server.next_event()
    while isinstance(reply, PeerTransportParameters):
        reply = server.next_event()
    assert isinstance(reply, WriteData) and reply.level == L.INITIAL
    server_hello = parse_untrusted_server_hello(reply.data[4:])
    assert server_hello.cipher_suite == CipherSuite.AES_128_GCM_SHA256
    assert server_hello.key_share is not None and server_hello.key_share[0] == NamedGroup.X25519MLKEM768


def test_verified_chain_cache_is_per_server_name(ca: CA, server_configs: dict[str, TLSConfig]) -> None:
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem)
    for _ in range(2):  # the second handshake takes the cached verification
        client, server = engines(client_config, server_configs["ec"], server_name="localhost")
        assert of_type(drive(client, server)[0], HandshakeComplete)
    client, server = engines(client_config, server_configs["ec"], server_name="other.test")
    with pytest.raises(TransportError) as info:
        drive(client, server)
    assert info.value.code == crypto_error(AlertDescription.BAD_CERTIFICATE)


def test_exported_keying_material_matches_and_depends_on_label(
    ca: CA, server_configs: dict[str, TLSConfig]
) -> None:
    client, server = engines(TLSConfig(alpn=ALPN, cadata=ca.pem), server_configs["ec"])
    with pytest.raises(ValueError):
        client.export_keying_material(b"EXPORTER-test")
    drive(client, server)
    ours = client.export_keying_material(b"EXPORTER-test", b"ctx", 48)
    assert ours == server.export_keying_material(b"EXPORTER-test", b"ctx", 48) and len(ours) == 48
    assert ours != client.export_keying_material(b"EXPORTER-other", b"ctx", 48)
    assert ours != client.export_keying_material(b"EXPORTER-test", b"", 48)


def test_default_trust_is_the_system_bundle(
    ca: CA,
    server_configs: dict[str, TLSConfig],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pytest.TempPathFactory,
) -> None:
    """Without cafile/cadata the client trusts $SSL_CERT_FILE (or the system CA bundle)."""
    bundle = tmp_path / "bundle.pem"  # type: ignore[operator]
    bundle.write_bytes(ca.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    client, server = engines(TLSConfig(alpn=ALPN), server_configs["ec"])
    assert of_type(drive(client, server)[0], HandshakeComplete)
    # A bundle without our CA: the same server is not trusted.
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle.with_name("other.pem")))  # missing: system bundle
    client, server = engines(TLSConfig(alpn=ALPN), server_configs["ec"])
    with pytest.raises(TransportError) as info:
        drive(client, server)
    assert info.value.code == crypto_error(AlertDescription.BAD_CERTIFICATE)


def test_server_name_in_sni_is_an_a_label_without_trailing_dot(server_configs: dict[str, TLSConfig]) -> None:
    from quicsilver.handshake.tls.messages import parse_untrusted_client_hello

    for given, sent in (("bücher.example", "xn--bcher-kva.example"), ("localhost.", "localhost")):
        client = TLSEngine(
            TLSConfig(alpn=ALPN, verify=False),
            is_client=True,
            transport_parameters=b"",
            server_name=given,
            now=0.0,
        )
        client.start()
        hello = client.next_event()
        assert isinstance(hello, WriteData)
        assert parse_untrusted_client_hello(hello.data[4:]).server_name == sent


def test_certfile_without_key_asks_for_keyfile(tmp_path: pytest.TempPathFactory, ca: CA) -> None:
    from cryptography.hazmat.primitives import serialization

    cert, key = ca.issue(["localhost"])
    cert_path = tmp_path / "cert.pem"  # type: ignore[operator]
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigError) as info:
        TLSConfig(alpn=ALPN, certfile=cert_path)
    assert info.value.field == "keyfile" and "keyfile=" in str(info.value)
    # A combined PEM (certificate and key in one file) needs no keyfile.
    both = tmp_path / "both.pem"  # type: ignore[operator]
    both.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert TLSConfig(alpn=ALPN, certfile=both).private_key is not None


def test_handshake_complete_names_the_server(ca: CA, server_configs: dict[str, TLSConfig]) -> None:
    client, server = engines(TLSConfig(alpn=ALPN, cadata=ca.pem), server_configs["ec"])
    c_events, s_events = drive(client, server)
    (c_done,) = of_type(c_events, HandshakeComplete)
    (s_done,) = of_type(s_events, HandshakeComplete)
    assert c_done.server_name == s_done.server_name == "localhost"  # type: ignore[attr-defined]
    # An IP address is not sent in SNI (RFC 6066 §3): the server sees no name.
    client, server = engines(
        TLSConfig(alpn=ALPN, cadata=ca.pem), server_configs["ec"], server_name="127.0.0.1"
    )
    _, s_events = drive(client, server)
    (s_done,) = of_type(s_events, HandshakeComplete)
    assert s_done.server_name is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("server_group", [NamedGroup.X25519MLKEM768, NamedGroup.X25519], ids=lambda g: g.name)
def test_the_x25519_share_reuses_the_hybrid_shares_x25519_key(ca: CA, server_group: NamedGroup) -> None:
    """draft-ietf-tls-hybrid-design §3.2, as Go: offering X25519MLKEM768 and X25519, the client sends one
    X25519 public key in both shares, and the handshake completes whichever share the server takes."""
    from quicsilver.handshake.tls.messages import parse_untrusted_client_hello

    client = TLSEngine(
        TLSConfig(alpn=ALPN, cadata=ca.pem),
        is_client=True,
        transport_parameters=b"c",
        now=0.0,
        server_name="localhost",
    )
    server = TLSEngine(
        ca.server_config(ALPN, ["localhost"], groups=[server_group]),
        is_client=False,
        transport_parameters=b"s",
        now=0.0,
    )
    client.start()
    first = client.next_event()
    assert isinstance(first, WriteData)
    shares = dict(parse_untrusted_client_hello(memoryview(first.data)[4:]).key_shares or ())
    hybrid, classic = shares[NamedGroup.X25519MLKEM768], shares[NamedGroup.X25519]
    assert len(hybrid) == 1184 + 32 and len(classic) == 32
    assert hybrid[-32:] == classic
    server.handle_message(first.data, L.INITIAL)
    c_events, s_events = drive(client, server)
    (c_done,) = of_type(c_events, HandshakeComplete)
    (s_done,) = of_type(s_events, HandshakeComplete)
    assert isinstance(c_done, HandshakeComplete) and isinstance(s_done, HandshakeComplete)
    assert c_done.group == s_done.group == server_group
    # No HelloRetryRequest: the server found its group among the shares.
    assert len([e for e in of_type(c_events, WriteData) if e.level == L.INITIAL]) == 0  # type: ignore[attr-defined]
