"""A session ticket store kept in a file, so resumption and 0-RTT work across client runs.

TLS 1.3 tickets (RFC 8446 §4.6.1) and the server transport parameters remembered with them for
0-RTT (RFC 9000 §7.4.1) are saved as JSON. A ticket's age must survive the process: the file keeps
each ticket's age at the time it was saved plus the wall-clock time of saving, and rebuilds the
monotonic receipt time on load. Tickets are single-use (RFC 8446 §C.4): ``pop`` removes the one it
returns. A missing, unreadable or malformed file is treated as empty (the connection then just does
a full handshake), never as an error.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..handshake.protection import CipherSuite
from ..handshake.tls import SessionTicket

__all__ = ["FileSessionTicketStore"]

_PER_SERVER = 4


class FileSessionTicketStore:
    """A ``TLSConfig.session_ticket_store`` persisted in ``path`` (JSON)."""

    def __init__(self, path: str | os.PathLike[str], clock: Any = time.monotonic) -> None:
        self.path = os.fspath(path)
        self._clock = clock

    def _load(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return []
        if not isinstance(data, dict) or not isinstance(data.get("tickets"), list):
            return []
        return [t for t in data["tickets"] if isinstance(t, dict)]

    def _save(self, entries: list[dict[str, Any]]) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"tickets": entries}, f)
        os.replace(tmp, self.path)

    def put(self, server_name: str, ticket: SessionTicket) -> None:
        entries = self._load()
        entry = {
            "server_name": server_name,
            "saved_at": time.time(),
            "age_at_save": max(0.0, self._clock() - ticket.received_at),
            "ticket": ticket.ticket.hex(),
            "resumption_secret": ticket.resumption_secret.hex(),
            "suite": int(ticket.suite),
            "alpn": ticket.alpn,
            "ticket_server_name": ticket.server_name,
            "age_add": ticket.age_add,
            "lifetime": ticket.lifetime,
            "max_early_data": ticket.max_early_data,
            "transport_parameters": ticket.transport_parameters.hex(),
        }
        mine = [e for e in entries if e.get("server_name") == server_name][-(_PER_SERVER - 1) :]
        others = [e for e in entries if e.get("server_name") != server_name]
        self._save([*others, *mine, entry])

    def pop(self, server_name: str, now: float) -> SessionTicket | None:
        entries = self._load()
        found: SessionTicket | None = None
        kept: list[dict[str, Any]] = []
        for entry in reversed(entries):  # newest first
            if entry.get("server_name") != server_name:
                kept.append(entry)
                continue
            if found is not None:
                kept.append(entry)
                continue
            ticket = _decode(entry, now)
            if ticket is not None and not ticket.is_expired(now):
                found = ticket  # taken: single use
            # expired or unreadable tickets are dropped as well
        if len(kept) != len(entries):
            self._save(list(reversed(kept)))
        return found

    def __len__(self) -> int:
        return len(self._load())


def _decode(entry: dict[str, Any], now: float) -> SessionTicket | None:
    try:
        age = float(entry["age_at_save"]) + max(0.0, time.time() - float(entry["saved_at"]))
        return SessionTicket(
            ticket=bytes.fromhex(entry["ticket"]),
            resumption_secret=bytes.fromhex(entry["resumption_secret"]),
            suite=CipherSuite(int(entry["suite"])),
            alpn=str(entry["alpn"]),
            server_name=entry.get("ticket_server_name"),
            age_add=int(entry["age_add"]),
            lifetime=int(entry["lifetime"]),
            max_early_data=int(entry["max_early_data"]),
            received_at=now - age,
            transport_parameters=bytes.fromhex(entry["transport_parameters"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
