"""``quicsilver demo``: a server and a client on loopback, one transfer, a readable summary.

The server gets a fresh self-signed ECDSA P-256 certificate and the client verifies it properly
(trusting exactly that certificate, for the name "localhost"), so the demo exercises the real
TLS 1.3 handshake. The transfer is the perf protocol (:mod:`quicsilver.apps.perf`): a download
of ``size`` bytes, then an upload of ``upload`` bytes, on one connection.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..client import dial_addr
from ..config import Config
from ..handshake.tls import TLSConfig
from ..listener import listen_addr
from ..protocol import VERSION_1, VERSION_2
from .perf import PERF_ALPN, PerfResult, perf_request
from .server import SERVED_ALPNS, serve_listener

__all__ = ["DemoReport", "connection_facts", "format_report", "run_demo"]

_VERSION_NAMES = {VERSION_1: "QUIC v1 (RFC 9000)", VERSION_2: "QUIC v2 (RFC 9369)"}
_SUITE_NAMES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}
_GROUP_NAMES = {0x0017: "secp256r1", 0x0018: "secp384r1", 0x001D: "x25519", 0x11EC: "X25519MLKEM768"}


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What the demo measured and what the handshake negotiated (None: not reported by the stack)."""

    address: str
    handshake_seconds: float
    download: PerfResult | None
    upload: PerfResult | None
    facts: dict[str, Any]


def _lookup(names: dict[int, str], value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    name = getattr(value, "name", None)
    if isinstance(name, str) and int(value) not in names:
        return name
    return names.get(int(value), f"{int(value):#06x}")


def connection_facts(conn: Any) -> dict[str, Any]:
    """Version, ALPN, cipher suite, key exchange group, RTT and loss of a connection, as far as the
    connection reports them (``connection_state()`` and ``stats()``); missing facts are None."""
    state = conn.connection_state()
    stats = conn.stats()
    stats = (
        stats
        if isinstance(stats, dict)
        else {k: getattr(stats, k) for k in dir(stats) if not k.startswith("_")}
    )
    extra = getattr(state, "extra", None) or {}

    def pick(*names: str) -> Any:
        for name in names:
            for source in (extra, stats):
                if source.get(name) is not None:
                    return source[name]
            value = getattr(state, name, None)
            if value is not None:
                return value
        return None

    version = state.version if state.version is not None else stats.get("version")
    sent = pick("packets_sent", "datagrams_sent")
    lost = pick("packets_lost", "lost_packets")
    return {
        "version": _VERSION_NAMES.get(version, f"{version:#010x}") if version is not None else None,
        "alpn": state.alpn,
        "cipher_suite": _lookup(_SUITE_NAMES, pick("cipher_suite", "cipher", "suite")),
        "group": _lookup(_GROUP_NAMES, pick("group", "key_exchange_group", "named_group")),
        "smoothed_rtt": pick("smoothed_rtt"),
        "min_rtt": pick("min_rtt"),
        "packets_sent": sent,
        "packets_lost": lost,
        "session_resumed": state.session_resumed,
        "used_0rtt": state.used_0rtt,
    }


async def run_demo(
    size: int = 10_000_000,
    upload: int = 0,
    *,
    config: Config | None = None,
    keylog_file: str | None = None,
) -> DemoReport:
    """Serve on 127.0.0.1 (ephemeral port), connect, download ``size`` and upload ``upload`` bytes."""
    server_tls = TLSConfig.self_signed(alpn=list(SERVED_ALPNS), hosts=("localhost", "127.0.0.1"))
    client_tls = TLSConfig(
        alpn=[PERF_ALPN], cadata=server_tls.certificate_pem, server_name="localhost", keylog_file=keylog_file
    )
    config = config or Config()
    # The protocol core is imported with the first connection; do it now so that the handshake
    # time measures the handshake, not Python importing modules.
    importlib.import_module("quicsilver.core.connection")
    listener = await listen_addr("127.0.0.1:0", server_tls, config)
    serving = asyncio.ensure_future(serve_listener(listener, "."))
    try:
        host, port = listener.local_addr[0], listener.local_addr[1]
        started = time.perf_counter()
        conn = await dial_addr(f"{host}:{port}", client_tls, config)
        handshake = time.perf_counter() - started
        try:
            down = await perf_request(conn, size, 0) if size else None
            up = await perf_request(conn, 0, upload) if upload else None
            facts = connection_facts(conn)
        finally:
            conn.close(0, "demo done")
            await conn.wait_closed()
    finally:
        listener.close()
        serving.cancel()
    return DemoReport(f"{host}:{port}", handshake, down, up, facts)


def _ms(seconds: Any) -> str:
    return "n/a" if seconds is None else f"{float(seconds) * 1e3:.2f} ms"


def format_report(report: DemoReport) -> str:
    """The summary the ``demo`` command prints."""
    f = report.facts
    lines = [f"quicsilver {__version__} demo: server and client on {report.address} (loopback)"]
    lines.append(
        f"  handshake     {report.handshake_seconds * 1e3:.1f} ms (full TLS 1.3 handshake, ECDSA P-256)"
    )
    transfers = (
        ("download", report.download, report.download.downloaded if report.download else 0),
        ("upload", report.upload, report.upload.uploaded if report.upload else 0),
    )
    for label, result, moved in transfers:
        if result is not None:
            rate = f"{moved / 1e6:.1f} MB in {result.seconds:.2f} s = {result.mbps:.1f} MB/s"
            lines.append(f"  {label:<13} {rate}")
    lines.append(f"  RTT           {_ms(f['smoothed_rtt'])} smoothed, {_ms(f['min_rtt'])} min")
    sent, lost = f["packets_sent"], f["packets_lost"]
    if sent and lost is not None:
        lines.append(f"  loss          {lost} of {sent:,} packets ({100.0 * lost / sent:.2f} %)")
    elif sent:
        lines.append(f"  loss          n/a (not reported by this build; {sent:,} packets sent)")
    else:
        lines.append("  loss          n/a")
    lines.append(f"  version       {f['version'] or 'n/a'}, ALPN {f['alpn'] or 'n/a'}")
    lines.append(f"  cipher        {f['cipher_suite'] or 'n/a (not reported by this build)'}")
    lines.append(f"  key exchange  {f['group'] or 'n/a (not reported by this build)'}")
    return "\n".join(lines)
