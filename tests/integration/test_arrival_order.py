"""Conversations survive any arrival order: real threads shuffled through the real services
(two threading instances on one durable consumer) give the same partition as the gold."""

from __future__ import annotations

import asyncio
import json
import mailbox
import random
import re
from pathlib import Path

import pytest

from tests.conftest import Stack, eventually, mail
from tidydesk.common.runtime import consume
from tidydesk.threading.app import build

DATA = Path(__file__).resolve().parents[1] / "data" / "threading"
SUPPORT = "support@brightdesk.example"


def dialogues(conversations: int) -> list[tuple[str, str, bytes]]:
    """(conversation, message id, raw) of the first conversations of dialogues.mbox."""
    gold = {}
    for line in (DATA / "dialogues.mbox.threads.jsonl").read_text().splitlines():
        row = json.loads(line)
        gold[row["message_id"].strip("<>")] = row["conversation"]
    keep = sorted(set(gold.values()))[:conversations]
    box = mailbox.mbox(str(DATA / "dialogues.mbox"), create=False)
    try:
        out = []
        for raw in box.itervalues():
            mid = str(raw["Message-ID"]).strip().strip("<>")
            if gold[mid] in keep:
                out.append((gold[mid], mid, raw.as_bytes()))
        return out
    finally:
        box.close()


def in_reply_to_only(raw: bytes) -> bytes:
    """The same mail without References: only the parent is named."""
    return re.sub(rb"\nReferences:.*(\n[ \t].*)*", b"", raw, count=1)


async def partition(stack: Stack, mids: list[str]) -> dict[str, str] | None:
    rows = await stack.pool.fetch("SELECT message_id, ticket_id FROM messages "
                                  "WHERE message_id = ANY($1)", mids)
    found = {r["message_id"]: r["ticket_id"] for r in rows if r["ticket_id"]}
    return found if len(found) == len(mids) else None


def groups(owner: dict[str, str], by: dict[str, str]) -> set[frozenset[str]]:
    out: dict[str, set[str]] = {}
    for mid, key in by.items():
        out.setdefault(owner[mid] if owner else key, set()).add(mid)
    return {frozenset(g) for g in out.values()}


@pytest.mark.parametrize("variant", ["in-reply-to-only", "references"])
async def test_shuffled_dialogues_thread_like_the_gold(stack: Stack, variant: str) -> None:
    second = await build(stack.settings, stack.js)  # another instance, its own cache
    extra = asyncio.create_task(consume(stack.js, stack.ns, "threading", second.handle))
    try:
        mails = dialogues(20)  # ~300 messages
        random.Random(variant).shuffle(mails)
        for _, _, raw in mails:
            await stack.intake.accept(in_reply_to_only(raw) if variant != "references" else raw,
                                      mailbox=SUPPORT)
        gold = {mid: conv for conv, mid, _ in mails}
        owner = await eventually(lambda: partition(stack, list(gold)), within=90)

        async def settled() -> bool:  # every move reached the projection
            counts = await stack.pool.fetch(
                "SELECT t.id, t.message_count, count(m.*) FILTER (WHERE m.threaded_by <> "
                "'held') AS n FROM tickets t LEFT JOIN messages m ON m.ticket_id = t.id "
                "GROUP BY t.id")
            return all(r["message_count"] == r["n"] for r in counts)

        await eventually(settled, within=30)
        owner = await partition(stack, list(gold)) or {}
        assert groups(owner, gold) == groups({}, gold)
        live = await stack.pool.fetchval("SELECT count(*) FROM tickets WHERE status <> 'merged'")
        assert live == 20
    finally:
        extra.cancel()
        await asyncio.wait([extra], timeout=10)


async def test_in_reply_to_only_pairs_in_reverse(stack: Stack) -> None:
    """The reply first, then its parent: one ticket per pair, the reply moved into it."""
    def turn(c: int, n: int) -> bytes:
        return mail(f"p{c}-{n}@example.com", f"turn {n}", sender=f"u{c}@example.com",
                    subject=f"Case {c}", in_reply_to=f"p{c}-{n - 1}@example.com" if n else None)

    for n in (2, 0, 1):  # the middle one links the reply to the root
        for c in range(10):
            await stack.intake.accept(turn(c, n))

    async def pairs() -> bool:
        rows = await stack.pool.fetch("SELECT count(*) AS n, count(DISTINCT ticket_id) AS t "
                                      "FROM messages GROUP BY split_part(message_id, '-', 1)")
        return len(rows) == 10 and all(r["n"] == 3 and r["t"] == 1 for r in rows)

    await eventually(pairs, within=30)
    await eventually(lambda: stack.pool.fetchval(
        "SELECT count(*) = 10 FROM tickets WHERE status <> 'merged' AND message_count = 3"))
    events = await stack.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'tidydesk.conversation.adopted'")
    assert events >= 10
