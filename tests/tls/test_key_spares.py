"""Ephemeral keys made ahead of need (handshake/tls/groups.py): each used once, by the process that
made it, while fresh, and made again only for the kinds that were taken."""

from __future__ import annotations

import os

import pytest

from quicsilver.handshake.tls import groups
from quicsilver.handshake.tls.groups import (
    SPARE_KEY_LIFETIME,
    ClientKeyShare,
    NamedGroup,
    replenish_key_spares,
    server_key_exchange,
)

NOW = 5000.0


@pytest.fixture(autouse=True)
def _empty_pools() -> None:
    groups._hybrid_spares.clear()
    groups._x25519_spares.clear()
    groups._wanted[:] = [False, False]


def _hybrid() -> ClientKeyShare:
    return ClientKeyShare(NamedGroup.X25519MLKEM768, now=NOW)


def test_a_spare_made_after_a_handshake_serves_the_next_one_once() -> None:
    first = _hybrid()
    replenish_key_spares(NOW)
    assert len(groups._hybrid_spares) == 1
    (kem, x, spare_public), _made, _pid = groups._hybrid_spares[0]
    # the share kept with the spare is its keys' (ML-KEM encapsulation key, then X25519)
    assert spare_public == kem.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
    second = _hybrid()
    assert second.public == spare_public  # the spare, not a new key
    third = _hybrid()  # no replenish in between: a fresh key, never the spare again
    assert len({first.public, second.public, third.public}) == 3


def test_both_sides_still_agree_with_spares() -> None:
    for _ in range(3):
        client = _hybrid()
        server_share, server_secret = server_key_exchange(NamedGroup.X25519MLKEM768, client.public, NOW)
        assert client.exchange(server_share) == server_secret
        replenish_key_spares(NOW)


def test_the_server_takes_each_x25519_spare_once() -> None:
    client = ClientKeyShare(NamedGroup.X25519, now=NOW)
    share_a, _ = server_key_exchange(NamedGroup.X25519, client.public, NOW)
    replenish_key_spares(NOW)
    share_b, _ = server_key_exchange(NamedGroup.X25519, client.public, NOW)
    share_c, _ = server_key_exchange(NamedGroup.X25519, client.public, NOW)
    assert len({share_a, share_b, share_c}) == 3
    assert not groups._x25519_spares
    replenish_key_spares(NOW)
    (private, public), _made, _pid = groups._x25519_spares[0]
    assert public == private.public_key().public_bytes_raw()


def test_nothing_is_made_for_kinds_nobody_took() -> None:
    replenish_key_spares(NOW)
    assert not groups._hybrid_spares and not groups._x25519_spares
    _hybrid()
    replenish_key_spares(NOW)
    assert len(groups._hybrid_spares) == 1 and not groups._x25519_spares
    replenish_key_spares(NOW)  # nothing taken since: the pool does not grow
    assert len(groups._hybrid_spares) == 1


def test_a_stale_spare_is_dropped() -> None:
    _hybrid()
    replenish_key_spares(NOW)
    stale = groups._hybrid_spares[0][0][2]
    later = ClientKeyShare(NamedGroup.X25519MLKEM768, now=NOW + SPARE_KEY_LIFETIME)
    assert not later.public.startswith(stale)
    assert not groups._hybrid_spares


def test_a_spare_of_another_process_is_never_used() -> None:
    _hybrid()
    replenish_key_spares(NOW)
    keys, made, _pid = groups._hybrid_spares[0]
    groups._hybrid_spares[0] = (keys, made, os.getpid() + 1)  # as if inherited through fork()
    share = _hybrid()
    assert share.public != keys[2]


def test_without_a_clock_no_spare_is_taken() -> None:
    _hybrid()
    replenish_key_spares(NOW)
    spare = groups._hybrid_spares[0][0][2]
    share = ClientKeyShare(NamedGroup.X25519MLKEM768)
    assert share.public != spare
