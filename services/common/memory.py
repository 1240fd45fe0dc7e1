"""In-memory adapters of the EventStore, Index and RawMailStore ports (offline runs, tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from tidydesk.common.events import Envelope, Event, envelope
from tidydesk.common.store import Conflict, Decides
from tidydesk.tickets.ticket import Ticket, fold


class InMemoryEventStore(Decides):
    """Same contract as JetStreamEventStore: per-ticket expected sequence, idempotent ids."""

    def __init__(self) -> None:
        self.seq = 0
        self.tickets: dict[str, list[tuple[int, Envelope]]] = {}

    async def load(self, ticket_id: str) -> Ticket:
        return fold(ticket_id, self.tickets.get(ticket_id, []))

    async def append(self, ticket_id: str, items: Sequence[tuple[Event, str]], expected: int
                     ) -> int:
        history = self.tickets.setdefault(ticket_id, [])
        for event, key in items:
            env = envelope(event, subject=ticket_id, key=key)
            last = history[-1][0] if history else 0
            if last != expected:
                if history and history[-1][1].id == env.id:
                    expected = last  # a retry of what already landed
                    continue
                raise Conflict(ticket_id)
            self.seq += 1
            history.append((self.seq, env))
            expected = self.seq
        return expected


class InMemoryIndex:
    """Same contract as KvIndex."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.number = 0

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def put(self, key: str, value: str) -> None:
        self.values[key] = value

    async def claim(self, key: str, value: str) -> str:
        return self.values.setdefault(key, value)

    async def update(self, key: str, change: Callable[[str | None], str]) -> str:
        self.values[key] = value = change(self.values.get(key))
        return value

    async def next_number(self, ticket_id: str) -> int:
        self.number += 1
        return self.number


class InMemoryRawStore:
    """Same contract as JetStreamRawStore."""

    def __init__(self) -> None:
        self.mails: dict[str, bytes] = {}

    async def put(self, raw: bytes) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        self.mails.setdefault(digest, raw)
        return digest

    async def get(self, digest: str) -> bytes | None:
        return self.mails.get(digest)
