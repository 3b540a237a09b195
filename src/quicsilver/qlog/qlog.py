"""qlog output: the tracer hooks written as JSON-SEQ files, one per connection.

Serialization: the qlog main schema's "JSON-SEQ" format (draft-ietf-quic-qlog-main-schema §11.2,
``qlog_version`` "0.3", file suffix ``.sqlog``) on RFC 7464 JSON text sequences: every record is
RS (0x1E), one JSON text, LF. The first record is the qlog file header with a single trace (its
vantage point and ``common_fields``: ODCID, ``reference_time`` in ms since the epoch,
``time_format`` "relative"); every later record is one event ``{"time", "name", "data"}`` with
``time`` in milliseconds since the trace started.

Event names and fields follow draft-ietf-quic-qlog-quic-events: ``transport:packet_sent`` /
``packet_received`` / ``packet_dropped`` / ``parameters_set`` / ``version_information``,
``recovery:metrics_updated`` / ``packet_lost`` / ``congestion_state_updated`` /
``loss_timer_updated``, ``security:key_updated`` / ``key_discarded``,
``connectivity:connection_started`` / ``connection_state_updated`` / ``connection_closed`` /
``mtu_updated``. Files load in qvis.

Writes are buffered (flushed every 64 KiB, when the connection closes, and at interpreter exit), so
tracing costs one ``json.dumps`` per event and no system call per packet. With no tracer configured
nothing here runs at all.

Use :func:`qlog_tracer_factory` as ``Config.tracer`` (``QLOGDIR`` when no directory is given),
:class:`QlogTracer` as a Transport's tracer, and :func:`read_qlog` to load a file back.
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import json
import os
import time
import weakref
from collections.abc import Callable, Iterable
from typing import IO, Any

from .tracer import ConnectionTracer, Tracer

__all__ = [
    "QLOG_VERSION",
    "RECORD_SEPARATOR",
    "JsonSeqWriter",
    "QlogConnectionTracer",
    "QlogTracer",
    "frame_to_qlog",
    "qlog_dir_from_env",
    "qlog_tracer_factory",
    "read_qlog",
]

QLOG_VERSION = "0.3"
RECORD_SEPARATOR = b"\x1e"  # RFC 7464 §2: each JSON text is preceded by RS ...
_LINE_FEED = b"\n"  # ... and followed by LF
_FLUSH_AT = 64 * 1024

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Packet type names as the core passes them (PacketType / space names), mapped to qlog's.
_PACKET_TYPES = {
    "initial": "initial",
    "handshake": "handshake",
    "zero_rtt": "0RTT",
    "0rtt": "0RTT",
    "one_rtt": "1RTT",
    "1rtt": "1RTT",
    "application": "1RTT",
    "retry": "retry",
    "version_negotiation": "version_negotiation",
    "stateless_reset": "stateless_reset",
    "long": "unknown",
    "short": "1RTT",
}

# Encryption levels / packet number spaces to the qlog key type infix and space name.
_LEVELS = {
    "initial": "initial",
    "handshake": "handshake",
    "zero_rtt": "0rtt",
    "0rtt": "0rtt",
    "one_rtt": "1rtt",
    "1rtt": "1rtt",
    "application": "1rtt",
    "application_data": "1rtt",
}
_SPACES = {
    "initial": "initial",
    "handshake": "handshake",
    "1rtt": "application_data",
    "0rtt": "application_data",
}


def _name(value: Any) -> str:
    """The lower-case name of an enum member or the string form of anything else."""
    if isinstance(value, enum.Enum):
        return value.name.lower()
    return str(value).lower()


def packet_type_name(value: Any) -> str:
    """qlog's ``packet_type`` for whatever the core calls a packet type."""
    return _PACKET_TYPES.get(_name(value), "unknown")


def _level_name(value: Any) -> str:
    return _LEVELS.get(_name(value), _name(value))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


# ---------------------------------------------------------------------------------------------
# frames


def _stream_type(bidi: bool) -> str:
    return "bidirectional" if bidi else "unidirectional"


