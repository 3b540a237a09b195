"""The ``quicsilver`` command line (also ``python -m quicsilver``).

Subcommands:

``demo`` (the default)   a server and a client on loopback, one transfer, a summary (handshake time,
                         throughput, RTT, loss, QUIC version, cipher suite, key exchange group);
``server``               serves a directory over hq-interop (HTTP/0.9), the perf protocol and echo;
``client URL...``        downloads over hq-interop (``https://host:port/path``), with resumption and
                         0-RTT from a ticket file;
``perf ADDR``            a perf-protocol client printing MB/s, handshake time and RTT.

``SSLKEYLOGFILE`` and ``QLOGDIR`` are honoured (``--keylog`` / ``--qlog-dir`` override them).
Every failure the user can cause or meet (a bad flag or address, a missing certificate, nobody
answering, a failed handshake) prints one line on stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn
from urllib.parse import urlsplit

from . import __version__
from .config import Config
from .errors import HandshakeTimeoutError, QuicError, StreamError, TransportError
from .protocol import SUPPORTED_VERSIONS, VERSION_1, VERSION_2

__all__ = ["CliError", "main", "parse_size"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
_CIPHERS = {"aes128": 0x1301, "aes256": 0x1302, "chacha20": 0x1303}
_VERSIONS = {"v1": VERSION_1, "1": VERSION_1, "v2": VERSION_2, "2": VERSION_2}
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_SIZE_UNITS.update({"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "b": 1})


class CliError(Exception):
    """A failure to report as one line (``quicsilver: <message>``) with a non-zero exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line instead of argparse's usage block."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (try --help)\n")


def parse_size(text: str) -> int:
    """A byte count: ``1000``, ``10MB`` / ``10M`` (10^6), ``1MiB`` (2^20), ``1.5GB``."""
    raw = text.strip().lower().replace("_", "")
    number = raw.rstrip("kmgib")
    unit = raw[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1000, 10MB, 4MiB)") from None
    if unit not in _SIZE_UNITS or value < 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1000, 10MB, 4MiB)")
    return int(value * _SIZE_UNITS[unit])


