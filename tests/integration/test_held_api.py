"""Held messages an agent can act on: list, accept, move (to a ticket or a new one)."""

from __future__ import annotations

import aiohttp

from tests.conftest import Stack, eventually, mail
from tests.integration.test_replay import snapshot
from tidydesk.queue.auth import TokenStore
from tidydesk.queue.projection import rebuild

T = "SELECT id, number, status, requester, message_count FROM tickets ORDER BY number"


async def _held_on(stack: Stack, message_id: str) -> str:
    """The ticket where `message_id` is held, once it is."""
    async def held() -> str:
        row = await stack.pool.fetchrow(
            "SELECT ticket_id FROM messages WHERE message_id = $1 AND threaded_by = 'held'",
            message_id)
        return str(row["ticket_id"]) if row else ""

    return await eventually(held)


async def _home(stack: Stack, message_id: str) -> tuple[str, str] | None:
    row = await stack.pool.fetchrow(
        "SELECT ticket_id, threaded_by FROM messages WHERE message_id = $1", message_id)
    return (str(row["ticket_id"]), str(row["threaded_by"])) if row and row["ticket_id"] else None


async def test_an_accepted_held_message_joins_and_its_sender_becomes_a_participant(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    await stack.intake.accept(mail("h0@example.com", "My kettle broke", sender="lee@example.com",
                                   subject="Kettle"))
    await stack.intake.accept(mail("h1@example.com", "I am Lee's colleague, same here",
                                   sender="sam@example.com", in_reply_to="h0@example.com"))
    ticket = await _held_on(stack, "h1@example.com")
    async with aiohttp.ClientSession(headers=api_headers) as http:
        async with http.get(f"{api}/tickets/{ticket}/held") as r:
            (held,) = (await r.json())["held"]
        assert held["message_id"] == "h1@example.com" and held["sender"] == "sam@example.com"
        assert held["method"] == "in-reply-to" and "sam@example.com" in held["reason"]
        async with http.post(f"{api}/tickets/{ticket}/solve", json={}) as r:
            assert r.status == 202
        await eventually(lambda: stack.pool.fetchval(
            "SELECT status = 'solved' FROM tickets WHERE id = $1", ticket))
        async with http.post(f"{api}/tickets/{ticket}/held/nope@example.com/accept",
                             json={}) as r:
            assert r.status == 404
        async with http.post(f"{api}/tickets/{ticket}/held/h1@example.com/accept",
                             json={"agent": "kim"}) as r:
            assert r.status == 202 and (await r.json())["changed"] is True
        async with http.post(f"{api}/tickets/{ticket}/held/h1@example.com/accept",
                             json={"agent": "kim"}) as r:  # a retry changes nothing
            assert r.status == 202 and (await r.json())["changed"] is False
        async with http.get(f"{api}/tickets/{ticket}/held") as r:
            assert (await r.json())["held"] == []

    async def joined() -> bool:  # threaded, counted, and the policy ruled on it (reopen)
        row = await stack.pool.fetchrow(
            "SELECT t.status, t.message_count, m.threaded_by, m.decision FROM tickets t "
            "JOIN messages m ON m.ticket_id = t.id WHERE m.message_id = 'h1@example.com'")
        return row is not None and tuple(row) == ("open", 2, "in-reply-to", "reopen")

    await eventually(joined)
    assert "sam@example.com" in (await stack.store.load(ticket)).customers()
    # Sam is a participant now: the next reply joins without a hold
    await stack.intake.accept(mail("h2@example.com", "still broken", sender="sam@example.com",
                                   in_reply_to="h1@example.com"))
    assert await eventually(lambda: _home(stack, "h2@example.com")) == (ticket, "in-reply-to")


async def test_a_held_message_moves_into_another_ticket_or_a_new_one(
        stack: Stack, api: str, api_headers: dict[str, str], database_url: str,
        ns: str) -> None:
    await stack.intake.accept(mail("v0@example.com", "Invoice wrong", sender="lee@example.com",
                                   subject="Invoice"))
    await stack.intake.accept(mail("w0@example.com", "Where is my parcel?",
                                   sender="eve@example.com", subject="Parcel"))
    await eventually(lambda: stack.pool.fetchval("SELECT count(*) = 2 FROM tickets"))
    (lee, eve) = [dict(r) for r in await stack.pool.fetch(T)]
    for mid in ("v1@example.com", "v2@example.com"):  # Eve answers into Lee's ticket
        await stack.intake.accept(mail(mid, "parcel?", sender="eve@example.com",
                                       in_reply_to="v0@example.com"))
        assert await _held_on(stack, mid) == lee["id"]
    async with aiohttp.ClientSession(headers=api_headers) as http:
        move = f"{api}/tickets/{lee['id']}/held"
        async with http.post(f"{move}/v1@example.com/move", json={}) as r:
            assert r.status == 400  # neither into nor new
        async with http.post(f"{move}/v1@example.com/move",
                             json={"into": str(lee["number"])}) as r:
            assert r.status == 409  # it is held there already
        async with http.post(f"{move}/v1@example.com/move", json={"into": eve["id"]}) as r:
            assert r.status == 202 and (await r.json())["ticket"] == eve["id"]
        async with http.post(f"{move}/v2@example.com/move", json={"new": True}) as r:
            assert r.status == 202
            new = (await r.json())["ticket"]
        assert new not in (lee["id"], eve["id"])
        async with http.get(f"{api}/tickets/{lee['id']}/held") as r:
            assert (await r.json())["held"] == []

    async def moved() -> bool:
        rows = {r["id"]: (r["status"], r["requester"], r["message_count"])
                for r in await stack.pool.fetch(T)}
        return (rows == {lee["id"]: ("open", "lee@example.com", 1),
                         eve["id"]: ("open", "eve@example.com", 2),
                         new: ("open", "eve@example.com", 1)}
                and await _home(stack, "v1@example.com") == (eve["id"], "moved")
                and await _home(stack, "v2@example.com") == (new, "new"))

    await eventually(moved)
    # a reply to the moved message follows it, not the ticket it was held on
    await stack.intake.accept(mail("v3@example.com", "thanks", sender="eve@example.com",
                                   in_reply_to="v1@example.com"))
    assert (await eventually(lambda: _home(stack, "v3@example.com")))[0] == eve["id"]
    # the moves are events: a projection rebuilt from the stream is the live one
    last = (await stack.js.stream_info(f"{ns.upper()}_EVENTS")).state.last_seq
    await eventually(lambda: stack.pool.fetchval(
        "SELECT seq >= $1 FROM checkpoints WHERE name = 'queue'", last))
    live = await snapshot(stack.pool)
    await rebuild(stack.js, database_url, ns)
    assert await snapshot(stack.pool) == live


async def test_another_tenants_token_cannot_see_or_act_on_held_messages(
        stack: Stack, api: str) -> None:
    await stack.intake.accept(mail("x0@example.com", "Help", sender="lee@example.com"))
    await stack.intake.accept(mail("x1@example.com", "me too", sender="eve@example.com",
                                   in_reply_to="x0@example.com"))
    ticket = await _held_on(stack, "x1@example.com")
    tokens = TokenStore(stack.js, stack.ns)
    other, _ = await tokens.create(("read", "write"), tenant="other.example", name="other")
    own, _ = await tokens.create(("read", "write"), tenant="acme.example", name="own")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {other}"}) as http:
        async with http.get(f"{api}/tickets/{ticket}/held") as r:
            assert r.status == 404
        for action, body in (("accept", {}), ("move", {"new": True})):
            async with http.post(f"{api}/tickets/{ticket}/held/x1@example.com/{action}",
                                 json=body) as r:
                assert r.status == 404
    async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {own}"}) as http,
                http.get(f"{api}/tickets/{ticket}/held") as r):
        assert r.status == 200 and len((await r.json())["held"]) == 1
    assert "x1@example.com" in (await stack.store.load(ticket)).held