def _ack(f: Any) -> dict[str, Any]:
    # The wire keeps ranges descending; qlog lists them ascending as [smallest, largest].
    out: dict[str, Any] = {
        "frame_type": "ack",
        "ack_delay": f.delay,  # the raw encoded field: the exponent is the sender's
        "acked_ranges": [[lo, hi] if lo != hi else [lo] for lo, hi in reversed(f.ranges)],
    }
    if f.ecn is not None:
        out["ect0"], out["ect1"], out["ce"] = f.ecn
    return out


def _close(f: Any) -> dict[str, Any]:
    reason = f.reason
    out: dict[str, Any] = {
        "frame_type": "connection_close",
        "error_space": "application" if f.is_application else "transport",
        "error_code": f.error_code,
        "raw_error_code": f.error_code,
        "reason": reason.decode("utf-8", "replace") if isinstance(reason, bytes | bytearray) else str(reason),
    }
    if f.frame_type is not None:
        out["trigger_frame_type"] = f.frame_type
    return out


_FRAMES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "PaddingFrame": lambda f: {"frame_type": "padding", "payload_length": getattr(f, "size", 0)},
    "PingFrame": lambda f: {"frame_type": "ping"},
    "AckFrame": _ack,
    "ResetStreamFrame": lambda f: {
        "frame_type": "reset_stream",
        "stream_id": f.stream_id,
        "error_code": f.error_code,
        "final_size": f.final_size,
    },
    "StopSendingFrame": lambda f: {
        "frame_type": "stop_sending",
        "stream_id": f.stream_id,
        "error_code": f.error_code,
    },
    "CryptoFrame": lambda f: {"frame_type": "crypto", "offset": f.offset, "length": len(f.data)},
    "NewTokenFrame": lambda f: {"frame_type": "new_token", "token": {"raw": {"length": len(f.token)}}},
    "StreamFrame": lambda f: {
        "frame_type": "stream",
        "stream_id": f.stream_id,
        "offset": f.offset,
        "length": len(f.data),
        "fin": bool(f.fin),
    },
    "MaxDataFrame": lambda f: {"frame_type": "max_data", "maximum": f.maximum},
    "MaxStreamDataFrame": lambda f: {
        "frame_type": "max_stream_data",
        "stream_id": f.stream_id,
        "maximum": f.maximum,
    },
    "MaxStreamsFrame": lambda f: {
        "frame_type": "max_streams",
        "stream_type": _stream_type(f.bidi),
        "maximum": f.maximum,
    },
    "DataBlockedFrame": lambda f: {"frame_type": "data_blocked", "limit": f.limit},
    "StreamDataBlockedFrame": lambda f: {
        "frame_type": "stream_data_blocked",
        "stream_id": f.stream_id,
        "limit": f.limit,
    },
    "StreamsBlockedFrame": lambda f: {
        "frame_type": "streams_blocked",
        "stream_type": _stream_type(f.bidi),
        "limit": f.limit,
    },
    "NewConnectionIdFrame": lambda f: {
        "frame_type": "new_connection_id",
        "sequence_number": f.sequence,
        "retire_prior_to": f.retire_prior_to,
        "connection_id_length": len(f.connection_id),
        "connection_id": bytes(f.connection_id).hex(),
        "stateless_reset_token": bytes(f.reset_token).hex(),
    },
    "RetireConnectionIdFrame": lambda f: {
        "frame_type": "retire_connection_id",
        "sequence_number": f.sequence,
    },
    "PathChallengeFrame": lambda f: {"frame_type": "path_challenge", "data": bytes(f.data).hex()},
    "PathResponseFrame": lambda f: {"frame_type": "path_response", "data": bytes(f.data).hex()},
    "ConnectionCloseFrame": _close,
    "HandshakeDoneFrame": lambda f: {"frame_type": "handshake_done"},
    "DatagramFrame": lambda f: {"frame_type": "datagram", "length": len(f.data)},
}


