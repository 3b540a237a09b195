"""The state a QuicConnection's parts share, declared once (RFC 9000 §5, §10, §12; RFC 9002).

``QuicConnection`` is split by concern into mixins (handshake and keys, timers and closing, frame
dispatch); this base only declares the attributes they share so each file reads on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any

from quicsilver.config import Config
from quicsilver.congestion.rtt import RTTStats
from quicsilver.core.conn_id_generator import ConnIDGenerator
from quicsilver.core.conn_id_manager import ConnIDManager
from quicsilver.core.datagram_queue import DatagramQueue
from quicsilver.core.events import Event
from quicsilver.core.packer import PacketPacker
from quicsilver.core.spaces import PacketSpace
from quicsilver.core.unpacker import PacketUnpacker
from quicsilver.protocol import PacketNumberSpace, Perspective
from quicsilver.qlog.tracer import ConnectionTracer

__all__ = ["ConnState", "ConnectionBase"]


class ConnState(Enum):
    """RFC 9000 §10: an open connection, then closing (we sent CONNECTION_CLOSE) or draining (the
    peer did, or a stateless reset arrived), then closed."""

    ACTIVE = "active"
    CLOSING = "closing"
    DRAINING = "draining"
    CLOSED = "closed"


class ConnectionBase:
    """Attribute declarations shared by the connection mixins."""

    _config: Config
    _perspective: Perspective
    _is_client: bool
    _events: deque[Event]
    _peer_addr: Any
    _state: ConnState
    _spaces: dict[PacketNumberSpace, PacketSpace]
    _rtt: RTTStats
    _sph: Any
    _packer: PacketPacker
    _unpacker: PacketUnpacker
    _conn_ids_ours: ConnIDGenerator
    _conn_ids_peer: ConnIDManager
    _tracer: ConnectionTracer | None
    _tls: Any
    _streams: Any
    _version: int
    _handshake_complete: bool
    _tls_suite: int | None
    _tls_group: int | None
    _handshake_confirmed: bool
    _max_datagram_size: int
    _peer_max_datagram_frame_size: int | None
    _peer_ack_delay_exponent: int
    _idle_timeout: float
    _last_now: float
    _ping_pending: bool
    _datagrams: DatagramQueue
    _datagram_addr: Any
    _datagram_size: int
    _last_ecn: int
    _version_decided: bool
    _peer_params: Any
    _preferred_address: Any  # ours (server), a wire PreferredAddress or None
    _new_token_provider: Callable[[Any], bytes | None] | None