async def test_accepting_a_message_held_on_a_merged_ticket_joins_the_live_one(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    await stack.intake.accept(mail("y0@example.com", "Help", sender="lee@example.com",
                                   subject="One"))
    await stack.intake.accept(mail("z0@example.com", "Help too", sender="kai@example.com",
                                   subject="Two"))
    await eventually(lambda: stack.pool.fetchval("SELECT count(*) = 2 FROM tickets"))
    for mid in ("y1@example.com", "y2@example.com"):
        await stack.intake.accept(mail(mid, "me too", sender="eve@example.com",
                                       in_reply_to="y0@example.com"))
        source = await _held_on(stack, mid)
    (target,) = [str(r["id"]) for r in await stack.pool.fetch(T) if r["id"] != source]
    async with aiohttp.ClientSession(headers=api_headers) as http:
        async with http.post(f"{api}/tickets/{source}/merge", json={"into": target}) as r:
            assert r.status == 202
        async with http.get(f"{api}/tickets/{target}/held") as r:  # the merged one's too
            assert [(h["message_id"], h["ticket"]) for h in (await r.json())["held"]] == [
                ("y1@example.com", source), ("y2@example.com", source)]
        async with http.post(f"{api}/tickets/{source}/held/y1@example.com/accept",
                             json={}) as r:
            assert r.status == 202 and (await r.json())["ticket"] == target
        async with http.post(f"{api}/tickets/{target}/held/y2@example.com/accept",
                             json={}) as r:
            assert r.status == 202 and (await r.json())["ticket"] == target
        async with http.get(f"{api}/tickets/{target}/held") as r:
            assert (await r.json())["held"] == []

    async def joined() -> bool:
        count = await stack.pool.fetchval("SELECT message_count FROM tickets WHERE id = $1",
                                          target)
        return count == 4 and await _home(stack, "y1@example.com") == (target, "moved") \
            and await _home(stack, "y2@example.com") == (target, "moved")

    await eventually(joined)
    assert (await stack.store.load(source)).held == {}
