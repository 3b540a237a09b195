"""RFC 8448 (Example Handshake Traces for TLS 1.3) reproduced with our key schedule and codecs.

§3 (simple 1-RTT): the ephemeral X25519 keys of the trace give the shared secret, and our key
schedule, driven by the trace's transcript, gives every secret and both Finished values byte for
byte; our parsers read the trace's messages and our CertificateVerify check accepts the server's
RSA-PSS signature. §4 (resumed 0-RTT): the resumption PSK, the PSK binder and the early secrets.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509

from quicsilver.errors import TransportError
from quicsilver.handshake.protection import CipherSuite
from quicsilver.handshake.tls.certs import public_key_of
from quicsilver.handshake.tls.groups import ClientKeyShare, NamedGroup
from quicsilver.handshake.tls.key_schedule import KeySchedule
from quicsilver.handshake.tls.messages import (
    parse_untrusted_certificate,
    parse_untrusted_certificate_verify,
    parse_untrusted_client_hello,
    parse_untrusted_encrypted_extensions,
    parse_untrusted_finished,
    parse_untrusted_new_session_ticket,
    parse_untrusted_server_hello,
)
from quicsilver.handshake.tls.signatures import SignatureScheme, verify_certificate_verify

h = bytes.fromhex

# ---- RFC 8448 §3 messages (handshake headers included) ------------------------------------------------
CLIENT_HELLO = h(
    "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113031302010000"
    "910000000b0009000006736572766572ff01000100000a00140012001d00170018001901000101010201030104002300000033"
    "00260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020"
    "001e040305030603020308040805080604010501060102010402050206020202002d00020101001c00024001"
)
SERVER_HELLO = h(
    "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e00330024001d00"
    "20c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304"
)
ENCRYPTED_EXTENSIONS = h("080000240022000a00140012001d00170018001901000101010201030104001c0002400100000000")
CERTIFICATE = h(
    "0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a864886f70d01010b0500300e310c300a060355"
    "04031303727361301e170d3136303733303031323335395a170d3236303733303031323335395a300e310c300a060355040313"
    "0372736130819f300d06092a864886f70d010101050003818d0030818902818100b4bb498f8279303d980836399b36c6988c0c"
    "68de55e1bdb826d3901a2461eafd2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced43120998e187a80ee0ccb0524b1b"
    "018c3e0b63264d449a6d38e22a5fda430846748030530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d3"
    "5a8d88d79f7f1e3f0203010001a31a301830090603551d1304023000300b0603551d0f0404030205a0300d06092a864886f70d"
    "01010b05000381810085aad2a0e5b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a58c8f8172f9"
    "319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102702e608ccae6bec1fc63a42a99be5c3eb7107c3c54e9b9eb"
    "2bd5203b1c3b84e0a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b42b4de10000"
)
CERTIFICATE_VERIFY = h(
    "0f000084080400805a747c5d88fa9bd2e55ab085a61015b7211f824cd484145ab3ff52f1fda8477b0b7abc90db78e2d33a5c14"
    "1a078653fa6bef780c5ea248eeaaa785c4f394cab6d30bbe8d4859ee511f602957b15411ac027671459e46445c9ea58c181e81"
    "8e95b8c3fb0bf3278409d3be152a3da5043e063dda65cdf5aea20d53dfacd42f74f3"
)
SERVER_FINISHED = h("140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718")
CLIENT_FINISHED = h("14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61")
NEW_SESSION_TICKET = h(
    "040000c90000001efad6aac502000000b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a34cb33fa90bf1b0070"
    "ad3c498883c9367c09a2be785abc55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce1450"
    "77d454a3664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fb"
    "f297b5aea617646fac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4d3570008002a0004000004"
    "00"
)
CLIENT_PRIVATE = h("49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005")
CLIENT_PUBLIC = h("99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c")
SERVER_PUBLIC = h("c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f")

# ---- RFC 8448 §4 (resumed 0-RTT) -------------------------------------------------------------------------
RESUMED_CLIENT_HELLO_PREFIX = (
    h(
        "010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc419d7876487d95000006130113031302010001cd"
        "0000000b0009000006736572766572ff01000100000a00140012001d00170018001901000101010201030104003300260024"
        "001d0020e4ffb68ac05f8d96c99da26698346c6be16482badddafe051a66b4f18d668f0b002a0000002b0003020304000d0020"
        "001e040305030603020308040805080604010501060102010402050206020202002d00020101001c00024001"
    )
    + h("00150057")  # padding extension: 87 zero bytes
    + bytes(87)
    + h(
        "002900dd00b800b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c9367c"
        "09a2be785abc55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce145077d454a3664d4e6d"
        "a4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea617646f"
        "ac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4d357fad6aacb"
    )
)
RESUMED_BINDERS = h("0021203add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d")
RESUMED_SERVER_HELLO = h(
    "0200005c03033ccfd2dec890222763472ae8136777c9d7358777bb66e91ea5122495f559ea2d00130100003400290002000000"
    "330024001d0020121761ee42c333e1b9e77b60dd57c2053cd94512ab47f115e86eff50942cea31002b00020304"
)
RESUMED_ENCRYPTED_EXTENSIONS = h(
    "080000280026000a00140012001d00170018001901000101010201030104001c0002400100000000002a0000"
)
RESUMED_CLIENT_PRIVATE = h("bff91188283846dd6a2134ef7180ca2b0b14fb10dce707b5098c0dddc813b2df")
RESUMED_SERVER_PUBLIC = h("121761ee42c333e1b9e77b60dd57c2053cd94512ab47f115e86eff50942cea31")


def th(*messages: bytes) -> bytes:
    return hashlib.sha256(b"".join(messages)).digest()


def test_rfc8448_3_shared_secret_from_the_trace_keys() -> None:
    share = ClientKeyShare.from_private_bytes(NamedGroup.X25519, CLIENT_PRIVATE)
    assert share.public == CLIENT_PUBLIC
    assert share.exchange(SERVER_PUBLIC) == h(
        "8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d"
    )


def test_rfc8448_3_key_schedule_and_finished() -> None:
    ks = KeySchedule(CipherSuite.AES_128_GCM_SHA256)
    assert ks.secret == h("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")  # early
    shared = ClientKeyShare.from_private_bytes(NamedGroup.X25519, CLIENT_PRIVATE).exchange(SERVER_PUBLIC)
    ks.enter_handshake(shared)
    assert ks.secret == h("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")  # handshake
    hello_hash = th(CLIENT_HELLO, SERVER_HELLO)
    assert hello_hash == h("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
    client_hs = ks.derive_secret(b"c hs traffic", hello_hash)
    server_hs = ks.derive_secret(b"s hs traffic", hello_hash)
    assert client_hs == h("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
    assert server_hs == h("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    server_finished = ks.verify_data(
        server_hs, th(CLIENT_HELLO, SERVER_HELLO, ENCRYPTED_EXTENSIONS, CERTIFICATE, CERTIFICATE_VERIFY)
    )
    assert server_finished == SERVER_FINISHED[4:]
    ks.enter_master()
    assert ks.secret == h("18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")  # master
    through_server_finished = th(
        CLIENT_HELLO, SERVER_HELLO, ENCRYPTED_EXTENSIONS, CERTIFICATE, CERTIFICATE_VERIFY, SERVER_FINISHED
    )
    assert ks.derive_secret(b"c ap traffic", through_server_finished) == h(
        "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5"
    )
    assert ks.derive_secret(b"s ap traffic", through_server_finished) == h(
        "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643"
    )
    assert ks.derive_secret(b"exp master", through_server_finished) == h(
        "fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50"
    )
    assert ks.verify_data(client_hs, through_server_finished) == CLIENT_FINISHED[4:]
    assert ks.check_verify_data(client_hs, through_server_finished, CLIENT_FINISHED[4:])
    resumption_master = ks.derive_secret(
        b"res master",
        th(
            CLIENT_HELLO,
            SERVER_HELLO,
            ENCRYPTED_EXTENSIONS,
            CERTIFICATE,
            CERTIFICATE_VERIFY,
            SERVER_FINISHED,
            CLIENT_FINISHED,
        ),
    )
    assert resumption_master == h("7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c")
    assert ks.resumption_psk(resumption_master, b"\x00\x00") == h(
        "4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3"
    )


def test_rfc8448_3_messages_parse() -> None:
    ch = parse_untrusted_client_hello(CLIENT_HELLO[4:])
    assert ch.server_name == "server"
    assert ch.key_shares == ((NamedGroup.X25519, CLIENT_PUBLIC),)
    assert ch.supported_versions == (0x0304,)
    assert ch.cipher_suites == (0x1301, 0x1303, 0x1302)
    assert ch.psk_modes == (1,)
    sh = parse_untrusted_server_hello(SERVER_HELLO[4:])
    assert sh.key_share == (NamedGroup.X25519, SERVER_PUBLIC) and sh.cipher_suite == 0x1301
    certificate = parse_untrusted_certificate(CERTIFICATE[4:])
    assert len(certificate.certificates) == 1
    assert parse_untrusted_finished(SERVER_FINISHED[4:], 32).verify_data == SERVER_FINISHED[4:]
    ticket = parse_untrusted_new_session_ticket(NEW_SESSION_TICKET[4:])
    assert (ticket.lifetime, ticket.age_add, ticket.nonce) == (30, 0xFAD6AAC5, b"\x00\x00")
    assert ticket.max_early_data == 0x400 and len(ticket.ticket) == 178
    # The trace's client offered record_size_limit; ours never does, so its echo is refused
    # (RFC 8446 §4.2: an unsolicited extension in EncryptedExtensions is unsupported_extension).
    with pytest.raises(TransportError) as info:
        parse_untrusted_encrypted_extensions(ENCRYPTED_EXTENSIONS[4:])
    assert info.value.code == 0x100 + 110


def test_rfc8448_3_certificate_verify_checks_out() -> None:
    cert = x509.load_der_x509_certificate(parse_untrusted_certificate(CERTIFICATE[4:]).certificates[0])
    verify = parse_untrusted_certificate_verify(CERTIFICATE_VERIFY[4:])
    assert verify.algorithm == SignatureScheme.RSA_PSS_RSAE_SHA256
    transcript = th(CLIENT_HELLO, SERVER_HELLO, ENCRYPTED_EXTENSIONS, CERTIFICATE)
    verify_certificate_verify(public_key_of(cert), verify.algorithm, verify.signature, transcript, True)
    with pytest.raises(TransportError) as info:
        verify_certificate_verify(public_key_of(cert), verify.algorithm, verify.signature, bytes(32), True)
    assert info.value.code == 0x100 + 51  # decrypt_error


def test_rfc8448_4_binder_and_early_secrets() -> None:
    psk = h("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")
    ks = KeySchedule(CipherSuite.AES_128_GCM_SHA256, psk)
    assert ks.secret == h("9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c")
    assert ks.binder_key() == h("69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256")
    binder = ks.verify_data(ks.binder_key(), th(RESUMED_CLIENT_HELLO_PREFIX))
    assert binder == RESUMED_BINDERS[3:]
    hello = RESUMED_CLIENT_HELLO_PREFIX + RESUMED_BINDERS
    parsed = parse_untrusted_client_hello(hello[4:])
    assert parsed.early_data and parsed.psk_binders == (binder,)
    assert parsed.binders_length() == len(RESUMED_BINDERS)
    assert parsed.psk_identities is not None and parsed.psk_identities[0][1] == 0xFAD6AACB
    assert ks.derive_secret(b"c e traffic", th(hello)) == h(
        "3fbbe6a60deb66c30a32795aba0eff7eaa10105586e7be5c09678d63b6caab62"
    )
    shared = ClientKeyShare.from_private_bytes(NamedGroup.X25519, RESUMED_CLIENT_PRIVATE).exchange(
        RESUMED_SERVER_PUBLIC
    )
    ks.enter_handshake(shared)
    assert ks.secret == h("005cb112fd8eb4ccc623bb88a07c64b3ede1605363fc7d0df8c7ce4ff0fb4ae6")
    sh = parse_untrusted_server_hello(RESUMED_SERVER_HELLO[4:])
    assert sh.selected_identity == 0
    transcript = th(hello, RESUMED_SERVER_HELLO)
    assert ks.derive_secret(b"c hs traffic", transcript) == h(
        "2faac08f851d35fea3604fcb4de82dc62c9b164a70974d0462e27f1ab278700f"
    )
    server_hs = ks.derive_secret(b"s hs traffic", transcript)
    assert server_hs == h("fe927ae271312e8bf0275b581c54eef020450dc4ecffaa05a1a35d27518e7803")
    assert ks.verify_data(server_hs, th(hello, RESUMED_SERVER_HELLO, RESUMED_ENCRYPTED_EXTENSIONS)) == h(
        "48d3e0e1b3d907c6acff145e16090388c77b05c050b634ab1a88bbd0dd1a34b2"
    )
    ks.enter_master()
    assert ks.secret == h("e2d32d4ed66dd37897a0e80c84107503ce58bf8aad4cb55a5002d77ecb890ece")
