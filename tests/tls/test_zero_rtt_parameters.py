"""The server's check of remembered transport parameters before accepting 0-RTT (RFC 9000 §7.4.1,
RFC 9221 §3), alone and wired into a resumed handshake."""

from __future__ import annotations

import pytest

from quicsilver.handshake.tls import (
    EarlyDataRejected,
    HandshakeComplete,
    MemorySessionTicketStore,
    TLSConfig,
    TLSEngine,
    WriteData,
)
from quicsilver.handshake.tls.zero_rtt import (
    REMEMBERED_LIMITS,
    early_data_check,
    zero_rtt_parameters_compatible,
)
from quicsilver.protocol import EncryptionLevel as L
from quicsilver.wire.transport_parameters import TransportParameters, encode_transport_parameters

from .helpers import CA, drive, of_type

ALPN = ["hq-interop"]
BASE = TransportParameters(
    initial_max_data=1 << 20,
    initial_max_stream_data_bidi_local=1 << 18,
    initial_max_stream_data_bidi_remote=1 << 18,
    initial_max_stream_data_uni=1 << 18,
    initial_max_streams_bidi=100,
    initial_max_streams_uni=100,
    active_connection_id_limit=4,
    max_datagram_frame_size=16383,
    stateless_reset_token=bytes(16),
    original_destination_connection_id=b"\x01" * 8,
    initial_source_connection_id=b"\x02" * 4,
)
REMEMBERED = encode_transport_parameters(BASE)


def test_same_or_larger_limits_are_compatible() -> None:
    assert zero_rtt_parameters_compatible(REMEMBERED, BASE)
    bigger = BASE.replace(initial_max_data=1 << 22, initial_max_streams_bidi=1000, max_idle_timeout=5)
    assert zero_rtt_parameters_compatible(REMEMBERED, bigger)


@pytest.mark.parametrize("name", REMEMBERED_LIMITS)
def test_any_smaller_limit_rejects_zero_rtt(name: str) -> None:
    smaller = BASE.replace(**{name: getattr(BASE, name) - 1})
    assert not zero_rtt_parameters_compatible(REMEMBERED, smaller)


def test_datagram_support_may_not_shrink() -> None:
    assert not zero_rtt_parameters_compatible(REMEMBERED, BASE.replace(max_datagram_frame_size=1200))
    assert not zero_rtt_parameters_compatible(REMEMBERED, BASE.replace(max_datagram_frame_size=None))
    without = encode_transport_parameters(BASE.replace(max_datagram_frame_size=None))
    assert zero_rtt_parameters_compatible(without, BASE.replace(max_datagram_frame_size=None))


def test_unparsable_remembered_parameters_reject_zero_rtt() -> None:
    assert not zero_rtt_parameters_compatible(b"\x40", BASE)


def test_wired_into_the_server_engine() -> None:
    ca = CA.create()
    server_config = ca.server_config(ALPN, ["localhost"])
    store = MemorySessionTicketStore()
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store)

    def connect(now: float, current: TransportParameters) -> tuple[list[object], TLSEngine, TLSEngine]:
        c = TLSEngine(
            client_config,
            is_client=True,
            transport_parameters=b"c",
            server_name="localhost",
            now=now,
            early_data=True,
        )
        s = TLSEngine(
            server_config,
            is_client=False,
            transport_parameters=encode_transport_parameters(current),
            now=now,
            early_data=True,
            early_data_check=early_data_check(current),
        )
        c_events, _ = drive(c, s, now)
        assert s.send_session_ticket(now, encode_transport_parameters(current))
        ticket = s.next_event()
        assert isinstance(ticket, WriteData)
        c.handle_message(ticket.data, L.ONE_RTT, now)
        return list(c_events), c, s

    connect(0.0, BASE)  # full handshake: gets a ticket remembering BASE
    events, c, _ = connect(1.0, BASE)  # same limits: 0-RTT accepted
    assert c.early_data_accepted and not of_type(events, EarlyDataRejected)  # type: ignore[arg-type]
    events, c, _ = connect(2.0, BASE.replace(initial_max_data=1000))  # the server lowered a limit
    assert of_type(events, EarlyDataRejected)  # type: ignore[arg-type]
    (done,) = of_type(events, HandshakeComplete)  # type: ignore[arg-type]
    assert isinstance(done, HandshakeComplete) and done.session_resumed and not done.early_data_accepted
