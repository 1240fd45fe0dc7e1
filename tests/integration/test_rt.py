"""The Request Tracker connector against a real RT 5 (Debian's request-tracker5) over REST2:
mail in through the real stack, RT's state read back over REST2.

The RT here is private to the test session: an SQLite database made by rt-setup-database
and RT's own standalone server (rt-server) on a free loopback port, configured through
RT_SITE_CONFIG so the system's RT configuration is neither read nor changed. Set
TIDYDESK_TEST_RT_URL (and TIDYDESK_TEST_RT_USER / TIDYDESK_TEST_RT_PASSWORD, default
root / password) to use an RT that is running already.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
import pytest
from nats.aio.client import Client
from nats.js import api

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.events import ReplySent, TicketSolved
from tidydesk.common.runtime import consume
from tidydesk.connectors.port import Create
from tidydesk.connectors.rt import DURABLE, NAME, RequestTracker, RtSettings
from tidydesk.connectors.sync import Connector, KvLinks, Link, ensure_consumer
from tidydesk.policy import config

T = TypeVar("T")
RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_SETUP = Path("/usr/sbin/rt-setup-database")
START_WITHIN = 120.0  # s for RT to answer after start (it compiles its templates first)
TOKEN_SCRIPT = """
use strict; use warnings;
use lib '/usr/share/request-tracker5/lib';
use RT; RT::LoadConfig(); RT::Init();
my $root = RT::User->new(RT->SystemUser); $root->Load('root');
my ($ok, $msg, $auth) = RT::AuthToken->new(RT::CurrentUser->new($root))->Create(
    Owner => $root->Id, Description => 'tidydesk connector');
die "token: $msg\\n" unless $ok;
print "$auth\\n";
"""


def _answers(url: str) -> bool:
    request = urllib.request.Request(url + "/REST/2.0/queues/all")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"root:password").decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class RtServer(msgspec.Struct, frozen=True):
    settings: RtSettings  # root over basic auth
    token: str = ""  # an RT auth token of root's, when the RT is ours


@pytest.fixture(scope="session")
def rt_server() -> Iterator[RtServer]:
    """A running RT 5: the one named by TIDYDESK_TEST_RT_URL, or a private one started here."""
    if url := os.environ.get("TIDYDESK_TEST_RT_URL"):
        yield RtServer(RtSettings(
            url=url, user=os.environ.get("TIDYDESK_TEST_RT_USER", "root"),
            password=os.environ.get("TIDYDESK_TEST_RT_PASSWORD", "password")))
        return
    if not (RT_SERVER.exists() and RT_SETUP.exists()):
        pytest.skip("Request Tracker 5 is not installed (Debian: apt-get install -y "
                    "--no-install-recommends request-tracker5 rt5-db-sqlite; see the README "
                    "section 'Request Tracker connector'); the connector is tested against a "
                    "real RT only")
    root = Path(tempfile.mkdtemp(prefix="tidydesk-rt-"))
    port = free_port()
    (root / "d").mkdir()
    (root / "RT_SiteConfig.pm").write_text(f"""
