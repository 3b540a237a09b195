"""stats(): what TLS negotiated and the loss counter reach the connection's counters."""

from __future__ import annotations

import random

from quicsilver.handshake.protection import CipherSuite
from quicsilver.handshake.tls.groups import NamedGroup

from .sim import Link, Sim
from .transfer import TransferSim


def test_stats_report_the_negotiated_suite_and_group() -> None:
    sim = Sim()
    assert sim.client.stats()["cipher_suite"] is None  # nothing negotiated before the handshake
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    for side in (sim.client, sim.server):
        stats = side.stats()
        assert stats["cipher_suite"] == CipherSuite.AES_128_GCM_SHA256
        assert stats["group"] == NamedGroup.X25519MLKEM768
        assert stats["packets_lost"] == 0


def test_stats_count_lost_packets() -> None:
    payload = random.Random(5).randbytes(300_000)
    sim = TransferSim(payload, seed=5, to_server=Link(loss=0.1))
    assert sim.run_until(sim.done, max_time=120)
    assert sim.digest_ok()
    # 10 % of the client's datagrams are dropped on the way: the sender declares some of them lost,
    # and stats() reports exactly what the loss detector counted.
    lost = sim.client.stats()["packets_lost"]
    assert lost > 0
    assert lost == sim.client._sph.packets_lost
    assert sim.server.stats()["packets_lost"] == 0  # nothing the server sent was dropped
