"""qlog JSON-SEQ output (RFC 7464 framing, qlog main schema header, QUIC event names and fields)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.errors import ApplicationError, IdleTimeoutError, TransportError
from quicsilver.protocol import EncryptionLevel, Perspective
from quicsilver.qlog.qlog import (
    RECORD_SEPARATOR,
    JsonSeqWriter,
    QlogConnectionTracer,
    QlogTracer,
    frame_to_qlog,
    qlog_tracer_factory,
    read_qlog,
)
from quicsilver.qlog.tracer import ConnectionTracer, DropReason
from quicsilver.wire.frames import (
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    PaddingFrame,
    PingFrame,
    StreamFrame,
)
from quicsilver.wire.transport_parameters import (
    TransportParameters,
    VersionInformation,
    encode_transport_parameters,
    parse_transport_parameters,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _trace_a_connection(target: io.BytesIO, clock: FakeClock) -> QlogConnectionTracer:
    tracer = QlogConnectionTracer(
        target, is_client=True, odcid=bytes.fromhex("8394c8f03e515708"), clock=clock
    )
    tracer.started_connection(("127.0.0.1", 5000), ("127.0.0.1", 4433), b"\x01\x02", b"\x83\x94")
    tracer.negotiated_version(1, [1, 0x6B3343CF], None)
    tracer.sent_packet("INITIAL", 0, 1200, [CryptoFrame(0, b"x" * 300), PaddingFrame(880)])
    clock.now += 0.0125
    tracer.received_packet("HANDSHAKE", 0, 900, [AckFrame(((0, 0),), 3, None), CryptoFrame(0, b"y" * 800)])
    tracer.updated_key_from_tls(EncryptionLevel.HANDSHAKE, True)
    tracer.updated_metrics(
        SimpleNamespace(min_rtt=0.01, smoothed_rtt=0.01, latest_rtt=0.01, rttvar=0.005), 46720, 1200, 1
    )
    tracer.updated_metrics(
        SimpleNamespace(min_rtt=0.01, smoothed_rtt=0.011, latest_rtt=0.012, rttvar=0.005), 46720, 0, 0
    )
    tracer.lost_packet("ONE_RTT", 7, "time_threshold")
    tracer.dropped_packet("ONE_RTT", None, 60, DropReason.PAYLOAD_DECRYPT_ERROR)
    tracer.dropped_encryption_level("INITIAL")
    tracer.updated_key(1, remote=True)
    tracer.updated_state("handshake", "connected")
    tracer.set_loss_timer("pto", "1RTT", clock.now + 0.2)
    tracer.loss_timer_expired("pto", "1RTT")
    tracer.updated_congestion_state("recovery")
    tracer.updated_mtu(1452, True)
    tracer.closed_connection(ApplicationError(0, "bye", remote=False))
    return tracer


def test_connection_trace_round_trips_as_json_seq() -> None:
    out = io.BytesIO()
    clock = FakeClock()
    tracer = _trace_a_connection(out, clock)
    tracer.close()
    raw = out.getvalue()

    # RFC 7464 §2: every record is RS, a JSON text, LF.
    records = raw.split(RECORD_SEPARATOR)
    assert records[0] == b""
    assert all(r.endswith(b"\n") and b"\n" not in r[:-1] for r in records[1:])
    for r in records[1:]:
        json.loads(r)

    header, events = read_qlog(raw)
    assert header["qlog_format"] == "JSON-SEQ"
    assert header["qlog_version"] == "0.3"
    trace = header["trace"]
    assert trace["vantage_point"]["type"] == "client"
    assert trace["common_fields"]["ODCID"] == "8394c8f03e515708"
    assert trace["common_fields"]["time_format"] == "relative"

    names = [e["name"] for e in events]
    assert names == [
        "connectivity:connection_started",
        "transport:version_information",
        "transport:packet_sent",
        "transport:packet_received",
        "security:key_updated",
        "recovery:metrics_updated",
        "recovery:metrics_updated",
        "recovery:packet_lost",
        "transport:packet_dropped",
        "security:key_discarded",
        "security:key_discarded",
        "security:key_updated",
        "security:key_updated",
        "connectivity:connection_state_updated",
        "recovery:loss_timer_updated",
        "recovery:loss_timer_updated",
        "recovery:congestion_state_updated",
        "connectivity:mtu_updated",
        "connectivity:connection_closed",
    ]
    by_name = {e["name"]: e for e in events}
    sent = by_name["transport:packet_sent"]
    assert sent["time"] == 0.0
    assert sent["data"]["header"] == {"packet_type": "initial", "packet_number": 0}
    assert sent["data"]["raw"] == {"length": 1200}
    assert sent["data"]["frames"] == [
        {"frame_type": "crypto", "offset": 0, "length": 300},
        {"frame_type": "padding", "payload_length": 880},
    ]
    received = by_name["transport:packet_received"]
    assert received["time"] == 12.5
    assert received["data"]["header"]["packet_type"] == "handshake"
    assert events[4]["data"] == {"key_type": "client_handshake_secret", "trigger": "tls"}
    # Only the metrics that changed are logged again (qlog recovery:metrics_updated).
    assert events[5]["data"]["smoothed_rtt"] == 10.0
    assert events[6]["data"] == {
        "smoothed_rtt": 11.0,
        "latest_rtt": 12.0,
        "bytes_in_flight": 0,
        "packets_in_flight": 0,
    }
    assert by_name["transport:packet_dropped"]["data"]["trigger"] == "payload_decrypt_error"
    assert by_name["recovery:packet_lost"]["data"]["header"] == {"packet_type": "1RTT", "packet_number": 7}
    assert events[9]["data"]["key_type"] == "client_initial_secret"
    assert events[11]["data"] == {
        "key_type": "client_1rtt_secret",
        "generation": 1,
        "trigger": "remote_update",
    }
    assert events[14]["data"] == {
        "event_type": "set",
        "timer_type": "pto",
        "packet_number_space": "application_data",
        "delta": 200.0,
    }
    closed = by_name["connectivity:connection_closed"]["data"]
    assert closed == {"owner": "local", "trigger": "application", "application_code": 0, "reason": "bye"}


def test_transport_parameters_are_logged_field_by_field() -> None:
    out = io.BytesIO()
    tracer = QlogConnectionTracer(out, is_client=False, odcid=b"\x01", clock=FakeClock())
    local = TransportParameters(
        initial_max_data=1 << 20,
        initial_source_connection_id=b"\xab\xcd",
        version_information=VersionInformation(1, (1, 0x6B3343CF)),
    )
    tracer.sent_transport_parameters(local)
    remote = parse_transport_parameters(encode_transport_parameters(local), Perspective.SERVER)
    tracer.received_transport_parameters(remote)
    tracer.close()
    _, events = read_qlog(out.getvalue())
    assert [e["name"] for e in events] == ["transport:parameters_set"] * 2
    for event, owner in zip(events, ("local", "remote"), strict=True):
        data = event["data"]
        assert data["owner"] == owner
        assert data["initial_max_data"] == 1 << 20
        assert data["initial_source_connection_id"] == "abcd"
        assert data["max_udp_payload_size"] == 65527 and data["original_destination_connection_id"] is None
        assert data["version_information"] == {"chosen_version": 1, "available_versions": [1, 0x6B3343CF]}
        assert data["unknown"] == []


def test_events_after_close_are_ignored() -> None:
    out = io.BytesIO()
    tracer = QlogConnectionTracer(out, is_client=False, odcid=b"\x01")
    tracer.close()
    size = len(out.getvalue())
    tracer.sent_packet("ONE_RTT", 1, 50, [PingFrame()])
    tracer.close()
    assert len(out.getvalue()) == size
    header, events = read_qlog(out.getvalue())
    assert header["trace"]["vantage_point"]["type"] == "server"
    assert events == []


def test_writes_are_buffered_until_flush_or_close() -> None:
    out = io.BytesIO()
    writer = JsonSeqWriter(out)
    writer.write({"a": 1})
    assert out.getvalue() == b""
    writer.flush()
    assert out.getvalue() == b'\x1e{"a":1}\n'
    for i in range(5000):  # over the 64 KiB threshold: flushed without being asked
        writer.write({"i": i, "pad": "x" * 20})
    assert len(out.getvalue()) > 64 * 1024
    writer.close()
    assert writer.closed


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            TransportError(0xA, "bad frame", remote=True),
            {"owner": "remote", "trigger": "error", "connection_code": 0xA, "reason": "bad frame"},
            id="transport-remote",
        ),
        pytest.param(IdleTimeoutError(), {"owner": "local", "trigger": "idle_timeout"}, id="idle"),
    ],
)
def test_connection_closed_fields(error: Exception, expected: dict[str, object]) -> None:
    out = io.BytesIO()
    tracer = QlogConnectionTracer(out, is_client=True)
    tracer.closed_connection(error)
    tracer.close()
    _, events = read_qlog(out.getvalue())
    data = events[-1]["data"]
    for key, value in expected.items():
        assert data[key] == value


def test_frame_conversion_uses_qlog_names() -> None:
    ack = frame_to_qlog(AckFrame(((10, 12), (5, 5), (0, 3)), 17, (4, 0, 1)))
    assert ack == {
        "frame_type": "ack",
        "ack_delay": 17,
        "acked_ranges": [[0, 3], [5], [10, 12]],
        "ect0": 4,
        "ect1": 0,
        "ce": 1,
    }
    assert frame_to_qlog(StreamFrame(4, 100, memoryview(b"abc"), True)) == {
        "frame_type": "stream",
        "stream_id": 4,
        "offset": 100,
        "length": 3,
        "fin": True,
    }
    assert frame_to_qlog(MaxStreamsFrame(False, 9))["stream_type"] == "unidirectional"
    close = frame_to_qlog(ConnectionCloseFrame(0x178, 0x6, b"no alpn", False))
    assert close["error_space"] == "transport"
    assert close["reason"] == "no alpn"
    assert close["trigger_frame_type"] == 0x6
    ncid = frame_to_qlog(NewConnectionIdFrame(2, 1, b"\xaa\xbb", b"\x00" * 16))
    assert ncid["connection_id"] == "aabb"
    assert ncid["sequence_number"] == 2
    assert frame_to_qlog("connection_close(0x2)")["frame_type"] == "unknown"


def test_transport_tracer_writes_packets_outside_connections() -> None:
    out = io.BytesIO()
    tracer = QlogTracer(out)
    tracer.dropped_packet(("10.0.0.1", 1234), "long", 1300, DropReason.DOS_PREVENTION)
    tracer.sent_version_negotiation_packet(("10.0.0.1", 1234), b"\x01", b"\x02", [1, 0x6B3343CF])
    tracer.sent_packet(("10.0.0.1", 1234), "retry", 120, None)
    tracer.close()
    header, events = read_qlog(out.getvalue())
    assert header["trace"]["vantage_point"]["type"] == "network"
    assert [e["name"] for e in events] == [
        "transport:packet_dropped",
        "transport:packet_sent",
        "transport:packet_sent",
    ]
    assert events[0]["data"]["trigger"] == "dos_prevention"
    assert events[1]["data"]["supported_versions"] == ["00000001", "6b3343cf"]
    assert events[2]["data"]["header"]["packet_type"] == "retry"


def test_factory_honours_qlogdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "qlogs"
    monkeypatch.setenv("QLOGDIR", str(directory))
    make = qlog_tracer_factory()
    client = make(Perspective.CLIENT, b"\xde\xad")
    server = make(Perspective.SERVER, b"\xde\xad")
    assert isinstance(client, ConnectionTracer)
    client.sent_packet("INITIAL", 0, 1200, [PingFrame()])
    client.close()
    server.close()
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["dead_client.sqlog", "dead_server.sqlog"]
    _, events = read_qlog(directory / "dead_client.sqlog")
    assert events[0]["name"] == "transport:packet_sent"


def test_factory_without_directory_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QLOGDIR", raising=False)
    with pytest.raises(ValueError, match="QLOGDIR"):
        qlog_tracer_factory()


def test_reader_skips_a_truncated_last_record_and_rejects_garbage() -> None:
    out = io.BytesIO()
    tracer = QlogConnectionTracer(out, is_client=True)
    tracer.sent_packet("ONE_RTT", 3, 40, [PingFrame()])
    tracer.close()
    complete = out.getvalue()
    _, events = read_qlog(complete + b'\x1e{"time": 1, "na')  # RFC 7464 §2.4
    assert len(events) == 1
    with pytest.raises(ValueError, match="RS"):
        read_qlog(b'{"qlog_format": "JSON-SEQ"}\n')
    with pytest.raises(ValueError, match="not JSON"):
        read_qlog(complete + b"\x1e{nope\n")
    with pytest.raises(ValueError, match="JSON object"):
        read_qlog(complete + b"\x1e[1, 2]\n")
    with pytest.raises(ValueError, match="header"):
        read_qlog(b'\x1e{"time": 0}\n')


async def test_a_real_transfer_writes_qlogs_with_quic_event_names(tmp_path: Path) -> None:
    import asyncio

    import quicsilver as quic
    from quicsilver.apps.perf import PERF_ALPN, perf_request, serve_perf_connection

    config = quic.Config(tracer=qlog_tracer_factory(tmp_path))
    server_tls = quic.TLSConfig.self_signed(alpn=[PERF_ALPN])
    listener = await quic.listen_addr("127.0.0.1:0", server_tls, config)

    async def serve() -> None:
        async for conn in listener:
            await serve_perf_connection(conn)

    task = asyncio.ensure_future(serve())
    try:
        client_tls = quic.TLSConfig(alpn=[PERF_ALPN], verify=False)
        conn = await quic.dial_addr(f"127.0.0.1:{listener.local_addr[1]}", client_tls, config)
        async with conn:
            await perf_request(conn, 200_000, upload=50_000)
    finally:
        listener.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    files = sorted(tmp_path.glob("*.sqlog"))
    assert {f.name.rsplit("_", 1)[1] for f in files} == {"client.sqlog", "server.sqlog"}
    for f in files:
        header, events = read_qlog(f)
        assert header["qlog_format"] == "JSON-SEQ"
        names = {e["name"] for e in events}
        assert {"transport:packet_sent", "transport:packet_received", "recovery:metrics_updated"} <= names
        assert "security:key_updated" in names or "security:key_discarded" in names
        times = [e["time"] for e in events]
        assert times == sorted(times)
        frames = [fr["frame_type"] for e in events for fr in e["data"].get("frames", [])]
        assert "stream" in frames and "ack" in frames and "crypto" in frames


@settings(max_examples=200, derandomize=True)
@given(st.binary(max_size=300))
def test_read_qlog_random_bytes_only_raise_value_error(data: bytes) -> None:
    try:
        header, events = read_qlog(b"\x1e" + data)
    except ValueError:
        return
    assert "qlog_format" in header
    assert all(isinstance(e, dict) for e in events)