Set($rtname, 'tidydesk-test');
Set($Organization, 'tidydesk.test');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{root}/rtdb');
Set($WebPath, '');
Set($WebPort, {port});
Set($WebDomain, '127.0.0.1');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($LogToSTDERR, 'warning');
Set($LogToSyslog, undef);
Set($MailCommand, 'testfile');
1;
""")
    env = {**os.environ, "RT_SITE_CONFIG": str(root / "RT_SiteConfig.pm"),
           "RT_SITE_CONFIG_DIR": str(root / "d")}
    setup = subprocess.run([str(RT_SETUP), "--action", "init", "--skip-create"], env=env,
                           cwd=root, capture_output=True, text=True, timeout=300)
    if setup.returncode != 0:
        raise RuntimeError(f"rt-setup-database failed: {setup.stdout[-2000:]}"
                           f"{setup.stderr[-2000:]}")
    made = subprocess.run(["perl", "-e", TOKEN_SCRIPT], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        raise RuntimeError(f"no RT auth token: {made.stderr[-2000:]}")
    log = (root / "rt-server.log").open("w")
    proc = subprocess.Popen([str(RT_SERVER), "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_WITHIN
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("rt-server did not start: "
                                   + (root / "rt-server.log").read_text()[-2000:])
            time.sleep(0.2)
        yield RtServer(RtSettings(url=url, user="root", password="password"),
                       token=made.stdout.strip().splitlines()[-1])
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


class Rt:
    """The test's view of RT, read over REST2 as an integrator would."""

    def __init__(self, helpdesk: RequestTracker, queue: str) -> None:
        self.helpdesk, self.queue = helpdesk, queue

    async def tickets(self) -> list[dict[str, Any]]:
        answer = await self.helpdesk.call(
            "GET", "/tickets", params={"query": f"Queue = '{self.queue}'", "orderby": "id",
                                       "per_page": "100"})
        return [await self.ticket(str(item["id"])) for item in answer["items"]]

    async def ticket(self, rt_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.helpdesk.call("GET", f"/ticket/{rt_id}")
        return found

    async def history(self, rt_id: str) -> list[dict[str, Any]]:
        answer = await self.helpdesk.call(
            "GET", f"/ticket/{rt_id}/history", params={"fields": "Type", "per_page": "100"})
        items: list[dict[str, Any]] = answer["items"]
        return items

    async def kinds(self, rt_id: str) -> list[str]:
        """The ticket's transactions that carry a message: Create, Correspond, Comment."""
        return [t["Type"] for t in await self.history(rt_id)
                if t["Type"] in ("Create", "Correspond", "Comment")]

    async def texts(self, rt_id: str) -> list[tuple[str, str]]:
        """(transaction type, text) of every message on the ticket, in order."""
        found = []
        for txn in await self.history(rt_id):
            if txn["Type"] not in ("Create", "Correspond", "Comment"):
                continue
            parts = await self.helpdesk.call("GET", f"/transaction/{txn['id']}/attachments",
                                             params={"fields": "Content,ContentType"})
            # fields=Content of a collection gives the text itself (GET /attachment/:id
            # would give it base64-encoded)
            text = "".join(str(p["Content"]) for p in parts["items"]
                           if p.get("ContentType") == "text/plain" and p.get("Content"))
            found.append((str(txn["Type"]), text))
        return found

    @staticmethod
    def refers_to(ticket: dict[str, Any]) -> list[str]:
        return [str(h["id"]) for h in ticket["_hyperlinks"] if h.get("ref") == "refers-to"]


@pytest.fixture
async def rt_queue(stack: Stack, rt_server: RtServer) -> AsyncIterator[Rt]:
    """A queue of the test's own in RT (named as its namespace), read over REST2."""
    settings = msgspec.structs.replace(rt_server.settings, queue=stack.ns)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        helpdesk = RequestTracker(http, settings)
        await helpdesk.call("POST", "/queue", {"Name": stack.ns})
        try:
            yield Rt(helpdesk, stack.ns)
        finally:
            with contextlib.suppress(Exception):
                await stack.js.delete_key_value(f"{stack.ns}_connector_{NAME}")


@pytest.fixture
async def rt(stack: Stack, rt_queue: Rt) -> AsyncIterator[tuple[Rt, Connector]]:
    """The connector feeding the test's RT queue from the stack, in this event loop."""
    await ensure_consumer(stack.js, stack.ns, DURABLE, api.DeliverPolicy.ALL)
    connector = Connector(stack.store, rt_queue.helpdesk, KvLinks(stack.js, stack.ns, NAME))
    task = asyncio.create_task(consume(stack.js, stack.ns, DURABLE, connector.handle, batch=1))
    try:
        yield rt_queue, connector
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=15)


async def rt_shows(check: Callable[[], Awaitable[T]], within: float = 90.0) -> T:
    """`eventually` for checks that ask RT: a pause between polls, so that the test's
    reads do not crowd out the connector's writes (SQLite takes one writer at a time)."""
    async def paced() -> T:
        await asyncio.sleep(0.25)
        return await check()

    return await eventually(paced, within=within)


async def _one_ticket(stack: Stack) -> str:
    (row,) = await eventually(stack.tickets)
    return str(row["id"])


