"""Congestion control and RTT estimation (RFC 9002 §5, §7; RFC 9438): RTTStats, NewReno, CUBIC, pacer."""

from __future__ import annotations

from quicsilver.congestion.cubic import CubicSender
from quicsilver.congestion.interface import CongestionState, SendAlgorithm
from quicsilver.congestion.newreno import NewRenoSender
from quicsilver.congestion.pacer import Pacer
from quicsilver.congestion.rtt import RTTStats
from quicsilver.protocol import INITIAL_PACKET_SIZE
from quicsilver.qlog.tracer import ConnectionTracer

__all__ = [
    "CongestionState",
    "CubicSender",
    "NewRenoSender",
    "Pacer",
    "RTTStats",
    "SendAlgorithm",
    "new_send_algorithm",
]


def new_send_algorithm(
    name: str,
    rtt: RTTStats,
    max_datagram_size: int = INITIAL_PACKET_SIZE,
    tracer: ConnectionTracer | None = None,
) -> NewRenoSender:
    """The congestion controller named by ``Config.congestion_control``: ``"cubic"`` or ``"newreno"``.

    Raises ValueError for any other name (Config validation rejects those earlier).
    """
    if name == "cubic":
        return CubicSender(rtt, max_datagram_size, tracer)
    if name == "newreno":
        return NewRenoSender(rtt, max_datagram_size, tracer)
    raise ValueError(f"unknown congestion control algorithm {name!r}")
