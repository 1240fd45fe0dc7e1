"""IMAP poller: new mail in one or more mailboxes goes through Intake, exactly once per UID.

The checkpoint (UIDVALIDITY + last UID done) lives in the `{ns}_imap` KV bucket and moves
only after `Intake.accept` returned, so a restart neither skips nor repeats a message (and a
repeat after a crash between the two is a duplicate intake refuses). IDLE when the server
offers it, else a poll every `poll_seconds`. Mail is fetched with BODY.PEEK[]: the mailbox
is never changed (no \\Seen flag, no expunge).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aioimaplib  # type: ignore[import-untyped]  # ships no type information
import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from tidydesk.common.store import digest_key
from tidydesk.ingest.intake import Intake

log = structlog.get_logger()
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_LITERAL = re.compile(rb"BODY\[\] \{\d+\}$", re.IGNORECASE)


class ImapError(Exception):
    """The server refused a command; the poller reconnects after a pause."""


@dataclass(frozen=True)
class Source:
    """One mailbox from TIDYDESK_IMAP_URLS."""

    tls: bool
    host: str
    port: int
    user: str
    password: str
    folder: str
    recipient: str  # the event's `mailbox`: ?mailbox=… or the login when it is an address

    @property
    def name(self) -> str:
        """The URL without the password, for logs and the checkpoint key."""
        scheme = "imaps" if self.tls else "imap"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.folder}"


def parse_url(url: str) -> Source:
    """`imaps://user:pass@host:port/INBOX?mailbox=support@x` (user and pass %-encoded)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError(f"IMAP URL must start with imap:// or imaps://, got {parts.scheme!r}")
    if not parts.hostname or not parts.username:
        raise ValueError("IMAP URL needs user and host: imaps://user:pass@host/INBOX")
    user = unquote(parts.username)
    query = parse_qs(parts.query)
    recipient = query.get("mailbox", [user if "@" in user else ""])[0]
    return Source(
        tls=parts.scheme == "imaps", host=parts.hostname,
        port=parts.port or (993 if parts.scheme == "imaps" else 143),
        user=user, password=unquote(parts.password or ""),
        folder=unquote(parts.path.lstrip("/")) or "INBOX", recipient=recipient.lower(),
    )


class Checkpoint(msgspec.Struct, frozen=True):
    uidvalidity: int
    last_uid: int


async def poll_forever(intake: Intake, js: JetStreamContext, ns: str,
                       urls: str | Sequence[str], *, poll_seconds: float = 30.0,
                       idle: bool = True, idle_seconds: float = 25 * 60, io_timeout: float = 60.0,
                       ssl_context: ssl.SSLContext | None = None) -> None:
    """Watch every mailbox until cancelled; a failing one reconnects with a back-off."""
    items = urls.split(",") if isinstance(urls, str) else urls
    sources = [parse_url(u) for u in items if u.strip()]
    kv = await js.key_value(f"{ns}_imap")
    pollers = [Poller(intake, kv, s, poll_seconds=poll_seconds, idle=idle,
                      idle_seconds=idle_seconds, io_timeout=io_timeout, ssl_context=ssl_context)
               for s in sources]
    await asyncio.gather(*(p.run() for p in pollers))


