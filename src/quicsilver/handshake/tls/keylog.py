"""SSLKEYLOGFILE output: the NSS key log format with the TLS 1.3 labels (also used by QUIC).

Each line is ``<LABEL> <client_random hex> <secret hex>``; Wireshark reads the file to decrypt
captured QUIC packets. Labels: CLIENT_EARLY_TRAFFIC_SECRET, CLIENT_HANDSHAKE_TRAFFIC_SECRET,
SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0, EXPORTER_SECRET.
"""

from __future__ import annotations

import os
from typing import IO

__all__ = ["KeyLog"]


class KeyLog:
    """Appends key log lines to a path or to a text stream (flushed per line).

    A path is opened in append mode for each line and closed again: key logging is a debugging aid,
    and this way no file handle outlives the config and concurrent writers interleave whole lines.
    """

    __slots__ = ("_path", "_stream")

    def __init__(self, target: str | os.PathLike[str] | IO[str]) -> None:
        self._stream: IO[str] | None = None
        self._path: str | None = None
        if isinstance(target, str | os.PathLike):
            self._path = os.fspath(target)
        else:
            self._stream = target

    def write(self, label: str, client_random: bytes, secret: bytes) -> None:
        line = f"{label} {client_random.hex()} {secret.hex()}\n"
        if self._stream is not None:
            self._stream.write(line)
            self._stream.flush()
        else:
            assert self._path is not None
            with open(self._path, "a", encoding="ascii") as f:
                f.write(line)
