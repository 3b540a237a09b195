"""Shared builders for the recovery tests."""

from __future__ import annotations

import random

from quicsilver.ackhandler.sent import SentPacket, SentPacketHandler
from quicsilver.congestion import NewRenoSender, RTTStats
from quicsilver.protocol import ECN, PacketNumberSpace, Perspective
from quicsilver.qlog.tracer import ConnectionTracer
from quicsilver.wire.frames import AckFrame

MDS = 1200
INITIAL = PacketNumberSpace.INITIAL
HANDSHAKE = PacketNumberSpace.HANDSHAKE
APP = PacketNumberSpace.APPLICATION


def make_handler(
    perspective: Perspective = Perspective.CLIENT,
    *,
    confirmed: bool = True,
    tracer: ConnectionTracer | None = None,
    seed: int = 1,
    enable_ecn: bool = True,
    address_validated: bool = False,
) -> SentPacketHandler:
    rtt = RTTStats()
    h = SentPacketHandler(
        rtt,
        NewRenoSender(rtt, MDS),
        perspective,
        tracer=tracer,
        rng=random.Random(seed),
        enable_ecn=enable_ecn,
        address_validated=address_validated,
    )
    if confirmed:
        h.drop_space(INITIAL, 0.0)
        h.drop_space(HANDSHAKE, 0.0)
        h.set_handshake_confirmed(0.0)
    return h


def send(
    h: SentPacketHandler,
    now: float,
    space: PacketNumberSpace = APP,
    *,
    size: int = MDS,
    ack_eliciting: bool = True,
    mtu_probe: bool = False,
    ecn: ECN = ECN.NOT_ECT,
    largest_acked: int | None = None,
) -> SentPacket:
    pn = h.pop_packet_number(space)
    pkt = SentPacket(
        pn,
        space,
        now,
        size,
        ack_eliciting,
        ack_eliciting,
        [("frame", pn)],
        is_mtu_probe=mtu_probe,
        ecn=ecn,
        largest_acked=largest_acked,
    )
    h.sent_packet(pkt)
    return pkt


def ack(*ranges: tuple[int, int], delay: int = 0, ecn: tuple[int, int, int] | None = None) -> AckFrame:
    """ACK frame from inclusive ranges given in any order."""
    return AckFrame(tuple(sorted(ranges, reverse=True)), delay, ecn)