async def test_decisions_arrive_in_rt_as_rt_operations(
        stack: Stack, rt: tuple[Rt, Connector]) -> None:
    view, connector = rt
    await config.save(stack.js, stack.ns, config.PolicyConfig(
        mailboxes={"support@acme.example": "content-aware"}))
    await stack.intake.accept(mail("r1@example.com", "The printer on floor 3 prints only "
                                   "blank pages.", subject="Printer prints blank pages"))
    tid = await _one_ticket(stack)

    # a new ticket: created in the queue, with the requester and the first message
    (first,) = await rt_shows(view.tickets)
    rt_id = str(first["id"])
    assert first["Subject"] == "Printer prints blank pages"
    assert [r["id"] for r in first["Requestor"]] == ["alice@example.com"]
    assert await view.texts(rt_id) == [
        ("Create", "The printer on floor 3 prints only blank pages.")]

    # a reply: correspondence on the same RT ticket
    await stack.intake.accept(mail("r2@example.com", "I replaced the toner, still blank.",
                                   subject="Re: Printer prints blank pages",
                                   in_reply_to="r1@example.com"))

    async def corresponded() -> bool:
        return await view.kinds(rt_id) == ["Create", "Correspond"]

    await rt_shows(corresponded)
    assert (await view.texts(rt_id))[1] == ("Correspond", "I replaced the toner, still blank.")

    # an agent's reply sent from tidydesk: a comment (RT must not mail it a second time)
    await stack.store.decide(tid, lambda t: [(ReplySent(
        ticket_id=tid, message_id="a1@acme.example", agent="kim", text="Try the rear tray.",
        sender="support@acme.example", to="alice@example.com",
        subject="Re: Printer prints blank pages", reply_to="support@acme.example"), "a1")])

    async def noted() -> bool:
        return await view.kinds(rt_id) == ["Create", "Correspond", "Comment"]

    await rt_shows(noted)
    assert "Try the rear tray." in (await view.texts(rt_id))[2][1]

    # solved in tidydesk: resolved in RT
    await stack.store.decide(tid, lambda t: [(TicketSolved(ticket_id=tid, agent="kim"), "s")])

    async def status() -> str:
        return str((await view.ticket(rt_id))["Status"])

    async def resolved() -> bool:
        return await status() == "resolved"

    await rt_shows(resolved)

    # a thank-you after the solve: a comment, and the RT ticket stays resolved
    await stack.intake.accept(mail("r3@example.com", "Thank you so much!",
                                   subject="Re: Printer prints blank pages",
                                   in_reply_to="r1@example.com"))

    async def commented() -> bool:
        return await view.kinds(rt_id) == ["Create", "Correspond", "Comment", "Comment"]

    await rt_shows(commented)
    kind, note = (await view.texts(rt_id))[3]
    assert kind == "Comment" and "Thank you so much!" in note and "kept it solved" in note
    assert await status() == "resolved"

    # an unrelated question in a reply: a new RT ticket that refers to the old one
    await stack.intake.accept(mail(
        "r4@example.com", "It works, thanks! Separately, can I change the billing address "
        "on my plan?", subject="Re: Printer prints blank pages", in_reply_to="r1@example.com"))

    async def split() -> list[dict[str, Any]]:
        tickets = await view.tickets()
        return tickets if len(tickets) == 2 else []

    old, new = await rt_shows(split)
    assert str(old["id"]) == rt_id and Rt.refers_to(new) == [rt_id]
    assert [r["id"] for r in new["Requestor"]] == ["alice@example.com"]
    assert (await view.texts(str(new["id"])))[0][1].startswith("It works, thanks! Separately")
    assert await status() == "resolved"  # the split left the old ticket as it was
    assert await view.kinds(rt_id) == ["Create", "Correspond", "Comment", "Comment"]

    # the same problem again: the correspondence, and the RT ticket is open again
    await stack.intake.accept(mail("r5@example.com", "The printer prints blank pages again "
                                   "since this morning, same problem as before.",
                                   subject="Re: Printer prints blank pages",
                                   in_reply_to="r1@example.com"))

    async def reopened() -> bool:
        return (await view.kinds(rt_id))[-1:] == ["Correspond"] and await status() == "open"

    await rt_shows(reopened)

    # every event of both tickets delivered again: RT gets nothing twice
    before = {t["id"]: await view.kinds(str(t["id"])) for t in await view.tickets()}
    new_tid = next(iter((await stack.store.load(tid)).splits))
    for ticket_id in (tid, new_tid):
        for seq, env in await stack.store.history(stack.store.ticket_subject(ticket_id)):
            await connector.handle(seq, env)
    after = {t["id"]: await view.kinds(str(t["id"])) for t in await view.tickets()}
    assert after == before


