"""Bulk transfers over one stream in the simulated network: byte-identical at 0 %, 5 % and 20 % loss
with reordering (RFC 9000 §2, §13.3; RFC 9002 §6, §7)."""

from __future__ import annotations

import random

import pytest

from quicsilver.config import Config

from .sim import Link
from .transfer import TransferSim

MB = 1_000_000


def _run(size: int, loss: float, reorder: float, seed: int = 1, **kwargs: object) -> TransferSim:
    payload = random.Random(seed).randbytes(size)
    sim = TransferSim(
        payload,
        seed=seed,
        to_server=Link(loss=loss, reorder=reorder, reorder_delay=0.005),
        to_client=Link(loss=loss, reorder=reorder, reorder_delay=0.005),
        **kwargs,  # type: ignore[arg-type]
    )
    assert sim.run_until(sim.done, max_time=600), (sim.now, len(sim.received))
    assert sim.client.terminal_error is None and sim.server.terminal_error is None
    return sim


def test_10mb_no_loss() -> None:
    sim = _run(10 * MB, 0.0, 0.0)
    assert sim.digest_ok()
    # With no loss nothing is retransmitted: the bytes sent are the payload plus headers and ACKs.
    assert sim.client.stats()["bytes_sent"] < 10 * MB * 1.04


def test_10mb_5_percent_loss_with_reordering() -> None:
    sim = _run(10 * MB, 0.05, 0.05)
    assert sim.digest_ok()


@pytest.mark.slow
def test_10mb_20_percent_loss_with_reordering() -> None:
    sim = _run(10 * MB, 0.20, 0.05, seed=2)
    assert sim.digest_ok()


@pytest.mark.parametrize("seed", [3, 4])
def test_1mb_20_percent_loss_duplication_and_reordering(seed: int) -> None:
    payload = random.Random(seed).randbytes(MB)
    link = {"loss": 0.2, "reorder": 0.2, "duplicate": 0.05}
    sim = TransferSim(payload, seed=seed, to_server=Link(**link), to_client=Link(**link))  # type: ignore[arg-type]
    assert sim.run_until(sim.done, max_time=600)
    assert sim.digest_ok()


def test_1mb_newreno() -> None:
    sim = _run(MB, 0.05, 0.05, config=Config(congestion_control="newreno"))
    assert sim.digest_ok()


def test_bursts_send_what_packet_by_packet_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bursts of STREAM packets (``QuicConnection._pack_burst``) only save work: the same transfer
    sends as many datagrams and bytes, at the same times, without them. (Lossless: with loss the
    random packet number skips make runs differ by a few datagrams either way; the lossy transfers
    above run with bursts.)"""
    from quicsilver.ackhandler import packet_number_generator

    # The packet number skips (and with them the ACK ranges) placed alike in both runs: drawn from a
    # seeded Random instead of the OS.
    monkeypatch.setattr(packet_number_generator, "_SYSTEM_RANDOM", random.Random(5))

    with_bursts = _run(MB, 0.0, 0.0, seed=5)
    assert with_bursts.digest_ok()
    # most of the ~750 data packets (the client uploads) went out in bursts
    assert with_bursts.client.burst_datagrams_sent > 600
    monkeypatch.setattr(packet_number_generator, "_SYSTEM_RANDOM", random.Random(5))
    monkeypatch.setattr(TransferSim, "bursts_enabled", False)
    without = _run(MB, 0.0, 0.0, seed=5)
    assert without.digest_ok()
    assert without.client.burst_datagrams_sent == without.server.burst_datagrams_sent == 0
    for side in ("client", "server"):
        a, b = getattr(with_bursts, side).stats(), getattr(without, side).stats()
        assert a["datagrams_sent"] == b["datagrams_sent"], side
        # A few bytes vary from run to run either way (the ECDSA signature's length, packet number
        # lengths and ACK ranges around the random packet number skips).
        assert abs(a["bytes_sent"] - b["bytes_sent"]) < 8, side
    assert with_bursts.now == without.now
