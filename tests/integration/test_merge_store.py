"""Merges decided on the event store (no loops under concurrency), and unmerge."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import Stack, eventually, mail
from tests.integration.test_replay import replay_cli, snapshot
from tidydesk.common.store import KvIndex
from tidydesk.threading.engine import Threader
from tidydesk.tickets.ticket import Ticket


async def _open(stack: Stack, count: int, prefix: str) -> list[dict[str, object]]:
    """`count` tickets from different customers, each with one mail `<prefix><i>@example.com`."""
    for i in range(count):
        await stack.intake.accept(mail(f"{prefix}{i}@example.com", f"Question {i}",
                                       subject=f"Topic {prefix}{i}",
                                       sender=f"{prefix}{i}@example.com"))

    async def all_open() -> list[dict[str, object]]:
        rows = await stack.tickets()
        return rows if len(rows) == count else []

    rows = await eventually(all_open, within=30)
    return sorted(rows, key=lambda r: str(r["requester"]))


async def _merge(http: aiohttp.ClientSession, api: str, source: object, into: object) -> int:
    async with http.post(f"{api}/tickets/{source}/merge", json={"into": str(into)}) as r:
        body = await r.json(content_type=None)
        assert r.status in (202, 409), body
        return r.status


async def _live(stack: Stack, ticket_id: str) -> tuple[Ticket, list[str]]:
    """The unmerged end of a ticket's merge chain in the event store, and the chain."""
    ticket, path = await stack.store.load(ticket_id), [ticket_id]
    while ticket.merged_into is not None:
        assert ticket.merged_into not in path, f"merge loop {path} -> {ticket.merged_into}"
        path.append(ticket.merged_into)
        ticket = await stack.store.load(ticket.merged_into)
    return ticket, path


