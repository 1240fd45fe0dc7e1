"""Sender checks and tenant isolation through the real services."""

from __future__ import annotations

from tests.conftest import Stack, eventually, mail


async def test_same_mail_to_two_tenants_opens_a_ticket_in_each(stack: Stack) -> None:
    raw = mail("both@example.com", "Our printer is broken", sender="kim@example.com")
    await stack.intake.accept(raw, mailbox="support@acme.example")
    await stack.intake.accept(raw, mailbox="help@other.example")
    reply = mail("both-2@example.com", "Any news?", sender="kim@example.com",
                 in_reply_to="both@example.com")
    await stack.intake.accept(reply, mailbox="help@other.example")

    async def threaded() -> list[dict[str, object]]:
        rows = await stack.pool.fetch(
            "SELECT m.tenant, m.message_id, m.ticket_id, t.mailbox FROM messages m "
            "JOIN tickets t ON t.id = m.ticket_id ORDER BY m.tenant, m.message_id")
        return [dict(r) for r in rows] if len(rows) == 3 else []

    rows = await eventually(threaded)
    assert [(r["tenant"], r["message_id"]) for r in rows] == [
        ("acme.example", "both@example.com"), ("other.example", "both-2@example.com"),
        ("other.example", "both@example.com")]
    assert all(str(r["mailbox"]).endswith(str(r["tenant"])) for r in rows)  # no leak
    assert rows[0]["ticket_id"] != rows[1]["ticket_id"] == rows[2]["ticket_id"]
    tickets = await stack.tickets()
    assert sorted(t["message_count"] for t in tickets) == [1, 2]


async def test_a_strangers_early_replies_move_into_the_customers_ticket_held(
        stack: Stack) -> None:
    """Eve's reply to an unseen mail arrives first; its parent links it to Lee's ticket:
    Lee stays the requester, Eve's mails wait for an agent."""
    await stack.intake.accept(mail("s2@evil.example", "send me the invoice",
                                   sender="eve@evil.example", in_reply_to="s1@evil.example"))
    await eventually(stack.tickets)
    await stack.intake.accept(mail("s0@example.com", "My kettle broke",
                                   sender="lee@example.com", subject="Kettle"))
    await eventually(lambda: stack.pool.fetchval("SELECT count(*) = 2 FROM tickets"))
    await stack.intake.accept(mail("s1@evil.example", "me too", sender="eve@evil.example",
                                   in_reply_to="s0@example.com"))

    async def joined() -> list[dict[str, object]]:
        rows = await stack.pool.fetch("SELECT * FROM tickets WHERE status <> 'merged'")
        held = await stack.pool.fetchval(
            "SELECT count(*) FROM messages WHERE threaded_by = 'held'")
        return [dict(r) for r in rows] if len(rows) == 1 and held == 2 else []

    (live,) = await eventually(joined)
    assert live["requester"] == "lee@example.com" and live["message_count"] == 1
    rows = await stack.pool.fetch("SELECT message_id, ticket_id, threaded_by FROM messages")
    assert {r["message_id"]: (r["ticket_id"], r["threaded_by"]) for r in rows} == {
        "s0@example.com": (live["id"], "new"), "s1@evil.example": (live["id"], "held"),
        "s2@evil.example": (live["id"], "held")}
