"""Issue 13, the write side: business hours and the out-of-hours notice, tag rules,
escalation, the rota, auto-close and kudos, on the real stack.

Real SMTP in (the ingest listener), the services' cores (the `stack` fixture) with the desk
service and notify beside them, the real relay sink out (tests/integration/test_outbound.py).
Configuration goes through the `tidydesk` CLI against the same NATS server.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client

from tests.conftest import Stack, eventually, free_port, mail
from tests.integration.test_outbound import Sink, notify_settings
from tidydesk.common.events import (
    AgentThanked,
    Envelope,
    NoticeSent,
    ReplySent,
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketReopened,
    TicketSolved,
    TicketTagged,
)
from tidydesk.common.runtime import consume
from tidydesk.desk.app import DeskService
from tidydesk.desk.cli import main as desk_cli
from tidydesk.ingest.smtp import serve as serve_smtp
from tidydesk.notify.app import serve as serve_notify

SUPPORT = "support@acme.example"


class Desk:
    """The desk service and notify running beside the stack; mail in by SMTP, out to a sink."""

    def __init__(self, stack: Stack, smtp_port: int, sink: Sink) -> None:
        self.stack, self.smtp_port, self.sink = stack, smtp_port, sink
        self.tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        service = DeskService(self.stack.js, self.stack.settings, sweep_every=0.2)
        self.tasks = [asyncio.create_task(consume(self.stack.js, self.stack.ns, "desk",
                                                  service.handle)),
                      asyncio.create_task(service.sweep_forever())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.wait(self.tasks, timeout=15)

    async def send(self, raw: bytes) -> None:
        def transact() -> None:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as smtp:
                smtp.sendmail("someone@example.com", [SUPPORT], raw)

        await asyncio.to_thread(transact)

    async def events(self, ticket_id: str) -> list[Envelope]:
        history = await self.stack.store.history(self.stack.store.ticket_subject(ticket_id))
        return [env for _, env in history]

    async def of(self, ticket_id: str, kind: type[Any], n: int = 1) -> list[Any]:
        """The ticket's events of `kind`, once there are at least `n`."""
        async def check() -> list[Any]:
            found = [e.data for e in await self.events(ticket_id) if isinstance(e.data, kind)]
            return found if len(found) >= n else []
        return await eventually(check)

    async def ticket(self, number: int) -> dict[str, Any]:
        async def check() -> dict[str, Any]:
            rows = [r for r in await self.stack.tickets() if r["number"] == number]
            return rows[0] if rows else {}
        return await eventually(check)

    async def requested_by(self, requester: str) -> dict[str, Any]:
        async def check() -> dict[str, Any]:
            rows = [r for r in await self.stack.tickets() if r["requester"] == requester]
            return rows[0] if rows else {}
        return await eventually(check)

    def mails(self, to: str) -> list[EmailMessage]:
        out = [message_from_bytes(m, policy=policy.default) for m in self.sink.mails]
        return [m for m in out if m["To"] == to]


