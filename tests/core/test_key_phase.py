"""1-RTT keys and key update (RFC 9001 §6): initiating, responding, keeping the previous keys for
reordered packets for three PTOs, and KEY_UPDATE_ERROR for a peer that updates twice too quickly."""

from __future__ import annotations

import pytest

from quicsilver.core.key_phase import KeysDroppedError, OneRTTKeys
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.handshake.protection import CipherSuite, DecryptionError
from quicsilver.protocol import VERSION_1

SUITE = CipherSuite.AES_128_GCM_SHA256
C2S = bytes(range(32))
S2C = bytes(range(32, 64))
HDR = b"\x40hdr"
PTO = 0.1


def pair(interval: int = 10) -> tuple[OneRTTKeys, OneRTTKeys]:
    client = OneRTTKeys(SUITE, VERSION_1, C2S, S2C, first_update_interval=interval, update_interval=interval)
    server = OneRTTKeys(SUITE, VERSION_1, S2C, C2S, first_update_interval=interval, update_interval=interval)
    return client, server


def send(sender: OneRTTKeys, pn: int, payload: bytes = b"data") -> tuple[bytes, bool]:
    sender.on_packet_sent(pn)
    return sender.send_keys.seal(pn, HDR, payload), sender.phase_bit


def first_exchange(client: OneRTTKeys, server: OneRTTKeys) -> None:
    """A packet each way at time 0, the client's acknowledged: the client may update (RFC 9001 §6.5)."""
    ct, bit = send(client, 0)
    server.open(0, HDR, ct, bit, 0.0, PTO)
    ct, bit = send(server, 0)
    client.open(0, HDR, ct, bit, 0.0, PTO)
    client.on_packet_acked(0)


def test_update_initiated_only_after_interval_and_ack() -> None:
    client, server = pair(interval=10)
    for pn in range(10):
        ct, bit = send(client, pn)
        assert server.open(pn, HDR, ct, bit, 0.0, PTO) == b"data"
    assert not client.should_initiate_update()  # RFC 9001 §6.5: nothing received, nothing acked yet
    ct, bit = send(server, 0)
    client.open(0, HDR, ct, bit, 0.0, PTO)
    client.on_packet_acked(9)
    assert client.should_initiate_update()


def test_peer_update_is_followed_and_old_keys_decrypt_reordered_packets() -> None:
    client, server = pair()
    first_exchange(client, server)
    late, late_bit = send(client, 1)  # sent with phase 0, delivered after the update
    client.initiate_update(1.0, PTO)
    ct, bit = send(client, 2)
    assert bit is True
    # The server sees the new phase bit, derives the next keys, and responds with them.
    assert server.open(2, HDR, ct, bit, 1.0, PTO) == b"data"
    assert server.key_phase == 1 and server.phase_bit
    # A reordered packet of the old phase still decrypts with the previous keys...
    assert server.open(1, HDR, late, late_bit, 1.1, PTO) == b"data"
    # ...until three PTOs have passed (RFC 9001 §6.5).
    with pytest.raises(KeysDroppedError):
        server.open(1, HDR, late, late_bit, 1.0 + 3 * PTO + 0.01, PTO)
    ct, bit = send(server, 1)
    assert client.open(1, HDR, ct, bit, 1.2, PTO) == b"data"


def test_second_update_before_sending_is_key_update_error() -> None:
    client, server = pair()
    first_exchange(client, server)
    client.initiate_update(1.0, PTO)
    ct, bit = send(client, 1)
    server.open(1, HDR, ct, bit, 1.0, PTO)  # the server follows to phase 1 but sends nothing
    # A hostile client updates again: phase 2 keys, phase bit back to 0.
    rogue = client.send_keys.next_generation()
    ct = rogue.seal(5, HDR, b"x")
    with pytest.raises(TransportError) as exc:
        server.open(5, HDR, ct, False, 1.05, PTO)
    assert exc.value.code == TransportErrorCode.KEY_UPDATE_ERROR


def test_forged_packet_is_dropped_not_fatal() -> None:
    _, server = pair()
    with pytest.raises(DecryptionError):
        server.open(0, HDR, b"\x00" * 40, False, 0.0, PTO)
    with pytest.raises(DecryptionError):
        server.open(0, HDR, b"\x00" * 40, True, 0.0, PTO)  # a wrong phase bit tries the next keys
    assert server.key_phase == 0


def test_next_phase_keys_are_derived_ahead_only_when_asked_and_again_after_each_update() -> None:
    # RFC 9001 §6.3: the next receive keys are derived outside packet processing (prepare_next, at the
    # connection's timer, about a PTO after a phase began); a packet of the next phase that comes first
    # still decrypts.
    client, server = pair()
    assert not client.next_prepared and not server.next_prepared
    client.schedule_next(0.5)
    assert client.next_keys_due == 0.5
    server.prepare_next()
    server.schedule_next(0.5)  # already made: nothing to schedule
    assert server.next_keys_due is None
    assert server.next_prepared
    ahead = server._next_recv_keys
    first_exchange(client, server)
    client.initiate_update(1.0, PTO)
    # the phase after the new one: about a PTO later (the connection's timer)
    assert not client.next_prepared and client.next_keys_due == pytest.approx(1.0 + PTO)
    client.prepare_next_if_due(1.0 + PTO / 2)
    assert not client.next_prepared
    client.prepare_next_if_due(1.0 + PTO)
    assert client.next_prepared and client.next_keys_due is None
    ct, bit = send(client, 1)
    assert server.open(1, HDR, ct, bit, 1.0, PTO) == b"data"
    assert server.key_phase == 1 and server.recv_keys is ahead  # the keys made ahead, not new ones
    assert not server.next_prepared and server.next_keys_due == pytest.approx(1.0 + PTO)
    server.prepare_next()
    assert server.next_prepared and server.next_keys_due is None
    # a second update (after the first was answered and acknowledged) uses the keys made ahead too
    ct, bit = send(server, 1)
    client.open(1, HDR, ct, bit, 1.1, PTO)
    server.on_packet_acked(1)
    server.initiate_update(2.0, PTO)
    ct, bit = send(server, 2)
    assert client.open(2, HDR, ct, bit, 2.0, PTO) == b"data" and client.key_phase == 2


def test_made_from_recognises_only_unused_keys_of_the_same_secrets() -> None:
    client, _ = pair()
    assert client.made_from(SUITE, C2S, S2C)
    assert not client.made_from(SUITE, S2C, C2S)
    assert not client.made_from(CipherSuite.AES_256_GCM_SHA384, C2S, S2C)
    send(client, 0)
    assert not client.made_from(SUITE, C2S, S2C)  # a key once used is not "made ahead" any more