class Poller:
    """One mailbox: connect, catch up from the checkpoint, then IDLE or poll."""

    def __init__(self, intake: Intake, kv: KeyValue, source: Source, *, poll_seconds: float,
                 idle: bool, idle_seconds: float, io_timeout: float,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.intake, self.kv, self.source = intake, kv, source
        self.poll_seconds, self.idle, self.idle_seconds = poll_seconds, idle, idle_seconds
        self.timeout, self.ssl_context = io_timeout, ssl_context
        self.key = digest_key(source.name)
        self.log = log.bind(imap=source.name)
        self.selected = False

    async def run(self) -> None:
        delay = 1.0
        while True:
            self.selected = False
            try:
                await self.session()
            except (OSError, TimeoutError, ImapError, aioimaplib.AioImapException) as exc:
                self.log.warning("imap_retry", error=str(exc) or type(exc).__name__)
            except Exception:  # intake/NATS trouble: the checkpoint did not move, retry
                self.log.exception("imap_failed")
            if self.selected:  # it worked for a while: back-off starts again
                delay = 1.0
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def session(self) -> None:
        src = self.source
        client: Any
        if src.tls:
            client = aioimaplib.IMAP4_SSL(src.host, src.port, timeout=self.timeout,
                                          ssl_context=self.ssl_context)
        else:
            client = aioimaplib.IMAP4(src.host, src.port, timeout=self.timeout)
        try:
            await client.wait_hello_from_server()
            _ok(await client.login(src.user, src.password), "LOGIN")
            selected = _ok(await client.select(_quote(src.folder)), "SELECT")
            found = next((m for line in selected.lines
                          if isinstance(line, bytes | bytearray)
                          for m in [_UIDVALIDITY.search(line)] if m), None)
            if found is None:
                raise ImapError(f"no UIDVALIDITY in the SELECT answer for {src.folder}")
            uidvalidity = int(found.group(1))
            self.selected = True
            self.log.info("imap_selected", uidvalidity=uidvalidity,
                          idle=self.idle and client.has_capability("IDLE"))
            while True:
                await self.catch_up(client, uidvalidity)
                if self.idle and client.has_capability("IDLE"):
                    await self.wait_idle(client)
                else:
                    await asyncio.sleep(self.poll_seconds)
        finally:
            transport = getattr(client.protocol, "transport", None)
            if transport is not None:
                transport.close()

    async def catch_up(self, client: Any, uidvalidity: int) -> None:
        """Accept every message above the checkpoint, in UID order, moving it after each."""
        point = await self.load()
        last = point.last_uid if point and point.uidvalidity == uidvalidity else 0
        if point and point.uidvalidity != uidvalidity:  # mailbox recreated: UIDs start over
            self.log.warning("imap_uidvalidity_changed", old=point.uidvalidity, new=uidvalidity)
            await self.save(Checkpoint(uidvalidity=uidvalidity, last_uid=0))
        found = _ok(await client.uid_search(f"UID {last + 1}:*", charset=None), "UID SEARCH")
        uids = sorted({int(t) for line in found.lines[:-1] for t in _numbers(line)} - {0})
        for uid in (u for u in uids if u > last):  # `n:*` always names the highest UID
            fetched = _ok(await client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), "UID FETCH")
            raw = _literal(fetched.lines)
            if raw is None:
                self.log.warning("imap_message_gone", uid=uid)  # expunged meanwhile
            else:
                event, new = await self.intake.accept(raw, mailbox=self.source.recipient)
                self.log.info("imap_accepted", uid=uid, digest=event.digest, duplicate=not new)
            await self.save(Checkpoint(uidvalidity=uidvalidity, last_uid=uid))

    async def wait_idle(self, client: Any) -> None:
        """IDLE until the server reports a change (or `idle_seconds` pass), then DONE."""
        idling = await client.idle_start(timeout=self.idle_seconds)
        try:
            await client.wait_server_push(timeout=self.idle_seconds + self.timeout)
        finally:
            client.idle_done()
        _ok(await asyncio.wait_for(idling, self.timeout), "IDLE")

    async def load(self) -> Checkpoint | None:
        try:
            entry = await self.kv.get(self.key)
        except KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value or b"", type=Checkpoint)

    async def save(self, point: Checkpoint) -> None:
        await self.kv.put(self.key, msgspec.json.encode(point))


def _ok(response: Any, command: str) -> Any:
    if response.result != "OK":
        text = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace")
        raise ImapError(f"{command} refused: {response.result} {text}"[:300])
    return response


def _numbers(line: object) -> list[str]:
    """UIDs of one untagged SEARCH line ('1 2 3', or 'SEARCH 1 2 3'); nothing otherwise."""
    if not isinstance(line, bytes | bytearray):
        return []
    tokens = bytes(line).decode("ascii", "replace").split()
    if tokens[:1] == ["SEARCH"]:
        tokens = tokens[1:]
    return tokens if all(t.isdigit() for t in tokens) else []


def _literal(lines: Sequence[object]) -> bytes | None:
    """The BODY[] literal of a single-message FETCH answer."""
    for head, data in itertools.pairwise(lines):
        if isinstance(head, bytes) and _LITERAL.search(head) and isinstance(
                data, bytes | bytearray):
            return bytes(data)
    return None


def _quote(folder: str) -> str:
    return folder if re.fullmatch(r"[\w./-]+", folder) else '"' + folder.replace(
        "\\", "\\\\").replace('"', '\\"') + '"'
