"""HTTP/0.9 over QUIC, ALPN ``hq-interop``: the QUIC interop runner's file transfer protocol.

One request per client-initiated bidirectional stream: the client sends ``GET /path\\r\\n`` and ends
its side (FIN); the server answers with the file's bytes and FIN, or resets the stream when the
request is malformed (:data:`HQ_ERROR_BAD_REQUEST`) or names no file under the served root
(:data:`HQ_ERROR_NOT_FOUND`). There are no headers and no status line.

Requests are untrusted input: at most :data:`MAX_REQUEST_SIZE` bytes are read, the path must be
absolute, printable ASCII after percent-decoding, and may not leave the root directory (``..``
segments and symbolic links pointing outside are refused).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote

from ..errors import QuicError

if TYPE_CHECKING:
    from ..api_connection import Connection
    from ..stream import Stream

__all__ = [
    "HQ_ALPN",
    "HQ_ERROR_BAD_REQUEST",
    "HQ_ERROR_NOT_FOUND",
    "MAX_REQUEST_SIZE",
    "HqRequestError",
    "encode_request",
    "hq_get",
    "parse_request",
    "resolve_path",
    "serve_hq_connection",
    "serve_hq_stream",
]

HQ_ALPN = "hq-interop"
HQ_ERROR_BAD_REQUEST = 0x1
HQ_ERROR_NOT_FOUND = 0x2
MAX_REQUEST_SIZE = 8192
_CHUNK = 64 * 1024


class HqRequestError(ValueError):
    """A request that is not ``GET /path`` (carries the stream error code to reset with)."""

    def __init__(self, message: str, code: int = HQ_ERROR_BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code


def encode_request(path: str) -> bytes:
    """``GET <path>\\r\\n`` for an absolute path (ValueError otherwise)."""
    if not path.startswith("/") or any(c in path for c in "\r\n "):
        raise ValueError(f"not an absolute request path: {path!r}")
    return b"GET " + path.encode("ascii") + b"\r\n"


def parse_request(data: bytes) -> str:
    """The decoded path of an HTTP/0.9 request line; HqRequestError if malformed."""
    if len(data) > MAX_REQUEST_SIZE:
        raise HqRequestError("request too long")
    line = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    if not line.startswith(b"GET "):
        raise HqRequestError("only GET requests are served")
    raw = line[4:].strip(b" ")
    if not raw.startswith(b"/") or b" " in raw:
        raise HqRequestError("the request target must be an absolute path")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise HqRequestError("the request target is not ASCII") from None
    path = unquote(text.split("?", 1)[0].split("#", 1)[0], errors="strict")
    if any(not c.isprintable() for c in path) or "\x00" in path:
        raise HqRequestError("the request target has control characters")
    return path


def resolve_path(root: str, path: str) -> str:
    """The file under ``root`` that ``path`` names; HqRequestError(NOT_FOUND) if there is none.

    Refuses traversal: a ``..`` segment, and any path whose real location (symbolic links
    resolved) is outside the real ``root``.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or any("\\" in p for p in parts):
        raise HqRequestError(f"path escapes the served directory: {path}", HQ_ERROR_NOT_FOUND)
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, candidate]) != real_root:
        raise HqRequestError(f"path escapes the served directory: {path}", HQ_ERROR_NOT_FOUND)
    if not os.path.isfile(candidate):
        raise HqRequestError(f"no such file: {path}", HQ_ERROR_NOT_FOUND)
    return candidate


async def _read_request(stream: Stream) -> bytes:
    data = bytearray()
    while chunk := await stream.read(MAX_REQUEST_SIZE + 1 - len(data)):
        data += chunk
        if len(data) > MAX_REQUEST_SIZE:
            raise HqRequestError("request too long")
    return bytes(data)


async def serve_hq_stream(stream: Stream, root: str) -> int:
    """Answer one request from ``root``; returns the bytes sent (0 when the stream was reset)."""
    try:
        path = parse_request(await _read_request(stream))
        filename = resolve_path(root, path)
        handle: BinaryIO = open(filename, "rb")  # noqa: SIM115 - closed below, across awaits
    except HqRequestError as exc:
        stream.cancel_write(exc.code)
        return 0
    except OSError:
        stream.cancel_write(HQ_ERROR_NOT_FOUND)
        return 0
    sent = 0
    with handle:
        while chunk := handle.read(_CHUNK):
            await stream.write(chunk)
            sent += len(chunk)
    await stream.close()
    return sent


async def serve_hq_connection(conn: Connection, root: str) -> None:
    """Serve every request stream of ``conn`` from ``root`` until the connection ends."""
    tasks: set[asyncio.Task[int]] = set()

    async def one(stream: Stream) -> int:
        try:
            return await serve_hq_stream(stream, root)
        except QuicError:
            return 0

    try:
        while True:
            stream = await conn.accept_stream()
            task = asyncio.ensure_future(one(stream))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except QuicError:
        pass
    finally:
        for task in tasks:
            task.cancel()


async def hq_get(
    conn: Connection,
    path: str,
    sink: Callable[[bytes], object],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Fetch ``path`` and hand each chunk to ``sink``; returns the byte count.

    ``progress`` is called with the running total after each chunk. Raises StreamError when the
    server resets the stream (e.g. HQ_ERROR_NOT_FOUND), the connection's error if it ends.
    """
    stream = await conn.open_stream_sync()
    await stream.write(encode_request(path))
    await stream.close()
    total = 0
    while chunk := await stream.read(_CHUNK):
        sink(chunk)
        total += len(chunk)
        if progress is not None:
            progress(total)
    return total
