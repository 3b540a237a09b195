"""Unit tests of the connection core's parts: CRYPTO reassembly (RFC 9000 §7.5, §19.6) and connection
ID issuance / retirement (RFC 9000 §5.1, §19.15, §19.16)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.core.conn_id_generator import (
    ConnectionIDGenerator,
    ConnIDGenerator,
    RandomConnectionIDGenerator,
    stateless_reset_token,
)
from quicsilver.core.conn_id_manager import ConnIDManager
from quicsilver.core.crypto_stream import MAX_CRYPTO_BUFFER, CryptoStream
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.wire.frames import CryptoFrame, NewConnectionIdFrame, RetireConnectionIdFrame


def _drain(cs: CryptoStream) -> bytes:
    out = bytearray()
    while chunk := cs.read():
        out += chunk
    return bytes(out)


@settings(max_examples=60, derandomize=True)
@given(st.binary(min_size=1, max_size=3000), st.integers(0, 2**32), st.integers(1, 400))
def test_crypto_reassembly_any_order_with_overlaps(data: bytes, seed: int, chunk: int) -> None:
    rng = random.Random(seed)
    frames = []
    for off in range(0, len(data), chunk):
        end = min(len(data), off + chunk + rng.randrange(0, 30))  # overlapping chunks
        frames.append(CryptoFrame(offset=off, data=data[off:end]))
    frames += rng.sample(frames, k=min(3, len(frames)))  # duplicates
    rng.shuffle(frames)
    cs = CryptoStream()
    out = bytearray()
    for f in frames:
        cs.handle_crypto_frame(f)
        out += _drain(cs)
    assert bytes(out) == data
    assert not cs.has_buffered


def test_crypto_buffer_exceeded() -> None:
    cs = CryptoStream()
    cs.handle_crypto_frame(CryptoFrame(offset=MAX_CRYPTO_BUFFER - 10, data=b"x" * 10))
    with pytest.raises(TransportError) as exc:
        cs.handle_crypto_frame(CryptoFrame(offset=MAX_CRYPTO_BUFFER - 10, data=b"x" * 11))
    assert exc.value.code == TransportErrorCode.CRYPTO_BUFFER_EXCEEDED


def test_crypto_send_split_loss_and_probe() -> None:
    cs = CryptoStream()
    cs.write(b"a" * 1000)
    f1 = cs.pop_crypto_frame(300)
    assert f1 is not None and f1.length() <= 300 and f1.offset == 0
    f2 = cs.pop_crypto_frame(2000)
    assert f2 is not None and f2.offset == len(f1.data) and f2.offset + len(f2.data) == 1000
    assert not cs.has_data()
    cs.on_frame_lost(f1)
    assert cs.has_data()
    r = cs.pop_crypto_frame(100)
    assert r is not None and r.offset == 0 and r.length() <= 100
    r2 = cs.pop_crypto_frame(1000)
    assert r2 is not None and r2.offset == len(r.data) and r2.offset + len(r2.data) == len(f1.data)
    cs.on_frame_acked(f2)
    cs.on_frame_acked(r)
    cs.on_frame_acked(r2)
    assert cs.all_acked
    assert not cs.queue_probe()


def test_crypto_probe_requeues_unacked() -> None:
    cs = CryptoStream()
    cs.write(b"hello")
    f = cs.pop_crypto_frame(100)
    assert f is not None and not cs.has_data()
    assert cs.queue_probe()
    again = cs.pop_crypto_frame(100)
    assert again == f


def test_stateless_reset_token_is_hmac() -> None:
    import hashlib
    import hmac

    key = b"k" * 32
    assert stateless_reset_token(key, b"\x01\x02") == hmac.new(key, b"\x01\x02", hashlib.sha256).digest()[:16]


def test_random_generator_protocol() -> None:
    gen = RandomConnectionIDGenerator(8)
    assert isinstance(gen, ConnectionIDGenerator)
    assert len(gen.generate_connection_id()) == 8
    with pytest.raises(ValueError):
        RandomConnectionIDGenerator(21)


def test_generator_issues_up_to_limit_and_replaces_retired() -> None:
    g = ConnIDGenerator(RandomConnectionIDGenerator(8), b"\x00" * 8, b"key")
    g.set_peer_limit(8)  # capped at 4 active
    assert len(g.active_connection_ids) == 4
    assert [f.sequence for f in g.pending_frames] == [1, 2, 3]
    cid1 = g.pending_frames[0]
    assert isinstance(cid1, NewConnectionIdFrame)
    assert cid1.reset_token == stateless_reset_token(b"key", cid1.connection_id)
    g.handle_retire_connection_id(RetireConnectionIdFrame(sequence=1), packet_dcid=b"\x00" * 8)
    assert g.retired == [cid1.connection_id]
    assert len(g.active_connection_ids) == 4
    # RFC 9000 §19.16: retiring an unissued sequence number, or the packet's own DCID, is a violation.
    with pytest.raises(TransportError) as exc:
        g.handle_retire_connection_id(RetireConnectionIdFrame(sequence=99), packet_dcid=b"")
    assert exc.value.code == TransportErrorCode.PROTOCOL_VIOLATION
    with pytest.raises(TransportError) as exc:
        g.handle_retire_connection_id(RetireConnectionIdFrame(sequence=0), packet_dcid=b"\x00" * 8)
    assert exc.value.code == TransportErrorCode.PROTOCOL_VIOLATION


def _ncid(seq: int, rpt: int = 0) -> NewConnectionIdFrame:
    return NewConnectionIdFrame(
        sequence=seq, retire_prior_to=rpt, connection_id=bytes([seq]) * 8, reset_token=bytes([seq]) * 16
    )


def test_manager_limit_exceeded() -> None:
    m = ConnIDManager(b"\xaa" * 8, active_connection_id_limit=4)
    for seq in (1, 2, 3):
        m.handle_new_connection_id(_ncid(seq))
    m.handle_new_connection_id(_ncid(3))  # duplicate is fine
    with pytest.raises(TransportError) as exc:
        m.handle_new_connection_id(_ncid(4))
    assert exc.value.code == TransportErrorCode.CONNECTION_ID_LIMIT_ERROR


def test_manager_retire_prior_to_switches_active() -> None:
    m = ConnIDManager(b"\xaa" * 8, active_connection_id_limit=4)
    m.handle_new_connection_id(_ncid(1))
    m.handle_new_connection_id(_ncid(2, rpt=2))
    assert m.active == bytes([2]) * 8
    assert [f.sequence for f in m.pending_frames] == [0, 1]
    assert m.is_stateless_reset(bytes([2]) * 16)
    assert not m.is_stateless_reset(bytes([1]) * 16)
    # A late frame for a retired sequence number is retired at once.
    m.handle_new_connection_id(_ncid(1))
    assert m.pending_frames[-1].sequence == 1


def test_manager_conflicting_sequence_and_zero_length() -> None:
    m = ConnIDManager(b"\xaa" * 8, active_connection_id_limit=4)
    m.handle_new_connection_id(_ncid(1))
    bad = NewConnectionIdFrame(
        sequence=1, retire_prior_to=0, connection_id=b"\x09" * 8, reset_token=b"\x01" * 16
    )
    with pytest.raises(TransportError) as exc:
        m.handle_new_connection_id(bad)
    assert exc.value.code == TransportErrorCode.PROTOCOL_VIOLATION
    z = ConnIDManager(b"", active_connection_id_limit=4)
    with pytest.raises(TransportError) as exc:
        z.handle_new_connection_id(_ncid(1))
    assert exc.value.code == TransportErrorCode.PROTOCOL_VIOLATION


def test_prepared_cids_are_the_ones_issued_up_to_the_peers_limit() -> None:
    g = ConnIDGenerator(RandomConnectionIDGenerator(8), b"\x00" * 8, b"key")
    g.prepare(3)  # the peer's active_connection_id_limit: two more CIDs than the first
    prepared = list(g._prepared)
    assert len(prepared) == 2 and all(token == stateless_reset_token(b"key", cid) for cid, token in prepared)
    g.prepare(3)  # prepared once: nothing more
    assert g._prepared == prepared and g.pending_frames == [] and g.issued == []
    g.set_peer_limit(3)
    frames = g.pending_frames
    assert {(f.connection_id, f.reset_token) for f in frames if isinstance(f, NewConnectionIdFrame)} == set(
        prepared
    )
    assert sorted(g.issued) == sorted(cid for cid, _ in prepared) and g._prepared == []
    # a peer limit unknown when preparing: our cap (4 active), of which the peer may take fewer
    h = ConnIDGenerator(RandomConnectionIDGenerator(8), b"\x00" * 8, None)
    h.prepare()
    assert len(h._prepared) == 3
    h.set_peer_limit(2)
    assert len(h.issued) == 1 and len(h._prepared) == 2
    zero = ConnIDGenerator(RandomConnectionIDGenerator(0), b"", b"key")
    zero.prepare()  # RFC 9000 §5.1.1: zero-length CIDs are never issued
    assert zero._prepared == []