def frame_to_qlog(frame: Any) -> dict[str, Any]:
    """One frame as a qlog ``QuicFrame`` object; unknown objects become ``{"frame_type": "unknown"}``."""
    convert = _FRAMES.get(type(frame).__name__)
    if convert is None:
        return {"frame_type": "unknown", "description": str(frame)[:200]}
    return convert(frame)


def _frames(frames: Any) -> list[dict[str, Any]] | None:
    if frames is None:
        return None
    if isinstance(frames, str | bytes):
        return [frame_to_qlog(frames)]
    try:
        return [frame_to_qlog(f) for f in frames]
    except TypeError:  # a single frame
        return [frame_to_qlog(frames)]


def _jsonable(value: Any) -> Any:
    """Transport parameters and friends as JSON values (bytes as hex, enums by name)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    as_dict = getattr(value, "as_dict", None)  # TransportParameters, a plain immutable class
    if callable(as_dict):
        return {str(k): _jsonable(v) for k, v in as_dict().items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def _address(addr: Any) -> tuple[str | None, int | None]:
    if isinstance(addr, tuple | list) and len(addr) >= 2:
        return str(addr[0]), int(addr[1])
    return None, None


# ---------------------------------------------------------------------------------------------
# writing


_open_writers: weakref.WeakSet[JsonSeqWriter] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for writer in list(_open_writers):
        writer.close()


class JsonSeqWriter:
    """Buffered RFC 7464 JSON text sequence writer (RS, JSON, LF per record)."""

    __slots__ = ("__weakref__", "_buffer", "_file", "_owns_file")

    def __init__(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        if isinstance(target, str | os.PathLike):
            self._file: IO[bytes] | None = open(target, "wb")  # noqa: SIM115 - closed in close()
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        self._buffer = bytearray()
        _open_writers.add(self)

    @property
    def closed(self) -> bool:
        return self._file is None

    def write(self, record: Any) -> None:
        """Append one JSON text as a record; flushes to the file every 64 KiB."""
        if self._file is None:
            return
        buf = self._buffer
        buf += RECORD_SEPARATOR
        buf += _dumps(record).encode()
        buf += _LINE_FEED
        if len(buf) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._file is None or not self._buffer:
            return
        self._file.write(self._buffer)
        self._file.flush()
        self._buffer.clear()

    def close(self) -> None:
        """Flush and close the file (only if this writer opened it). Idempotent."""
        if self._file is None:
            return
        self.flush()
        if self._owns_file:
            self._file.close()
        self._file = None
        _open_writers.discard(self)


class _Trace:
    """A qlog trace: the header record, then events stamped relative to the start."""

    def __init__(
        self,
        writer: JsonSeqWriter,
        *,
        vantage_point: str,
        title: str,
        common_fields: dict[str, Any],
        clock: Callable[[], float],
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._start = clock()
        writer.write(
            {
                "qlog_version": QLOG_VERSION,
                "qlog_format": "JSON-SEQ",
                "title": title,
                "trace": {
                    "vantage_point": {"name": "quicsilver", "type": vantage_point},
                    "common_fields": {
                        **common_fields,
                        "protocol_type": ["QUIC"],
                        "time_format": "relative",
                        "reference_time": round(time.time() * 1000.0, 3),
                    },
                },
            }
        )

    def event(self, name: str, data: dict[str, Any]) -> None:
        self._writer.write(
            {"time": round((self._clock() - self._start) * 1000.0, 3), "name": name, "data": data}
        )


class QlogConnectionTracer(ConnectionTracer):
    """A :class:`ConnectionTracer` writing one connection's qlog trace.

    ``target`` is a path or a binary file object; ``is_client`` picks the vantage point;
    ``odcid`` (the client's original Destination Connection ID) names the trace. ``clock`` is the
    monotonic time source for event stamps (default ``time.monotonic``, the same clock as
    asyncio's loop, so loss timer deadlines convert to deltas).
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        is_client: bool,
        odcid: bytes = b"",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = JsonSeqWriter(target)
        self._clock = clock
        self._trace = _Trace(
            self._writer,
            vantage_point="client" if is_client else "server",
            title=f"quicsilver {'client' if is_client else 'server'} {odcid.hex()}",
            common_fields={"ODCID": odcid.hex(), "group_id": odcid.hex()},
            clock=clock,
        )
        self._event = self._trace.event
        self._metrics: dict[str, Any] = {}

    # -- connectivity --------------------------------------------------------------------------

    def started_connection(self, local: Any, remote: Any, src_cid: bytes, dest_cid: bytes) -> None:
        src_ip, src_port = _address(local)
        dst_ip, dst_port = _address(remote)
        data: dict[str, Any] = {
            "ip_version": "ipv6" if src_ip is not None and ":" in src_ip else "ipv4",
            "protocol": "QUIC",
            "src_cid": bytes(src_cid).hex(),
            "dst_cid": bytes(dest_cid).hex(),
        }
        for key, value in (
            ("src_ip", src_ip),
            ("src_port", src_port),
            ("dst_ip", dst_ip),
            ("dst_port", dst_port),
        ):
            if value is not None:
                data[key] = value
        self._event("connectivity:connection_started", data)

    def updated_state(self, old: str, new: str) -> None:
        self._event("connectivity:connection_state_updated", {"old": _name(old), "new": _name(new)})

    def updated_mtu(self, mtu: int, done: bool) -> None:
        self._event("connectivity:mtu_updated", {"new": mtu, "done": done})

    def closed_connection(self, error: Exception) -> None:
        remote = bool(getattr(error, "remote", False))
        data: dict[str, Any] = {"owner": "remote" if remote else "local"}
        kind = type(error).__name__
        code = getattr(error, "code", None)
        reason = getattr(error, "reason", None)
        if kind == "IdleTimeoutError":
            data["trigger"] = "idle_timeout"
        elif kind == "HandshakeTimeoutError":
            data["trigger"] = "handshake_timeout"
        elif kind == "StatelessResetError":
            data["trigger"] = "stateless_reset"
        elif kind == "VersionNegotiationError":
            data["trigger"] = "version_mismatch"
        elif kind == "ApplicationError":
            data["trigger"] = "application"
            data["application_code"] = code
        elif code is not None:
            data["trigger"] = "error"
            data["connection_code"] = code
        else:
            data["trigger"] = "unspecified"
        if reason:
            data["reason"] = str(reason)
        self._event("connectivity:connection_closed", data)
        # The trace ends here: the file is closed now rather than when the connection object is
        # collected, so a busy server does not hold one open file per closing connection.
        self._writer.close()

    # -- transport -----------------------------------------------------------------------------

    def negotiated_version(self, chosen: int, client_versions: Any, server_versions: Any) -> None:
        data: dict[str, Any] = {"chosen_version": f"{chosen:08x}"}
        if client_versions:
            data["client_versions"] = [f"{v:08x}" for v in client_versions]
        if server_versions:
            data["server_versions"] = [f"{v:08x}" for v in server_versions]
        self._event("transport:version_information", data)

    def sent_transport_parameters(self, params: Any) -> None:
        self._parameters("local", params)

    def received_transport_parameters(self, params: Any) -> None:
        self._parameters("remote", params)

    def _parameters(self, owner: str, params: Any) -> None:
        data = _jsonable(params)
        if not isinstance(data, dict):
            data = {"raw": data}
        self._event("transport:parameters_set", {"owner": owner, **data})

    def sent_packet(self, packet_type: str, pn: int, size: int, frames: Any) -> None:
        self._packet("transport:packet_sent", packet_type, pn, size, frames)

    def received_packet(self, packet_type: str, pn: int, size: int, frames: Any) -> None:
        self._packet("transport:packet_received", packet_type, pn, size, frames)

    def _packet(self, name: str, packet_type: Any, pn: int | None, size: int, frames: Any) -> None:
        header: dict[str, Any] = {"packet_type": packet_type_name(packet_type)}
        if pn is not None:
            header["packet_number"] = pn
        data: dict[str, Any] = {"header": header, "raw": {"length": size}}
        converted = _frames(frames)
        if converted is not None:
            data["frames"] = converted
        self._event(name, data)

    def dropped_packet(self, packet_type: str, pn: int | None, size: int, reason: str) -> None:
        header: dict[str, Any] = {"packet_type": packet_type_name(packet_type)}
        if pn is not None:
            header["packet_number"] = pn
        self._event(
            "transport:packet_dropped", {"header": header, "raw": {"length": size}, "trigger": str(reason)}
        )

    # -- recovery ------------------------------------------------------------------------------

    def lost_packet(self, packet_type: str, pn: int, trigger: str) -> None:
        self._event(
            "recovery:packet_lost",
            {
                "header": {"packet_type": packet_type_name(packet_type), "packet_number": pn},
                "trigger": str(trigger),
            },
        )

    def updated_metrics(self, rtt: Any, cwnd: int, bytes_in_flight: int, packets_in_flight: int) -> None:
        # qlog: "only the fields that changed SHOULD be logged".
        current = {
            "min_rtt": _ms(getattr(rtt, "min_rtt", None)),
            "smoothed_rtt": _ms(getattr(rtt, "smoothed_rtt", None)),
            "latest_rtt": _ms(getattr(rtt, "latest_rtt", None)),
            "rtt_variance": _ms(getattr(rtt, "rttvar", None)),
            "congestion_window": cwnd,
            "bytes_in_flight": bytes_in_flight,
            "packets_in_flight": packets_in_flight,
        }
        last = self._metrics
        changed = {k: v for k, v in current.items() if v is not None and last.get(k) != v}
        if changed:
            last.update(changed)
            self._event("recovery:metrics_updated", changed)

    def updated_congestion_state(self, state: str) -> None:
        self._event("recovery:congestion_state_updated", {"new": _name(state)})

    def set_loss_timer(self, timer_type: str, level: Any, time: float) -> None:
        self._event(
            "recovery:loss_timer_updated",
            {
                "event_type": "set",
                "timer_type": _name(timer_type),
                "packet_number_space": _SPACES.get(_level_name(level), _level_name(level)),
                "delta": round((time - self._clock()) * 1000.0, 3),
            },
        )

    def loss_timer_expired(self, timer_type: str, level: Any) -> None:
        self._event(
            "recovery:loss_timer_updated",
            {
                "event_type": "expired",
                "timer_type": _name(timer_type),
                "packet_number_space": _SPACES.get(_level_name(level), _level_name(level)),
            },
        )

    # -- security ------------------------------------------------------------------------------

    def updated_key_from_tls(self, level: Any, is_client_key: bool) -> None:
        owner = "client" if is_client_key else "server"
        self._event(
            "security:key_updated", {"key_type": f"{owner}_{_level_name(level)}_secret", "trigger": "tls"}
        )

    def updated_key(self, generation: int, remote: bool) -> None:
        trigger = "remote_update" if remote else "local_update"
        for owner in ("client", "server"):
            self._event(
                "security:key_updated",
                {"key_type": f"{owner}_1rtt_secret", "generation": generation, "trigger": trigger},
            )

    def dropped_encryption_level(self, level: Any) -> None:
        name = _level_name(level)
        for owner in ("client", "server"):
            self._event("security:key_discarded", {"key_type": f"{owner}_{name}_secret", "trigger": "tls"})

    # -- misc ----------------------------------------------------------------------------------

    def debug(self, name: str, msg: str) -> None:
        self._event("loglevel:debug", {"message": f"{name}: {msg}"})

    def close(self) -> None:
        """Flush and close the file. Events after this are ignored."""
        self._writer.close()


class QlogTracer(Tracer):
    """A transport-level :class:`Tracer` (packets outside any connection) as one qlog trace."""

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = JsonSeqWriter(target)
        self._trace = _Trace(
            self._writer, vantage_point="network", title="quicsilver transport", common_fields={}, clock=clock
        )

    def sent_packet(self, addr: Any, header: Any, size: int, frames: Any) -> None:
        data: dict[str, Any] = {"header": {"packet_type": packet_type_name(header)}, "raw": {"length": size}}
        converted = _frames(frames)
        if converted is not None:
            data["frames"] = converted
        ip, port = _address(addr)
        if ip is not None:
            data["dst_ip"], data["dst_port"] = ip, port
        self._trace.event("transport:packet_sent", data)

    def sent_version_negotiation_packet(self, addr: Any, dcid: bytes, scid: bytes, versions: Any) -> None:
        self._trace.event(
            "transport:packet_sent",
            {
                "header": {
                    "packet_type": "version_negotiation",
                    "dcid": bytes(dcid).hex(),
                    "scid": bytes(scid).hex(),
                },
                "supported_versions": [f"{v:08x}" for v in versions],
            },
        )

    def dropped_packet(self, addr: Any, packet_type: str, size: int, reason: str) -> None:
        data: dict[str, Any] = {
            "header": {"packet_type": packet_type_name(packet_type)},
            "raw": {"length": size},
            "trigger": str(reason),
        }
        ip, port = _address(addr)
        if ip is not None:
            data["src_ip"], data["src_port"] = ip, port
        self._trace.event("transport:packet_dropped", data)

    def debug(self, name: str, msg: str) -> None:
        self._trace.event("loglevel:debug", {"message": f"{name}: {msg}"})

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# ---------------------------------------------------------------------------------------------
# wiring and reading


def qlog_dir_from_env() -> str | None:
    """The ``QLOGDIR`` environment variable (the interop runner's convention), or None."""
    value = os.environ.get("QLOGDIR", "").strip()
    return value or None


def qlog_tracer_factory(
    directory: str | os.PathLike[str] | None = None,
) -> Callable[[Any, bytes], ConnectionTracer]:
    """A ``Config.tracer`` callable writing ``<odcid>_<client|server>.sqlog`` files into ``directory``.

    ``directory`` defaults to ``QLOGDIR``; ValueError if neither is set. The directory is created.
    """
    chosen = directory if directory is not None else qlog_dir_from_env()
    if chosen is None:
        raise ValueError("no qlog directory: pass one or set QLOGDIR")
    path = os.fspath(chosen)
    os.makedirs(path, exist_ok=True)

    def make(perspective: Any, odcid: bytes) -> ConnectionTracer:
        is_client = _name(perspective) in ("client", "0")
        role = "client" if is_client else "server"
        name = f"{bytes(odcid).hex() or 'connection'}_{role}.sqlog"
        target = os.path.join(path, name)
        if os.path.exists(target):  # the same ODCID twice (a retried dial): keep both traces
            target = os.path.join(path, f"{bytes(odcid).hex()}_{role}_{time.monotonic_ns()}.sqlog")
        return QlogConnectionTracer(target, is_client=is_client, odcid=bytes(odcid))

    return make


def read_qlog(data: bytes | str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parse a JSON-SEQ qlog (bytes, or a path) into (header, events).

    RFC 7464 §2.4: a record that does not end with LF may have been truncated and is skipped.
    Raises ValueError if the text is not a JSON text sequence, a record is not a JSON object, or
    the first record is not a qlog header.
    """
    if not isinstance(data, bytes):
        with open(data, "rb") as f:
            data = f.read()
    if data and not data.startswith(RECORD_SEPARATOR):
        raise ValueError("not a JSON text sequence: the first byte is not RS (0x1E)")
    records: list[dict[str, Any]] = []
    for chunk in _records(data.split(RECORD_SEPARATOR)[1:]):
        try:
            value = json.loads(chunk)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"record {len(records)} is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError(f"record {len(records)} is not a JSON object")
        records.append(value)
    if not records or "qlog_format" not in records[0]:
        raise ValueError("the first record is not a qlog header")
    return records[0], records[1:]


def _records(chunks: Iterable[bytes]) -> Iterable[bytes]:
    for chunk in chunks:
        if chunk.endswith(_LINE_FEED):
            yield chunk