async def test_opposite_merges_at_once_merge_one_way_only(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    rows = await _open(stack, 20, "pair")
    pairs = [(rows[i]["id"], rows[i + 1]["id"]) for i in range(0, 20, 2)]
    async with aiohttp.ClientSession(headers=api_headers) as http:
        statuses = await asyncio.gather(*(
            _merge(http, api, x, y) for a, b in pairs for x, y in ((a, b), (b, a))))
    assert statuses.count(202) == 10 and statuses.count(409) == 10, statuses
    survivors = {}
    for a, b in pairs:
        ta, tb = await stack.store.load(str(a)), await stack.store.load(str(b))
        assert sorted((ta.status, tb.status)) == ["merged", "open"], (ta.status, tb.status)
        loser, survivor = (ta, tb) if ta.merged_into else (tb, ta)
        assert loser.merged_into == survivor.ticket_id and survivor.merged_into is None
        survivors[loser.ticket_id] = survivor.ticket_id

    async def projected() -> bool:
        tickets = {str(r["id"]): r for r in await stack.tickets()}
        homes = await stack.pool.fetch("SELECT ticket_id FROM messages")
        return (all(tickets[s]["status"] == "open" and tickets[s]["message_count"] == 2
                    and tickets[m]["status"] == "merged" for m, s in survivors.items())
                and {r["ticket_id"] for r in homes} == set(survivors.values()))

    await eventually(projected)
    # a customer's new mail to the merged ticket lands in the surviving one
    loser = next(iter(survivors))
    requester = str((await stack.store.load(loser)).requester)
    first = requester  # the customer's first mail has their address as its Message-ID
    await stack.intake.accept(mail("pair-more@example.com", "any news?", sender=requester,
                                   in_reply_to=first))

    async def followed() -> bool:
        home = await stack.pool.fetchval(
            "SELECT ticket_id FROM messages WHERE message_id = 'pair-more@example.com'")
        count = await stack.pool.fetchval("SELECT message_count FROM tickets WHERE id = $1",
                                          survivors[loser])
        return bool(home == survivors[loser] and count == 3)

    await eventually(followed)


async def test_three_way_merges_at_once_never_close_a_cycle(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    rows = await _open(stack, 15, "tri")
    triples = [[rows[i + k]["id"] for k in range(3)] for i in range(0, 15, 3)]
    async with aiohttp.ClientSession(headers=api_headers) as http:
        statuses = await asyncio.gather(*(
            _merge(http, api, t[k], t[(k + 1) % 3]) for t in triples for k in range(3)))
    assert 202 in statuses and 409 in statuses
    for triple in triples:
        ends = {(await _live(stack, str(t)))[0].ticket_id for t in triple}
        assert len(ends) == 1, ends  # every chain ends, all in one unmerged ticket
        unmerged = [(await stack.store.load(str(t))).merged_into is None for t in triple]
        assert unmerged.count(True) == 1

    async def projected() -> bool:
        tickets = {str(r["id"]): r for r in await stack.tickets()}
        for triple in triples:
            (end,) = {(await _live(stack, str(t)))[0].ticket_id for t in triple}
            homes = await stack.pool.fetch(
                "SELECT ticket_id FROM messages WHERE sender = ANY($1::text[])",
                [str(tickets[str(t)]["requester"]) for t in triple])
            if {r["ticket_id"] for r in homes} != {end} or tickets[end]["message_count"] != 3:
                return False
        return True

    await eventually(projected)


async def test_a_threading_move_and_an_agents_opposite_merge_at_once_never_loop(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    rows = await _open(stack, 20, "mv")
    pairs = [(str(rows[i]["id"]), str(rows[i + 1]["id"])) for i in range(0, 20, 2)]
    threader = Threader(stack.store, KvIndex(stack.js, stack.ns))
    async with aiohttp.ClientSession(headers=api_headers) as http:
        await asyncio.gather(*(step for a, b in pairs for step in (
            threader.move(a, b, "a reply linked them"), _merge(http, api, b, a))))
    for a, b in pairs:
        (end_a, _), (end_b, _) = await _live(stack, a), await _live(stack, b)
        assert end_a.ticket_id == end_b.ticket_id  # one conversation, no loop


async def test_a_merge_into_a_merged_ticket_is_a_conflict(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    a, b, c = (r["id"] for r in await _open(stack, 3, "chain"))
    async with aiohttp.ClientSession(headers=api_headers) as http:
        assert await _merge(http, api, a, b) == 202
        assert await _merge(http, api, a, b) == 202  # again: nothing changes
        async with http.post(f"{api}/tickets/{b}/merge", json={"into": str(a)}) as r:
            problem = await r.json(content_type=None)
            assert r.status == 409 and "loop" in problem["detail"], problem
        async with http.post(f"{api}/tickets/{c}/merge", json={"into": str(a)}) as r:
            assert r.status == 409
        async with http.post(f"{api}/tickets/{a}/merge", json={"into": str(c)}) as r:
            assert r.status == 409 and "unmerge" in (await r.json(content_type=None))["detail"]
    assert (await stack.store.load(str(c))).merged_into is None


async def test_unmerge_gives_the_ticket_back_its_messages_and_status_and_replays(
        stack: Stack, api: str, api_headers: dict[str, str], nats_url: str,
        database_url: str, ns: str) -> None:
    a, b = (str(r["id"]) for r in await _open(stack, 2, "un"))
    await stack.intake.accept(mail("un0-re@example.com", "more", sender="un0@example.com",
                                   in_reply_to="un0@example.com"))
    counts = "SELECT id, status, message_count FROM tickets ORDER BY id"

    async def state(expected: dict[str, tuple[str, int]]) -> bool:
        return {r["id"]: (r["status"], r["message_count"])
                for r in await stack.pool.fetch(counts)} == expected

    await eventually(lambda: state({a: ("open", 2), b: ("open", 1)}))
    async with aiohttp.ClientSession(headers=api_headers) as http:
        async with http.post(f"{api}/tickets/{a}/solve", json={}) as r:
            assert r.status == 202
        assert await _merge(http, api, a, b) == 202
        await eventually(lambda: state({a: ("merged", 0), b: ("open", 3)}))
        async with http.post(f"{api}/tickets/{a}/unmerge", json={"agent": "kim"},
                             headers={"If-Match": '"1"'}) as r:
            assert r.status == 412
        async with http.post(f"{api}/tickets/{a}/unmerge", json={"agent": "kim"}) as r:
            body = await r.json()
            assert r.status == 202 and body == {"id": a, "status": "solved", "changed": True}
        async with http.post(f"{api}/tickets/{a}/unmerge", json={}) as r:
            assert r.status == 202 and (await r.json())["changed"] is False
    await eventually(lambda: state({a: ("solved", 2), b: ("open", 1)}))
    rows = await stack.pool.fetch("SELECT message_id, ticket_id FROM messages")
    assert {r["message_id"]: r["ticket_id"] for r in rows} == {
        "un0@example.com": a, "un0-re@example.com": a, "un1@example.com": b}
    ticket = await stack.store.load(a)
    assert ticket.status == "solved" and ticket.merged_into is None
    # mail for it goes to it again, not to the ticket it was merged into
    await stack.intake.accept(mail("un0-re2@example.com", "and more", sender="un0@example.com",
                                   in_reply_to="un0-re@example.com"))
    await eventually(lambda: stack.pool.fetchval(
        "SELECT ticket_id = $1 FROM messages WHERE message_id = 'un0-re2@example.com'", a))
    await eventually(lambda: stack.pool.fetchval(
        "SELECT message_count = 3 AND status = 'open' FROM tickets WHERE id = $1", a))
    # (always-reopen: the reply reopened it, the last event this test makes)
    last = (await stack.js.stream_info(f"{ns.upper()}_EVENTS")).state.last_seq
    await eventually(lambda: stack.pool.fetchval(
        "SELECT seq >= $1 FROM checkpoints WHERE name = 'queue'", last))
    live = await snapshot(stack.pool)
    code, _, err = await replay_cli(nats_url, database_url, ns)
    assert code == 0, err
    rebuilt = await snapshot(stack.pool)
    for table in live:
        assert set(rebuilt[table]) ^ set(live[table]) == set(), table


async def test_tidydesk_merge_and_unmerge_commands(
        stack: Stack, api: str, api_headers: dict[str, str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tidydesk import cli

    a, b = (str(r["number"]) for r in await _open(stack, 2, "cli"))
    monkeypatch.setenv("TIDYDESK_HTTP_PORT", api.rpartition(":")[2])
    monkeypatch.setenv("TIDYDESK_API_TOKEN", api_headers["Authorization"].split()[1])
    assert await asyncio.to_thread(cli.main, ["merge", a, b, "--agent", "kim"]) == 0
    assert await asyncio.to_thread(cli.main, ["merge", b, a]) == 1  # a loop: 409
    assert await asyncio.to_thread(cli.main, ["unmerge", a, "--agent", "kim"]) == 0
    out = capsys.readouterr()
    assert "'status': 'open', 'changed': True" in out.out and "loop" in out.err
    statuses = [(await stack.store.load(str(r["id"]))).status for r in await stack.tickets()]
    assert statuses == ["open", "open"]
