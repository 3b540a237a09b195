"""Our transport parameters and the checks on the peer's (RFC 9000 §7.3, §7.4, §18.2; RFC 9368 §5).

RFC 9000 §7.3: "An endpoint MUST treat the absence of the initial_source_connection_id transport
parameter from either endpoint or the absence of the original_destination_connection_id transport
parameter from the server as a connection error of type TRANSPORT_PARAMETER_ERROR", and mismatched
values likewise. RFC 9368 §5 adds the version_information downgrade check.
"""

from __future__ import annotations

from typing import Final

from quicsilver.config import Config
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import (
    ACK_DELAY_EXPONENT,
    ACTIVE_CONNECTION_ID_LIMIT,
    MAX_ACK_DELAY_ADVERTISED_MS,
    MAX_PACKET_BUFFER_SIZE,
    Perspective,
)
from quicsilver.wire.transport_parameters import (
    PreferredAddress,
    TransportParameters,
    VersionInformation,
    check_connection_id_parameters,
)

__all__ = [
    "MAX_DATAGRAM_FRAME_SIZE",
    "local_transport_parameters",
    "validate_peer_parameters",
]

MAX_DATAGRAM_FRAME_SIZE: Final = 16383  # quic-go advertises this when datagrams are enabled
_TPE: Final = TransportErrorCode.TRANSPORT_PARAMETER_ERROR


def local_transport_parameters(
    config: Config,
    perspective: Perspective,
    version: int,
    initial_scid: bytes,
    *,
    original_dcid: bytes | None = None,
    retry_scid: bytes | None = None,
    stateless_reset_token: bytes | None = None,
    preferred_address: PreferredAddress | None = None,
) -> TransportParameters:
    """The parameters we send (quic-go's defaults, see DESIGN.md §6)."""
    server = perspective == Perspective.SERVER
    return TransportParameters(
        max_idle_timeout=int(config.max_idle_timeout * 1000),
        max_udp_payload_size=MAX_PACKET_BUFFER_SIZE,
        initial_max_data=config.initial_connection_receive_window,
        initial_max_stream_data_bidi_local=config.initial_stream_receive_window,
        initial_max_stream_data_bidi_remote=config.initial_stream_receive_window,
        initial_max_stream_data_uni=config.initial_stream_receive_window,
        initial_max_streams_bidi=config.max_incoming_streams,
        initial_max_streams_uni=config.max_incoming_uni_streams,
        ack_delay_exponent=ACK_DELAY_EXPONENT,
        max_ack_delay=MAX_ACK_DELAY_ADVERTISED_MS,
        disable_active_migration=config.disable_active_migration,
        active_connection_id_limit=ACTIVE_CONNECTION_ID_LIMIT,
        initial_source_connection_id=initial_scid,
        max_datagram_frame_size=MAX_DATAGRAM_FRAME_SIZE if config.enable_datagrams else None,
        version_information=VersionInformation(
            chosen_version=version, available_versions=tuple(config.versions)
        ),
        original_destination_connection_id=original_dcid if server else None,
        retry_source_connection_id=retry_scid if server else None,
        stateless_reset_token=stateless_reset_token if server else None,
        preferred_address=preferred_address if server else None,
    )


def validate_peer_parameters(
    params: TransportParameters,
    perspective: Perspective,
    *,
    peer_initial_scid: bytes | None,
    original_dcid: bytes,
    retry_scid: bytes | None,
    version: int,
) -> None:
    """RFC 9000 §7.3 connection ID authentication and RFC 9368 §5; ``perspective`` is ours."""
    peer = Perspective.SERVER if perspective == Perspective.CLIENT else Perspective.CLIENT
    if peer_initial_scid is None:
        raise TransportError(_TPE, "transport parameters before the peer's first Initial")
    check_connection_id_parameters(
        params, peer, initial_scid=peer_initial_scid, original_dcid=original_dcid, retry_scid=retry_scid
    )
    info = params.version_information
    if info is not None and info.chosen_version != version:
        # RFC 9368 §5: the Chosen Version must match the version of the packets carrying it.
        raise TransportError(
            TransportErrorCode.VERSION_NEGOTIATION_ERROR, "version_information chosen version mismatch"
        )
