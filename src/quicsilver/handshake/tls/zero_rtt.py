"""The server's 0-RTT check on remembered transport parameters (RFC 9000 §7.4.1, RFC 9221 §3).

A client sending 0-RTT data obeys the limits the server gave in the connection that issued its
ticket. RFC 9000 §7.4.1: "a server that accepts 0-RTT data MUST NOT set values for the following
parameters (Section 18.2) that are smaller than the remembered values of the parameters:
active_connection_id_limit, initial_max_data, initial_max_stream_data_bidi_local,
initial_max_stream_data_bidi_remote, initial_max_stream_data_uni, initial_max_streams_bidi,
initial_max_streams_uni"; RFC 9221 §3 adds max_datagram_frame_size. A server seals its encoded
transport parameters into the ticket (``TLSEngine.send_session_ticket(now, app_data)``) and passes
:func:`early_data_check` for its current ones as ``TLSEngine(early_data_check=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ...errors import TransportError
from ...protocol import Perspective
from ...wire.transport_parameters import TransportParameters, parse_transport_parameters

__all__ = ["REMEMBERED_LIMITS", "early_data_check", "zero_rtt_parameters_compatible"]

REMEMBERED_LIMITS: Final = (
    "active_connection_id_limit",
    "initial_max_data",
    "initial_max_stream_data_bidi_local",
    "initial_max_stream_data_bidi_remote",
    "initial_max_stream_data_uni",
    "initial_max_streams_bidi",
    "initial_max_streams_uni",
)


def zero_rtt_parameters_compatible(remembered: bytes, current: TransportParameters) -> bool:
    """Whether 0-RTT sent under the ``remembered`` (encoded) server parameters fits ``current``.

    False for anything that does not parse: such a ticket's 0-RTT is rejected, the handshake goes on.
    """
    try:
        old = parse_transport_parameters(remembered, Perspective.SERVER)
    except TransportError:
        return False
    for name in REMEMBERED_LIMITS:
        if getattr(current, name) < getattr(old, name):
            return False
    # RFC 9221 §3: datagram support may not shrink or go away under 0-RTT.
    if old.max_datagram_frame_size is None:
        return True
    return current.max_datagram_frame_size is not None and (
        current.max_datagram_frame_size >= old.max_datagram_frame_size
    )


def early_data_check(current: TransportParameters) -> Callable[[bytes], bool]:
    """The ``TLSEngine(early_data_check=...)`` callback for a server whose parameters are ``current``."""
    return lambda remembered: zero_rtt_parameters_compatible(remembered, current)
