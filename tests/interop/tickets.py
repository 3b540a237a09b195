"""A session ticket store for aioquic-API peers (aioquic and qh3): their servers call ``add`` from
``session_ticket_handler`` and ``pop`` from ``session_ticket_fetcher`` with the ticket's label."""

from __future__ import annotations

from typing import Any


class PeerTicketStore:
    def __init__(self) -> None:
        self.tickets: dict[bytes, Any] = {}

    def add(self, ticket: Any) -> None:
        self.tickets[ticket.ticket] = ticket

    def pop(self, label: bytes) -> Any | None:
        return self.tickets.pop(label, None)
