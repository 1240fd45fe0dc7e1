"""The forged-sender suite (bench.forged) on the real stack: nothing forged joins a
stranger's ticket; Authentication-Results count only from the trusted relay."""

from __future__ import annotations

from bench import forged
from tests.conftest import Stack, eventually, mail
from tidydesk.common.events import MessageReceived
from tidydesk.ingest.intake import Intake


async def test_no_forged_sender_is_threaded_into_the_victims_ticket(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    intake = Intake(stack.store, stack.intake.raw, trusted_authserv=forged.RELAY)
    token = api_headers["Authorization"].removeprefix("Bearer ")
    rows = await forged.run(intake, stack.pool, api, token)
    forged.print_table(rows)
    assert [r for r in rows if r.into_strangers_ticket] == []
    assert [r.outcome for r in rows] == [
        "held", "held", "new ticket", "new ticket", "new ticket", "held", "held", "threaded"]
    assert rows[-1].attempt.startswith("control")  # the requester's own reply still joins


async def test_authentication_results_count_only_from_the_trusted_relay(stack: Stack) -> None:
    intake = Intake(stack.store, stack.intake.raw, trusted_authserv=" MX.acme.example ,")
    await intake.accept(mail("a0@example.com", "Kettle broke", sender="lee@example.com"))
    await eventually(stack.tickets)
    fail = "Authentication-Results: {}; dmarc=fail header.from=example.com\r\n"
    cases = {  # Lee's address each time; only the trusted relay's verdict is evidence
        "a1@example.com": fail.format("evil.example"),  # a header anyone can write
        "a2@example.com": fail.format("mx.acme.example"),  # the relay: a forged From
        "a3@example.com": "Authentication-Results: mx.acme.example; dkim=pass "
                          "header.d=example.com\r\n" + fail.format("mx.acme.example"),
    }
    auth = {}
    for mid, header in cases.items():
        event, _ = await intake.accept(mail(mid, "more", sender="lee@example.com",
                                            in_reply_to="a0@example.com", extra=header))
        assert isinstance(event, MessageReceived)
        auth[mid] = event.sender_auth

    assert auth == {"a1@example.com": None, "a2@example.com": "fail",
                    "a3@example.com": "pass"}  # the topmost header counts, not a later one

    async def placed() -> dict[str, str]:
        rows = await stack.pool.fetch("SELECT message_id, threaded_by FROM messages "
                                      "WHERE message_id LIKE 'a_@example.com'")
        found = {r["message_id"]: r["threaded_by"] for r in rows}
        return found if None not in found.values() and len(found) == 4 else {}

    assert await eventually(placed) == {"a0@example.com": "new", "a1@example.com": "in-reply-to",
                                        "a2@example.com": "held", "a3@example.com": "in-reply-to"}
    (ticket,) = await stack.tickets()
    held = (await stack.store.load(str(ticket["id"]))).held["a2@example.com"]
    assert "dmarc=fail" in held.reason