def configure(nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """Run `tidydesk …` (the desk commands) against the test's namespace."""
    monkeypatch.setenv("TIDYDESK_NATS_URL", nats_url)
    monkeypatch.setenv("TIDYDESK_NAMESPACE", ns)
    return desk_cli(list(argv))


@pytest.fixture
async def desk(stack: Stack, nc: Client) -> AsyncIterator[Desk]:
    sink = Sink()
    relay, relay_port = await sink.start()
    smtp_port = free_port()
    smtp = await serve_smtp(stack.intake, "127.0.0.1", smtp_port, 1 << 20)
    d = Desk(stack, smtp_port, sink)
    await d.start()
    async with aiohttp.ClientSession() as http:
        notify = asyncio.create_task(serve_notify(nc, stack.js,
                                                  notify_settings(stack.ns, relay_port), http))
        yield d
        notify.cancel()
        await asyncio.gather(notify, return_exceptions=True)
    await d.stop()
    smtp.close()
    relay.close()


async def cli(nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    return await asyncio.to_thread(configure, nats_url, ns, monkeypatch, *argv)


async def test_out_of_hours_notice_once_in_the_customers_language(
        desk: Desk, nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    today = datetime.now(UTC).date().isoformat()
    # bad configuration is refused and changes nothing
    assert await cli(nats_url, ns, monkeypatch, "hours", "set", SUPPORT, "--tz", "Mars/Base",
                     "--weekly", "mon-sun 00:00-24:00") == 2
    assert "unknown time zone 'Mars/Base'" in capsys.readouterr().err
    assert await cli(nats_url, ns, monkeypatch, "hours", "set", SUPPORT, "--tz", "UTC",
                     "--weekly", "mon 09:00-12:00; mon 11:00-13:00") == 2
    assert "overlaps" in capsys.readouterr().err
    shown = await asyncio.to_thread(  # through the top-level `tidydesk` CLI, as operators run it
        subprocess.run, [sys.executable, "-m", "tidydesk.cli", "hours", "show", SUPPORT],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_NAMESPACE": ns})
    assert shown.returncode == 0 and "no business hours" in shown.stdout, shown
    # closed all of today: the team is back tomorrow at 00:00 UTC
    assert await cli(nats_url, ns, monkeypatch, "hours", "set", SUPPORT, "--tz", "UTC",
                     "--weekly", "mon-sun 00:00-24:00", "--holiday", today) == 0
    assert f"{SUPPORT}: UTC" in capsys.readouterr().out

    await desk.send(mail("k1@example.com", "프린터가 고장났어요. 도와주세요.",
                         sender="minji@example.com"))
    row = await desk.ticket(1)
    (notice,) = await desk.of(row["id"], ReplySent)
    assert notice.auto == "out-of-hours" and notice.to == "minji@example.com"
    assert "업무 시간이 아닙니다" in notice.text and "00:00(UTC)" in notice.text

    async def mailed() -> list[EmailMessage]:
        return desk.mails("minji@example.com")
    (out,) = await eventually(mailed)
    assert out["Auto-Submitted"] == "auto-replied"
    assert out["In-Reply-To"] == "<k1@example.com>"
    assert out["Reply-To"] == notice.reply_to and notice.reply_to.startswith("support+t")
    assert out["Message-ID"] == f"<{notice.message_id}>" and "[#1]" in out["Subject"]

    # a second ticket of the same sender within the window gets none; an auto-reply none;
    # another customer (English) gets one in English; a follow-up to ticket 1 none
    await desk.send(mail("k2@example.com", "Another problem", subject="Other thing",
                         sender="minji@example.com"))
    await desk.send(mail("a1@example.com", "I am away until Monday.", subject="Out of office",
                         sender="bot@example.com",
                         extra="Auto-Submitted: auto-replied\r\n"))
    await desk.send(mail("e1@example.com", "My invoice is wrong.", subject="Invoice",
                         sender="bob@example.com"))
    await desk.send(mail("k3@example.com", "추가 정보입니다", sender="minji@example.com",
                         in_reply_to="k1@example.com"))
    english = await desk.requested_by("bob@example.com")
    (en,) = await desk.of(english["id"], ReplySent)
    assert en.text.startswith("Thank you for your message") and en.auto == "out-of-hours"
    # the desk handles events in stream order: minji's second ticket came before bob's
    rows = await desk.stack.tickets()
    assert sorted(str(r["requester"]) for r in rows if r["requester"] != "bot@example.com") == [
        "bob@example.com", "minji@example.com", "minji@example.com"]
    for r in await desk.stack.tickets():
        notices = [e for e in await desk.events(str(r["id"])) if isinstance(e.data, ReplySent)]
        assert len(notices) == (1 if r["id"] in (row["id"], english["id"]) else 0), r
    assert len(desk.mails("minji@example.com")) == 1
    assert not desk.mails("bot@example.com")


async def solve(desk: Desk, ticket_id: str, agent: str = "kim") -> None:
    await desk.stack.store.decide(ticket_id, lambda t: [] if t.status == "solved" else [
        (TicketSolved(ticket_id=ticket_id, agent=agent), f"solved@{t.version}")])


async def test_tag_rules_fire_once_per_tag_with_the_rule_name(
        desk: Desk, nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(nats_url, ns, monkeypatch, "tags", "add-rule", SUPPORT, "empty") == 2
    assert "has no condition" in capsys.readouterr().err
    assert await cli(nats_url, ns, monkeypatch, "tags", "add-rule", SUPPORT, "billing",
                     "--contains", "invoice", "--contains", "청구서") == 0
    assert await cli(nats_url, ns, monkeypatch, "tags", "add-rule", SUPPORT, "korean",
                     "--language", "ko", "--sender", "*@example.com") == 0
    assert await cli(nats_url, ns, monkeypatch, "tags", "add-rule", SUPPORT, "came-back",
                     "--name", "reopens", "--decision", "reopen") == 0
    capsys.readouterr()
    assert await cli(nats_url, ns, monkeypatch, "tags", "list", SUPPORT) == 0
    assert "reopens: tag came-back when decision reopen" in capsys.readouterr().out

    await desk.send(mail("t1@example.com", "The invoice total is wrong."))
    row = await desk.ticket(1)
    (tagged,) = await desk.of(row["id"], TicketTagged)
    assert (tagged.tag, tagged.rule) == ("billing", "billing")
    await desk.send(mail("t2@example.com", "청구서가 또 틀렸어요", in_reply_to="t1@example.com"))
    await desk.of(row["id"], TicketTagged, 2)  # korean now; billing not twice
    await solve(desk, row["id"])
    await desk.send(mail("t3@example.com", "It is broken again.", in_reply_to="t2@example.com"))
    tags = await desk.of(row["id"], TicketTagged, 3)
    assert [(t.tag, t.rule) for t in tags] == [
        ("billing", "billing"), ("korean", "korean"), ("came-back", "reopens")]
    assert await cli(nats_url, ns, monkeypatch, "tags", "remove", SUPPORT, "nope") == 2
    assert await cli(nats_url, ns, monkeypatch, "tags", "remove", SUPPORT, "korean") == 0


async def team(nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    for name in ("lee", "alice", "bob", "carol"):
        assert await cli(nats_url, ns, monkeypatch, "agents", "add", name, "--email",
                         f"{name}@acme.example") == 0
    assert await cli(nats_url, ns, monkeypatch, "teams", "set", "weekend", "--lead", "lee",
                     "--rota", "alice=mon-fri; bob=tue-sat; carol=wed-sun",
                     "--mailbox", SUPPORT, *extra) == 0


async def test_escalation_assigns_the_lead_and_mails_them_the_reason(
        desk: Desk, nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(nats_url, ns, monkeypatch, "teams", "set", "t", "--lead", "ghost",
                     "--rota", "ghost=mon") == 2
    assert "unknown agent 'ghost'" in capsys.readouterr().err
    await team(nats_url, ns, monkeypatch)
    assert await cli(nats_url, ns, monkeypatch, "desk", "set", SUPPORT, "--escalate",
                     "complaint,reopened,vip", "--vip", "*@vip.example") == 0

    await desk.send(mail("c1@example.com", "This is unacceptable, third time now!",
                         subject="Broken again"))
    row = await desk.ticket(1)
    (esc,) = await desk.of(row["id"], TicketEscalated)
    assert (esc.rule, esc.lead) == ("complaint", "lee") and "unacceptable" in esc.reason
    assigned = await desk.of(row["id"], TicketAssigned)
    assert assigned[-1].agent == "lee" and assigned[-1].by == "escalation:complaint"

    async def lead_mail() -> list[EmailMessage]:
        return desk.mails("lee@acme.example")
    (notice,) = await eventually(lead_mail)
    assert notice["Auto-Submitted"] == "auto-generated" and "[#1]" in notice["Subject"]
    assert "unacceptable" in notice.get_content()

    # reopened twice
    await desk.send(mail("r1@example.com", "My order is late.", subject="Order 55",
                         sender="dan@example.com"))
    order = await desk.requested_by("dan@example.com")
    parent = "r1@example.com"
    for i in (2, 3):
        await solve(desk, order["id"])
        await desk.send(mail(f"r{i}@example.com", "Still not here.", subject="Order 55",
                             sender="dan@example.com", in_reply_to=parent))
        parent = f"r{i}@example.com"
        await desk.of(order["id"], TicketReopened, i - 1)
    (esc,) = await desk.of(order["id"], TicketEscalated)
    assert esc.rule == "reopened" and esc.reason == "reopened 2 times"

    # a VIP requester
    await desk.send(mail("v1@vip.example", "Please call me.", subject="Contract",
                         sender="ceo@vip.example"))
    vip = await desk.requested_by("ceo@vip.example")
    (esc,) = await desk.of(vip["id"], TicketEscalated)
    assert esc.rule == "vip" and "ceo@vip.example" in esc.reason
    notices = await desk.of(vip["id"], NoticeSent)
    assert notices[0].to == "lee@acme.example"


async def test_rota_assigns_round_robin_among_agents_on_duty_across_restarts(
        desk: Desk, nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await team(nats_url, ns, monkeypatch)
    from tidydesk.desk.config import Team, parse_rota
    rota = Team(name="weekend", lead="lee",
                rota=parse_rota("alice=mon-fri; bob=tue-sat; carol=wed-sun"))
    on_duty = rota.on_duty(datetime.now(UTC), "UTC")
    got = []
    for i, topic in enumerate(("Printer jam", "Lost parcel", "Password reset", "Refund")):
        if i == 3:  # the turn is kept in KV: a new desk process goes on from it
            await desk.stop()
            await desk.start()
        await desk.send(mail(f"p{i}@example.com", f"{topic}: please help.", subject=topic,
                             sender=f"c{i}@example.com"))
        row = await desk.requested_by(f"c{i}@example.com")
        (assigned,) = await desk.of(row["id"], TicketAssigned)
        assert assigned.by == "rota:weekend" and assigned.team == "weekend"
        got.append(assigned.agent)
    assert got == [on_duty[i % len(on_duty)] for i in range(4)], (got, on_duty)


async def test_solved_tickets_auto_close_after_the_delay_even_across_a_restart(
        desk: Desk, nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(nats_url, ns, monkeypatch, "desk", "set", SUPPORT, "--auto-close",
                     "soon") == 2
    assert "not a positive number with a unit" in capsys.readouterr().err
    assert await cli(nats_url, ns, monkeypatch, "desk", "set", SUPPORT, "--auto-close",
                     "2s") == 0
    await desk.send(mail("s1@example.com", "Cannot log in.", subject="Login"))
    await desk.send(mail("s2@example.com", "Parcel missing.", subject="Parcel",
                         sender="dan@example.com"))
    closing, reopened = await desk.ticket(1), await desk.requested_by("dan@example.com")
    kv = await desk.stack.js.key_value(f"{ns}_autoclose")

    async def scheduled() -> bool:
        return len(await kv.keys()) == 2 if await _has_keys(kv) else False
    await solve(desk, closing["id"])
    await solve(desk, reopened["id"])
    await eventually(scheduled)
    await desk.stop()  # the schedule is in KV: a restarted desk closes the ticket
    await desk.send(mail("s3@example.com", "Still missing!", subject="Parcel",
                         sender="dan@example.com", in_reply_to="s2@example.com"))
    await desk.of(reopened["id"], TicketReopened)
    await desk.start()
    (closed,) = await desk.of(closing["id"], TicketClosed)
    assert closed.agent == "auto-close"

    async def swept() -> bool:
        return not await _has_keys(kv)
    await eventually(swept)  # the reopened ticket's schedule is dropped, not applied
    assert not [e for e in await desk.events(reopened["id"]) if isinstance(e.data, TicketClosed)]


async def _has_keys(kv: Any) -> bool:
    from nats.js.errors import NoKeysError
    try:
        return bool(await kv.keys())
    except NoKeysError:
        return False


async def test_acknowledged_thanks_credit_the_solver_and_are_forwarded(
        desk: Desk, nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tidydesk.policy.config import PolicyConfig, save
    await save(desk.stack.js, ns, PolicyConfig(default="content-aware"))
    assert await cli(nats_url, ns, monkeypatch, "agents", "add", "kim", "--email",
                     "kim@acme.example") == 0
    assert await cli(nats_url, ns, monkeypatch, "desk", "set", SUPPORT, "--kudos-forward",
                     "on") == 0
    await desk.send(mail("h1@example.com", "My printer is broken."))
    row = await desk.ticket(1)
    await solve(desk, row["id"], agent="kim")
    await desk.send(mail("h2@example.com", "Thank you so much!", in_reply_to="h1@example.com"))
    (thanked,) = await desk.of(row["id"], AgentThanked)
    assert thanked.agent == "kim" and thanked.message_id == "h2@example.com"

    async def forwarded() -> list[EmailMessage]:
        return desk.mails("kim@acme.example")
    (kudos,) = await eventually(forwarded)
    assert "Thank you so much!" in kudos.get_content()
    assert (await desk.ticket(1))["status"] == "solved"  # kudos, not queue work


async def test_redelivered_events_add_nothing(
        desk: Desk, nats_url: str, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    today = datetime.now(UTC).date().isoformat()
    await team(nats_url, ns, monkeypatch)
    assert await cli(nats_url, ns, monkeypatch, "hours", "set", SUPPORT, "--tz", "UTC",
                     "--weekly", "mon-sun 00:00-24:00", "--holiday", today) == 0
    assert await cli(nats_url, ns, monkeypatch, "tags", "add-rule", SUPPORT, "billing",
                     "--contains", "invoice") == 0
    assert await cli(nats_url, ns, monkeypatch, "desk", "set", SUPPORT, "--escalate",
                     "complaint") == 0
    await desk.send(mail("d1@example.com", "Your invoice is unacceptable."))
    row = await desk.ticket(1)
    await desk.of(row["id"], ReplySent)
    await desk.of(row["id"], TicketAssigned)
    await desk.of(row["id"], TicketTagged)
    before = await desk.events(row["id"])
    kinds = sorted(type(e.data).__name__ for e in before)
    assert kinds.count("TicketEscalated") == 1 and kinds.count("NoticeSent") == 1
    # every event handled again, as JetStream redelivers after a crash before the ack
    again = DeskService(desk.stack.js, desk.stack.settings)
    for seq, env in enumerate(before, 1):
        await again.handle(seq, env)
    assert [e.id for e in await desk.events(row["id"])] == [e.id for e in before]