def _quic_versions(text: str) -> tuple[int, ...]:
    try:
        versions = tuple(_VERSIONS[v.strip().lower()] for v in text.split(",") if v.strip())
    except KeyError:
        raise argparse.ArgumentTypeError(f"unknown QUIC version in {text!r} (use v1, v2)") from None
    if not versions:
        raise argparse.ArgumentTypeError("no QUIC version given")
    return versions


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--qlog-dir", help="write one qlog (JSON-SEQ) file per connection here (default: $QLOGDIR)"
    )
    parser.add_argument(
        "--keylog", help="append TLS secrets in SSLKEYLOGFILE format (default: $SSLKEYLOGFILE)"
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")


def _add_client_tls(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify the server's certificate"
    )
    parser.add_argument("--cafile", help="PEM file of trusted certificates (default: the system's)")
    parser.add_argument("--server-name", help="name for SNI and certificate checks (default: the URL's host)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the handshake (10)")
    parser.add_argument("--quic-versions", type=_quic_versions, help="QUIC versions in order, e.g. v2,v1")
    parser.add_argument(
        "--cipher", action="append", choices=sorted(_CIPHERS), help="TLS cipher suite to offer (repeatable)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="quicsilver", description="quicsilver: QUIC (RFC 9000/9001/9002) for asyncio")
    parser.add_argument(
        "--version", action="store_true", help="print the version and QUIC versions, then exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser("demo", help="server + client on loopback, one transfer, a summary (default)")
    demo.add_argument("--size", type=parse_size, default=10_000_000, help="bytes to download (10MB)")
    demo.add_argument("--upload", type=parse_size, default=0, help="bytes to upload afterwards (0)")
    _add_common(demo)

    server = sub.add_parser("server", help="serve a directory (hq-interop), perf and echo")
    server.add_argument("-l", "--listen", default=":4433", help="address to listen on (default :4433)")
    server.add_argument("-d", "--root", default=".", help="directory served over hq-interop (default .)")
    server.add_argument("--cert", help="PEM certificate chain (default: a fresh self-signed certificate)")
    server.add_argument("--key", help="PEM private key (default: read from --cert)")
    server.add_argument("--retry", action="store_true", help="validate every client address with a Retry")
    server.add_argument("--0rtt", dest="zero_rtt", action="store_true", help="accept 0-RTT data")
    server.add_argument("--quic-versions", type=_quic_versions, help="QUIC versions accepted, e.g. v1,v2")
    server.add_argument(
        "--preferred-address",
        metavar="HOST:PORT",
        help="also bind HOST:PORT (literal IP; [v6]:port) and offer it as preferred address (RFC 9000 §9.6)",
    )
    _add_common(server)

    client = sub.add_parser("client", help="download URLs over hq-interop (HTTP/0.9)")
    client.add_argument("urls", nargs="+", metavar="URL", help="https://host:port/path")
    client.add_argument("-o", "--output", default=".", help="directory for the downloaded files (default .)")
    client.add_argument(
        "--ticket-file", default="quicsilver-tickets.json", help="session tickets for --resume"
    )
    client.add_argument(
        "--resume", action="store_true", help="resume with a ticket from --ticket-file, save new ones"
    )
    client.add_argument(
        "--0rtt", dest="zero_rtt", action="store_true", help="send the requests as 0-RTT data"
    )
    client.add_argument("--quiet", action="store_true", help="no progress output")
    client.add_argument(
        "--key-update-after",
        type=int,
        metavar="PACKETS",
        help="initiate the first key update after PACKETS (>= 10)",
    )
    _add_client_tls(client)
    _add_common(client)

    perf = sub.add_parser("perf", help="perf-protocol client: throughput, handshake time, RTT")
    perf.add_argument("address", metavar="ADDR", help="host:port of a perf server (e.g. quicsilver server)")
    perf.add_argument("--download", type=parse_size, default=10_000_000, help="bytes to download (10MB)")
    perf.add_argument("--upload", type=parse_size, default=0, help="bytes to upload (0)")
    _add_client_tls(perf)
    _add_common(perf)
    return parser


# ---------------------------------------------------------------------------------------------
# shared plumbing


def _keylog(args: argparse.Namespace) -> str | None:
    return args.keylog or os.environ.get("SSLKEYLOGFILE") or None


def _config(args: argparse.Namespace, **fields: Any) -> Config:
    qlog_dir = args.qlog_dir or os.environ.get("QLOGDIR") or None
    if qlog_dir:
        from .qlog.qlog import qlog_tracer_factory

        try:
            fields["tracer"] = qlog_tracer_factory(qlog_dir)
        except OSError as exc:
            raise CliError(f"cannot use qlog directory {qlog_dir}: {exc.strerror or exc}") from None
    versions = getattr(args, "quic_versions", None)
    if versions:
        fields["versions"] = versions
    return Config(**fields).validated()


def _client_tls(args: argparse.Namespace, alpn: str, **extra: Any) -> Any:
    from .handshake.tls import TLSConfig

    options: dict[str, Any] = {"alpn": [alpn], "verify": not args.insecure, "keylog_file": _keylog(args)}
    if args.cafile:
        options["cafile"] = args.cafile
    if args.server_name:
        options["server_name"] = args.server_name
    if args.cipher:
        options["cipher_suites"] = [_CIPHERS[c] for c in args.cipher]
    return TLSConfig(**options, **extra)


def _split_address(text: str, *, for_dial: bool = True) -> tuple[str, int]:
    from .transport import parse_address

    try:
        return parse_address(text, for_dial=for_dial)
    except ValueError as exc:
        raise CliError(f"bad address {text!r}: {exc}", EXIT_USAGE) from None


async def _dial(address: str, tls: Any, config: Config, *, early: bool = False) -> Any:
    """Dial with the CLI's error messages (who did not answer, why the handshake failed)."""
    from .client import dial_addr, dial_addr_early

    try:
        if early:
            return await dial_addr_early(address, tls, config)
        return await dial_addr(address, tls, config)
    except HandshakeTimeoutError:
        raise CliError(f"no QUIC server answered at {address} (handshake timed out)") from None
    except ConnectionRefusedError:
        raise CliError(f"connection refused by {address}") from None
    except TransportError as exc:
        raise CliError(f"handshake with {address} failed: {_describe(exc)}") from None
    except QuicError as exc:
        raise CliError(f"connection to {address} failed: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _fmt_ms(seconds: Any) -> str:
    return "n/a" if seconds is None else f"{float(seconds) * 1e3:.2f} ms"


# ---------------------------------------------------------------------------------------------
# commands


async def _cmd_demo(args: argparse.Namespace) -> int:
    from .apps.demo import format_report, run_demo

    report = await run_demo(args.size, args.upload, config=_config(args), keylog_file=_keylog(args))
    print(format_report(report))
    return 0


def _show_address(addr: Any) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in str(addr[0]) else f"{addr[0]}:{addr[1]}"


async def _cmd_server(args: argparse.Namespace) -> int:
    from .apps.server import SERVED_ALPNS, serve_listener
    from .handshake.tls import TLSConfig
    from .listener import listen_addr, listen_addr_early

    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        raise CliError(f"no such directory to serve: {args.root}", EXIT_USAGE)
    if args.key and not args.cert:
        raise CliError("--key needs --cert", EXIT_USAGE)
    for flag, path in (("--cert", args.cert), ("--key", args.key)):
        if path and not os.path.isfile(path):
            raise CliError(f"{flag}: no such file: {path}", EXIT_USAGE)
    keylog = _keylog(args)
    if args.cert:
        tls = TLSConfig(certfile=args.cert, keyfile=args.key, alpn=list(SERVED_ALPNS), keylog_file=keylog)
        origin = args.cert
    else:
        tls = TLSConfig.self_signed(alpn=list(SERVED_ALPNS), keylog_file=keylog)
        origin = "self-signed"
    config = _config(args, allow_0rtt=args.zero_rtt)
    _split_address(args.listen, for_dial=False)
    options: dict[str, Any] = {}
    if args.preferred_address:
        _split_address(args.preferred_address, for_dial=False)
        options["preferred_addr"] = args.preferred_address
    if args.retry:
        options["verify_source_address"] = lambda addr: True
    qlog_dir = args.qlog_dir or os.environ.get("QLOGDIR") or None
    transport_tracer = None
    if qlog_dir:  # packets dropped or answered outside any connection (VN, Retry, refusals)
        from .qlog.qlog import QlogTracer

        transport_tracer = QlogTracer(os.path.join(qlog_dir, f"transport_{os.getpid()}.sqlog"))
        options["tracer"] = transport_tracer
    listen = listen_addr_early if args.zero_rtt else listen_addr
    try:
        listener = await listen(args.listen, tls, config, **options)
    except (OSError, ValueError) as exc:
        where = args.listen + (
            f" (preferred address {args.preferred_address})" if args.preferred_address else ""
        )
        raise CliError(f"cannot listen on {where}: {_describe(exc)}") from None
    shown = _show_address(listener.local_addr)
    preferred = listener.preferred_transport
    if preferred is not None:
        shown += f", preferred address {_show_address(preferred.local_addr)}"
    print(
        f"quicsilver {__version__} serving {root} on {shown} "
        f"(ALPN {', '.join(SERVED_ALPNS)}; certificate: {origin}"
        f"{'; Retry on' if args.retry else ''}{'; 0-RTT on' if args.zero_rtt else ''})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.ensure_future(serve_listener(listener, root))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        listener.close()
        serving.cancel()
        stopper.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if transport_tracer is not None:
            transport_tracer.close()
    return 0


class _Progress:
    """A one-line progress bar on a terminal; nothing until the end otherwise."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        rate = total / max(now - self.started, 1e-9) / 1e6
        sys.stderr.write(f"\r{self.label}: {total / 1e6:10.2f} MB  {rate:8.2f} MB/s")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._last:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _target_name(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name or "index.html"


async def _download(conn: Any, path: str, output: str, quiet: bool) -> tuple[str, int, float]:
    from .apps.hq import hq_get

    target = os.path.join(output, _target_name(path))
    progress = _Progress(path, enabled=not quiet and sys.stderr.isatty())
    started = time.perf_counter()
    try:
        with open(target, "wb") as f:
            total = await hq_get(conn, path, f.write, progress=progress.update)
    except BaseException:
        progress.done()
        os.remove(target)  # no partial file left behind for a failed request
        raise
    progress.done()
    return target, total, time.perf_counter() - started


async def _fetch_authority(
    args: argparse.Namespace, address: str, paths: list[str], tls: Any, config: Config
) -> list[str]:
    """Download ``paths`` from one server over one connection, concurrently. Returns failures."""
    early = args.zero_rtt
    started = time.perf_counter()
    conn = await _dial(address, tls, config, early=early)
    store = tls.session_ticket_store
    tickets_before = len(store) if store is not None else 0  # after the dial took its ticket
    failures: list[str] = []
    try:
        results = await asyncio.gather(
            *(_download(conn, p, args.output, args.quiet) for p in paths), return_exceptions=True
        )
        if early:
            await conn.wait_handshake()
            state = conn.connection_state()
            retry = [p for p, r in zip(paths, results, strict=True) if isinstance(r, QuicError)]
            if retry and not state.used_0rtt:  # 0-RTT rejected: the requests go again in 1-RTT
                again = await asyncio.gather(
                    *(_download(conn, p, args.output, args.quiet) for p in retry), return_exceptions=True
                )
                redo = dict(zip(retry, again, strict=True))
                results = [redo.get(p, r) for p, r in zip(paths, results, strict=True)]
        for path, result in zip(paths, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, StreamError):
                    reason = f"refused by the server (stream reset, code {getattr(result, 'code', '?')})"
                else:
                    reason = _describe(result)
                failures.append(f"{address}{path}: {reason}")
            elif not args.quiet:
                target, total, seconds = result
                print(f"{address}{path} -> {target}: {total:,} bytes in {seconds:.2f} s", flush=True)
        state = conn.connection_state()
        if not args.quiet and (args.resume or args.zero_rtt):
            print(
                f"{address}: session resumed: {'yes' if state.session_resumed else 'no'}, "
                f"0-RTT: {'accepted' if state.used_0rtt else 'not used'} "
                f"({(time.perf_counter() - started) * 1e3:.1f} ms in all)",
                flush=True,
            )
        if store is not None:
            await _wait_for_ticket(store, tickets_before)
    finally:
        conn.close(0, "")
        await conn.wait_closed()
    return failures


async def _wait_for_ticket(store: Any, before: int, timeout: float = 1.0) -> None:
    """Tickets arrive after the handshake (RFC 8446 §4.6.1); give a new one a moment to land."""
    deadline = time.perf_counter() + timeout
    while len(store) <= before and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)


async def _cmd_client(args: argparse.Namespace) -> int:
    from .apps.hq import HQ_ALPN
    from .apps.tickets import FileSessionTicketStore

    targets: dict[str, list[str]] = {}
    for url in args.urls:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in ("https", "quic") or not parts.hostname:
            raise CliError(f"bad URL {url!r}: expected https://host[:port]/path", EXIT_USAGE)
        try:
            port = parts.port or 443
        except ValueError:
            raise CliError(f"bad URL {url!r}: invalid port", EXIT_USAGE) from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        targets.setdefault(f"{host}:{port}", []).append(path)
    os.makedirs(args.output, exist_ok=True)
    if args.cafile and not os.path.isfile(args.cafile):
        raise CliError(f"--cafile: no such file: {args.cafile}", EXIT_USAGE)
    store = FileSessionTicketStore(args.ticket_file) if (args.resume or args.zero_rtt) else None
    tls = _client_tls(args, HQ_ALPN, session_ticket_store=store)
    extra: dict[str, Any] = {}
    if args.key_update_after is not None:
        extra["first_key_update_interval"] = args.key_update_after
    config = _config(args, handshake_idle_timeout=max(0.5, args.timeout / 2), **extra)
    failures: list[str] = []
    for address, paths in targets.items():
        failures += await _fetch_authority(args, address, paths, tls, config)
    for failure in failures:
        print(f"quicsilver: {failure}", file=sys.stderr)
    return EXIT_FAILURE if failures else 0


async def _cmd_perf(args: argparse.Namespace) -> int:
    from .apps.demo import connection_facts
    from .apps.perf import PERF_ALPN, perf_request

    _split_address(args.address)
    tls = _client_tls(args, PERF_ALPN)
    config = _config(args, handshake_idle_timeout=max(0.5, args.timeout / 2))
    importlib.import_module("quicsilver.core.connection")  # loaded with the first dial: not timed
    started = time.perf_counter()
    conn = await _dial(args.address, tls, config)
    handshake = time.perf_counter() - started
    try:
        result = await perf_request(conn, args.download, args.upload)
        facts = connection_facts(conn)
    except QuicError as exc:
        raise CliError(f"perf request failed: {_describe(exc)}") from None
    finally:
        conn.close(0, "")
        await conn.wait_closed()
    print(f"handshake   {handshake * 1e3:.1f} ms ({facts['version'] or 'QUIC'})")
    if result.downloaded:
        print(f"download    {result.downloaded / 1e6:.1f} MB")
    if result.uploaded:
        print(f"upload      {result.uploaded / 1e6:.1f} MB")
    print(f"throughput  {result.mbps:.1f} MB/s ({result.seconds:.2f} s)")
    print(f"RTT         {_fmt_ms(facts['smoothed_rtt'])} smoothed, {_fmt_ms(facts['min_rtt'])} min")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "demo": _cmd_demo,
    "server": _cmd_server,
    "client": _cmd_client,
    "perf": _cmd_perf,
}


def _run(args: argparse.Namespace) -> int:
    command = _COMMANDS[args.command]
    if getattr(args, "uvloop", False):
        try:
            import uvloop
        except ImportError:
            raise CliError("--uvloop: uvloop is not installed (pip install uvloop)", EXIT_USAGE) from None
        return int(uvloop.run(command(args)))
    return asyncio.run(command(args))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"quicsilver {__version__} (Python {sys.version.split()[0]})")
        print("QUIC versions: " + ", ".join(f"{v:#010x}" for v in SUPPORTED_VERSIONS))
        return 0
    if args.command is None:
        args = parser.parse_args(["demo"])
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"quicsilver: {exc}", file=sys.stderr)
        return exc.status
    except socket.gaierror as exc:
        print(f"quicsilver: cannot resolve address: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (QuicError, OSError, ValueError) as exc:
        print(f"quicsilver: {_describe(exc)}", file=sys.stderr)
        return EXIT_FAILURE
