"""A reply is mailed once: racing notify instances, dead claims, SIGKILL mid-flow."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from nats.aio.client import Client

from tests.conftest import eventually
from tests.integration.test_outbound import Sink, publish, reply
from tidydesk.common.store import connect, digest_key
from tidydesk.notify.mail import InFlight, Mailer

REPLIES = 80


class SlowSink(Sink):
    """The relay, a little slow before DATA: a kill often lands in the middle of a send."""

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        await asyncio.sleep(random.uniform(0, 0.03))
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def _until_sent(mailer: Mailer, n: int) -> None:
    """Deliver as the consumer would: an InFlight answer is retried a moment later."""
    while True:
        try:
            await mailer.deliver(reply("t", n))
            return
        except InFlight:
            await asyncio.sleep(0.05)


async def test_two_instances_racing_for_each_reply_mail_it_once(
        nc: Client, nats_url: str, ns: str) -> None:
    sink = SlowSink()
    server, port = await sink.start()
    other = await connect(nats_url, "tidydesk-tests-b")  # a second process's own connection
    a, b = Mailer(nc, ns, f"127.0.0.1:{port}"), Mailer(other, ns, f"127.0.0.1:{port}")
    await a.start()
    await b.start()
    try:
        await asyncio.gather(*(_until_sent(m, n) for n in range(30) for m in (a, b, a)))
        counts = sink.by_message_id()
        assert len(counts) == 30 and set(counts.values()) == {1}, counts
    finally:
        await other.close()
        server.close()


async def test_claim_of_a_dead_or_idle_owner_is_taken_over(nc: Client, ns: str) -> None:
    sink = Sink()
    server, port = await sink.start()
    kv = await nc.jetstream().key_value(f"{ns}_outbox")
    idle = Mailer(nc, ns, f"127.0.0.1:{port}")
    await idle.start()  # alive, but not mailing what it claimed (its send failed)
    mailer = Mailer(nc, ns, f"127.0.0.1:{port}")
    try:
        await kv.put(digest_key(reply("t", 1).message_id), b"sending 0badc0ffee")  # SIGKILLed
        await kv.put(digest_key(reply("t", 2).message_id), f"sending {idle.owner}".encode())
        await kv.put(digest_key(reply("t", 3).message_id), b"sent")
        for n in (1, 2, 3):
            await mailer.deliver(reply("t", n))
        assert sink.by_message_id() == {f"<{reply('t', n).message_id}>": 1 for n in (1, 2)}
        for n in (1, 2):
            assert (await kv.get(digest_key(reply("t", n).message_id))).value == b"sent"
    finally:
        server.close()


async def test_sigkilled_notify_loses_no_reply_and_duplicates_at_most_one_per_kill(
        nc: Client, nats_url: str, ns: str, tmp_path: Path) -> None:
    """Duplicates are allowed only for a kill between the relay's 250 and the `sent` record:
    at most one per kill. Takeovers count the kills that landed inside a send."""
    sink = SlowSink()
    server, port = await sink.start()
    env = {**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_NAMESPACE": ns,
           "TIDYDESK_SMTP_RELAY": f"127.0.0.1:{port}", "TIDYDESK_WEBHOOK_URLS": "",
           "TIDYDESK_LOG_LEVEL": "warning", "TIDYDESK_LOG_FORMAT": "json",
           "TIDYDESK_HEALTH_PORT": "0"}  # free probe ports: restarts never collide
    logs = tmp_path / "notify.log"

    async def start() -> asyncio.subprocess.Process:
        with logs.open("ab") as out:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tidydesk.notify", env=env, stdout=out, stderr=out)

    rng = random.Random()
    proc, kills = await start(), 0
    try:
        for n in range(REPLIES):
            await publish(nc, ns, reply(f"t{n % 7}", n), f"r{n}")
        for target in sorted(rng.sample(range(5, REPLIES - 5), 4)):
            async def reached(t: int = target) -> bool:
                return len(sink.mails) >= t

            await eventually(reached, 60)
            await asyncio.sleep(rng.uniform(0, 0.03))  # anywhere in a send, or between
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            kills += 1
            proc = await start()

        async def all_there() -> bool:
            return len(sink.by_message_id()) == REPLIES

        await eventually(all_there, within=90)  # redelivery waits out the 5 s ack deadline
        await asyncio.sleep(1)  # anything still going out would show up as a duplicate
        counts = sink.by_message_id()
        lost = REPLIES - len(counts)
        duplicates = sum(c - 1 for c in counts.values())
        takeovers = logs.read_text().count('"reply_resent"')
        print(f"kills={kills} replies={REPLIES} mails={len(sink.mails)} lost={lost} "
              f"duplicates={duplicates} takeovers={takeovers}")
        assert lost == 0 and duplicates <= kills
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        server.close()
