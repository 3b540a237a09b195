"""The socket layer: wrap a UDP socket for QUIC and move datagrams in batches (quic-go ``sys_conn``).

See :mod:`quicsilver.sys.sockopts` (buffers, DF, ECN, pktinfo, GSO/GRO probing) and
:mod:`quicsilver.sys.packet_conn` (``PacketConn.read_batch`` / ``write_batch``).
"""

from __future__ import annotations

from .packet_conn import Address, OutgoingDatagram, PacketConn, PacketInfo, ReceivedDatagram, wrap_conn
from .sockopts import DESIRED_BUFFER_SIZE, GSO_MAX_BYTES, GSO_MAX_SEGMENTS, Capabilities, probe_gro, probe_gso

__all__ = [
    "DESIRED_BUFFER_SIZE",
    "GSO_MAX_BYTES",
    "GSO_MAX_SEGMENTS",
    "Address",
    "Capabilities",
    "OutgoingDatagram",
    "PacketConn",
    "PacketInfo",
    "ReceivedDatagram",
    "probe_gro",
    "probe_gso",
    "wrap_conn",
]
