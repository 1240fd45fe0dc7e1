"""Agent replies mailed through the relay, once per Message-ID across crashes and processes.

The `{ns}_outbox` bucket holds one key per reply (digest of its Message-ID):
`sending <owner>` while a process mails it, `sent` after the relay answered 250. Every write
is revision-checked, so of two processes racing for a reply only one holds the claim. A claim
left by another owner is taken over only when that owner does not answer (its connection is
gone: SIGKILL, crash) or answers that it is not mailing the reply now; then the reply is mailed
again with the same Message-ID (at least once: a lost reply is worse than a duplicate that
receivers drop by Message-ID). The only duplicate is a crash between the relay's 250 and the
`sent` record, or a process cut off from NATS in the middle of its own send.
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import formatdate

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tidydesk.common.events import Envelope, NoticeSent, ReplySent
from tidydesk.common.store import digest_key

log = structlog.get_logger()
SENDING, SENT = "sending", "sent"
SMTP_TIMEOUT = 30.0  # seconds per SMTP step


class InFlight(Exception):
    """Another live process is mailing this reply right now; retry later."""


def outbound_mail(e: ReplySent | NoticeSent) -> EmailMessage:
    """The agent's reply as a mail that threads back: Message-ID indexed, token Reply-To.
    An automatic reply says so (RFC 3834); a notice to the team is auto-generated."""
    if isinstance(e, NoticeSent):
        return notice_mail(e)
    mail = EmailMessage()
    if e.auto:
        mail["Auto-Submitted"] = "auto-replied"
    mail["From"] = e.sender
    mail["To"] = e.to
    mail["Reply-To"] = e.reply_to
    mail["Subject"] = e.subject
    mail["Message-ID"] = f"<{e.message_id}>"
    mail["Date"] = formatdate(localtime=False)
    if e.in_reply_to:
        mail["In-Reply-To"] = f"<{e.in_reply_to}>"
    if e.references:
        mail["References"] = " ".join(f"<{r}>" for r in e.references)
    mail.set_content(e.text)
    return mail


def notice_mail(e: NoticeSent) -> EmailMessage:
    """A notice to someone on the team (escalation, kudos): no reply token, RFC 3834."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = e.sender, e.to, e.subject
    mail["Message-ID"] = f"<{e.message_id}>"
    mail["Date"] = formatdate(localtime=False)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(e.text)
    return mail


class Mailer:
    """Handler of the `notify-mail` consumer: mails reply.sent and notice.sent, ignores every
    other event."""

    def __init__(self, nc: Client, ns: str, relay: str) -> None:
        self.nc, self.ns, self.relay = nc, ns, relay
        self.owner = uuid.uuid4().hex[:16]
        self.inflight: set[str] = set()  # outbox keys this process is mailing now
        self._kv: KeyValue | None = None

    def _owner_subject(self, owner: str) -> str:
        return f"{self.ns}.notify.outbox.{owner}"

    async def start(self) -> None:
        """Answer other processes asking whether a claim of ours is still being mailed."""
        async def answer(msg: Msg) -> None:
            await msg.respond(b"busy" if msg.data.decode() in self.inflight else b"idle")

        await self.nc.subscribe(self._owner_subject(self.owner), cb=answer)
        self._kv = await self.nc.jetstream().key_value(f"{self.ns}_outbox")

    def _send(self, mail: EmailMessage) -> None:
        host, _, port = self.relay.rpartition(":")
        with smtplib.SMTP(host or "127.0.0.1", int(port), timeout=SMTP_TIMEOUT) as smtp:
            smtp.send_message(mail)

    async def handle(self, seq: int, env: Envelope) -> None:
        if not isinstance(env.data, ReplySent | NoticeSent):
            return
        if not self.relay:
            log.warning("reply_not_mailed", ticket_id=env.data.ticket_id,
                        hint="set TIDYDESK_SMTP_RELAY")
            return
        await self.deliver(env.data)

    async def deliver(self, reply: ReplySent | NoticeSent) -> None:
        """Mail one reply unless the outbox says it went out; see the module docstring."""
        if self._kv is None:
            await self.start()
        assert self._kv is not None
        key = digest_key(reply.message_id)
        if key in self.inflight:
            raise InFlight(reply.message_id)
        self.inflight.add(key)  # before the claim: a peer asking us must hear "busy"
        sending: asyncio.Task[None] | None = None
        try:
            revision = await self._claim(self._kv, key)
            if revision is None:
                log.info("reply_already_mailed", message_id=reply.message_id)
                return
            sending = asyncio.create_task(asyncio.to_thread(self._send, outbound_mail(reply)))
            await asyncio.shield(sending)  # cancelled or not, the claim lasts as the send does
            try:
                await self._kv.update(key, SENT.encode(), last=revision)
            except KeyWrongLastSequenceError:
                log.warning("reply_claim_lost", message_id=reply.message_id,
                            hint="another process took the claim; the reply may go out twice")
            log.info("reply_mailed", ticket_id=reply.ticket_id, to=reply.to,
                     message_id=reply.message_id)
        finally:
            if sending is None or sending.done():
                self.inflight.discard(key)
            else:
                sending.add_done_callback(lambda _: self.inflight.discard(key))

    async def _claim(self, kv: KeyValue, key: str) -> int | None:
        """Revision of our `sending` claim, or None when the reply was mailed already."""
        mine = f"{SENDING} {self.owner}".encode()
        for _ in range(5):  # each turn lost a race to a concurrent write: read again
            try:
                return int(await kv.create(key, mine))
            except KeyWrongLastSequenceError:
                pass
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                continue
            state, _, holder = (entry.value or b"").decode().partition(" ")
            if state == SENT:
                return None
            if holder != self.owner and await self._busy(holder, key):
                raise InFlight(key)
            try:
                revision = int(await kv.update(key, mine, last=entry.revision))
            except KeyWrongLastSequenceError:
                continue
            log.warning("reply_resent", key=key, previous_owner=holder,
                        hint="an earlier attempt died mid-send; same Message-ID")
            return revision
        raise InFlight(key)

    async def _busy(self, owner: str, key: str) -> bool:
        """Is `owner` mailing `key` now? No responder means its process is gone."""
        try:
            answer = await self.nc.request(self._owner_subject(owner), key.encode(), timeout=2)
        except NoRespondersError:
            return False
        except (TimeoutError, NatsTimeout):
            return True  # alive but slow: let it finish, ask again on the retry
        return answer.data == b"busy"