async def test_a_create_that_rt_did_but_nobody_recorded_is_found_not_repeated(
        stack: Stack, rt: tuple[Rt, Connector]) -> None:
    view, connector = rt
    op = Create(ticket_id="t-crashed", subject="Lost answer", requester="bob@example.com",
                text="Created, then the connector died before writing it down.")
    links = KvLinks(stack.js, stack.ns, NAME)
    # what a connector that died between RT's answer and its own record leaves behind
    await links.put(op.ticket_id, Link(external="", seq=7, step=0, since=datetime.now(UTC)))
    made = await view.helpdesk.create(op, None)
    await connector.apply(7, 0, op)  # the redelivered event
    assert [str(t["id"]) for t in await view.tickets()] == [made]
    link = await links.get(op.ticket_id)
    assert link is not None and link.external == made and link.done(7, 0)


class Runner:
    """`python -m tidydesk.connectors.rt` as its own process, as an operator runs it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tidydesk.connectors.rt"],
                                     env=self.env)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


async def test_the_runner_process_killed_and_restarted_repeats_nothing(
        stack: Stack, rt_queue: Rt, rt_server: RtServer, nats_url: str) -> None:
    if not rt_server.token:
        pytest.skip("no RT auth token for an RT given by TIDYDESK_TEST_RT_URL")
    runner = Runner({**os.environ, "TIDYDESK_NATS_URL": nats_url,
                     "TIDYDESK_NAMESPACE": stack.ns, "TIDYDESK_RT_URL": rt_server.settings.url,
                     "TIDYDESK_RT_QUEUE": stack.ns, "TIDYDESK_RT_TOKEN": rt_server.token,
                     "TIDYDESK_RT_START": "all"})
    runner.start()
    try:
        await stack.intake.accept(mail("k1@example.com", "The scanner jams on every page.",
                                       subject="Scanner jams"))
        (created,) = await rt_shows(rt_queue.tickets)
        rt_id = str(created["id"])
        assert runner.stop(signal.SIGKILL) != 0  # no goodbye: whatever was in flight stays
        await stack.intake.accept(mail("k2@example.com", "It also jams with one page.",
                                       subject="Re: Scanner jams", in_reply_to="k1@example.com"))
        runner.start()  # the durable goes on where it was, the KV record says what is done

        async def corresponded() -> bool:
            return await rt_queue.kinds(rt_id) == ["Create", "Correspond"]

        await rt_shows(corresponded)
        assert [str(t["id"]) for t in await rt_queue.tickets()] == [rt_id]
        assert runner.stop() == 0  # SIGTERM: a clean stop
    finally:
        if runner.proc is not None and runner.proc.poll() is None:
            runner.stop(signal.SIGKILL)


@pytest.mark.parametrize(("change", "says"), [
    ({"TIDYDESK_RT_QUEUE": "No such queue"}, "answered 404"),
    ({"TIDYDESK_RT_TOKEN": "1-1-notatoken"}, "answered 401"),
])
def test_the_runner_refuses_to_start_on_a_wrong_queue_or_token(
        rt_server: RtServer, nats_url: str, nc: Client, ns: str, change: dict[str, str],
        says: str) -> None:
    # `nc`: the namespace's streams exist and are deleted after the test
    if not rt_server.token:
        pytest.skip("no RT auth token for an RT given by TIDYDESK_TEST_RT_URL")
    env = {**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_NAMESPACE": ns,
           "TIDYDESK_RT_URL": rt_server.settings.url, "TIDYDESK_RT_QUEUE": "General",
           "TIDYDESK_RT_TOKEN": rt_server.token, **change}
    done = subprocess.run([sys.executable, "-m", "tidydesk.connectors.rt"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "tidydesk connector-rt: cannot use RT" in done.stderr
    assert says in done.stderr
