"""Raw RFC 5322 bytes -> a `message.received` (or a `message.rejected` with a reason). Pure."""

from __future__ import annotations

import email
import email.policy
import functools
import hashlib
import itertools
import re
from email.headerregistry import UnstructuredHeader
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import msgspec

from tidydesk.common.events import (
    MAX_EVENT_BYTES,
    Attachment,
    MessageReceived,
    MessageRejected,
)
from tidydesk.ingest import autoreply
from tidydesk.ingest.extract import body_of, extract, html_to_text
from tidydesk.ingest.sanitize import Tally, clean, scrub, text_charset
from tidydesk.ingest.senderauth import sender_auth

MAX_TEXT = 200_000  # characters kept per body field; an event must stay far below 1 MiB
MAX_IDS = 100  # nearest References kept; a parent is almost always among the last few
MAX_HEADER = 4096  # characters of a structured header parsed: the stdlib is quadratic on some
MAX_UNSTRUCTURED = 65536  # … and of an unstructured one (Subject, References: also quadratic)
MAX_ADDR_HEADERS = 10  # To/Cc header fields read (RFC 5322 allows one each)
MAX_ATTACHMENTS = 200
_MSGID = re.compile(r"<([^<>\s]{1,500})>")
# a mail's own Message-ID: the header starts with one <left@right>, without spaces or brackets
_OWN_ID = re.compile(r"<([^<>\s@]{1,250}@[^<>\s@]{1,250})>(?=\s|\(|$)")
SYNTHETIC = "@tidydesk.invalid"  # the domain of synthesised Message-IDs; never taken from mail
# the charset of an encoded word (=?cs?Q?…?=), and of an RFC 2231 parameter (name*=cs'lang'…)
_WORD_CHARSET = re.compile(r"(=\?)([^?\s]{0,80})(?=\?)")
_PARAM_CHARSET = re.compile(r"(\*=\s*\"?)([^'\"\s;]{0,80})(?=')")
_ID_HEADERS = ("message-id", "in-reply-to", "references")  # never rewritten: the ids thread
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|abwesenheit|"
    r"automatische antwort|r[ée]ponse automatique|absence|respuesta autom[aá]tica|"
    r"fuera de la oficina|resposta autom[aá]tica|risposta automatica|자동\s*응답|부재|"
    r"自動応答|自動返信|不在|自动回复|自動回覆|undeliverable|delivery status notification|"
    r"mail delivery (failed|subsystem))",
    re.IGNORECASE,
)


class _Policy(email.policy.EmailPolicy):
    """policy.default, but parsing only the start of a huge header (the end of References).

    The stdlib's header parsers are quadratic on hostile input (`From: "a"a"a…`, a 1 MB
    Subject of encoded words): minutes of CPU for one mail, with the event loop blocked.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):  # already a parsed header object
            return value
        factory: Any = self.header_factory
        kind = factory.registry.get(name.lower(), factory.default_class)
        limit = MAX_UNSTRUCTURED if issubclass(kind, UnstructuredHeader) else MAX_HEADER
        if len(value) > limit:  # the parent of a reply is among the last References
            tail = name.lower() in ("references", "in-reply-to")
            value = value[-limit:] if tail else value[:limit]
        try:
            return _parsed(self, name, _charsets(name, value))
        except Exception:  # some codecs make the stdlib raise (utf-16 ''%00 in RFC 2231)
            return _parsed(self, name, _charsets(name, value, everywhere=True))


def _charsets(name: str, value: str, *, everywhere: bool = False) -> str:
    """`value` with us-ascii as the charset of encoded words and RFC 2231 parameters that
    name a codec that is no charset (unicode_escape, utf-7, base64…), or of all of them."""
    name = name.lower()
    if not everywhere and name in _ID_HEADERS:
        return value

    def swap(m: re.Match[str]) -> str:
        keep = not everywhere and text_charset(m.group(2).split("*", 1)[0]) is not None
        return m.group(0) if keep else f"{m.group(1)}us-ascii"

    if "=?" in value:
        value = _WORD_CHARSET.sub(swap, value)
    if "*=" in value and name.startswith("content-"):
        value = _PARAM_CHARSET.sub(swap, value)
    return value


@functools.lru_cache(maxsize=256)
def _parsed(policy: email.policy.EmailPolicy, name: str, value: str) -> Any:
    """Parsed headers are immutable; the stdlib re-parses on every get (~8x per mail)."""
    return email.policy.EmailPolicy.header_fetch_parse(policy, name, value)


class _Message(EmailMessage):
    """A part that never names a codec that is no charset (unicode_escape, utf-7, base64…)."""

    def get_content_charset(self, failobj: Any = None) -> Any:
        charset = text_charset(super().get_content_charset())
        return failobj if charset is None else charset


POLICY = _Policy(message_factory=_Message)


def intake_key(tenant: str, identity: str) -> str:
    """Dedupe key of a mail in a tenant: `identity` is its Message-ID (or raw digest)."""
    return hashlib.sha256(f"{tenant}\0{identity}".encode("utf-8", "surrogatepass")).hexdigest()


def synthesised_id(content_digest: str) -> str:
    """A stable Message-ID for a mail without a usable one of its own."""
    return f"{content_digest[:32]}{SYNTHETIC}"


def own_message_id(msg: EmailMessage) -> tuple[str | None, str]:
    """(the mail's Message-ID if well-formed, else None; the raw header value, folded)."""
    value = _raw_value(msg, "message-id")
    found = _OWN_ID.match(value)
    if found is None or found.group(1).lower().endswith(SYNTHETIC):
        return None, value
    return found.group(1), value


def _raw_value(msg: EmailMessage, name: str) -> str:
    """A header's first value as sent (unparsed, unfolded, at most 1000 characters)."""
    value = next((v for k, v in msg.raw_items() if k.lower() == name), "")
    return " ".join(str(value)[:1000].split())


def content_digest(sender: str, date: str, subject: str, message_id: str, text: str,
                   attachments: tuple[Attachment, ...]) -> str:
    """sha256 of what a relay does not change: not Received, DKIM, Authentication-Results."""
    fields = [sender, date, subject, message_id, text, [a.sha256 for a in attachments]]
    return hashlib.sha256(msgspec.json.encode(fields)).hexdigest()


def message_ids(value: object) -> tuple[str, ...]:
    """Message-IDs named in an In-Reply-To/References header, in order, de-duplicated."""
    seen: dict[str, None] = {}
    for mid in _MSGID.findall(str(value or "")):
        seen.setdefault(mid, None)
    return tuple(seen)[-MAX_IDS:]


def auto_reason(msg: EmailMessage, subject: str, sender: str) -> str | None:
    """Why this mail looks machine-sent (RFC 3834 and common conventions), or None."""
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for header in ("X-Autoreply", "X-Autorespond"):
        if header in msg:
            return f"{header} present"
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if msg.get_content_type() == "multipart/report":
        return "delivery status report (multipart/report)"
    if "List-Id" in msg or "List-Unsubscribe" in msg:
        return "mailing list / bulk mail (List-Id)"
    if re.match(r"^(mailer-daemon|postmaster)@", sender, re.IGNORECASE):
        return f"bounce sender {sender}"
    if _AUTO_SUBJECT.search(subject):
        return f"auto-reply subject {subject[:60]!r}"
    return None


def parse(raw: bytes, *, mailbox: str = "", envelope_from: str = "",
          trusted: frozenset[str] = frozenset()) -> MessageReceived | MessageRejected:
    """Parse a mail; anything unusable becomes a rejection with a reason, never an exception.

    Every string in the event is `sanitize.clean`: safe for PostgreSQL, JSON and consumers.
    """
    digest = hashlib.sha256(raw).hexdigest()
    tally = Tally()
    try:
        event = _cleaned(_parse(raw, digest, mailbox, envelope_from, tally, trusted), tally)
        return _fit(event) if isinstance(event, MessageReceived) else event
    except Exception as exc:  # the stdlib parser can raise almost anything on hostile input
        return scrub(MessageRejected(
            digest=digest, reason=f"unparseable mail: {type(exc).__name__}: {str(exc)[:200]}",
            mailbox=mailbox, size=len(raw)))


def _cleaned(event: MessageReceived | MessageRejected, tally: Tally
             ) -> MessageReceived | MessageRejected:
    """The event with every string in it cleaned, and a note saying what was removed."""
    event = scrub(event, tally)
    if tally.note() and isinstance(event, MessageReceived):
        event = msgspec.structs.replace(event, notes=(*event.notes, tally.note()))
    return event


def _parse(raw: bytes, digest: str, mailbox: str, envelope_from: str, tally: Tally,
           trusted: frozenset[str] = frozenset()) -> MessageReceived | MessageRejected:
    if not raw.strip():
        return MessageRejected(digest=digest, reason="empty message", mailbox=mailbox, size=0)
    msg = email.message_from_bytes(raw, policy=POLICY)
    assert isinstance(msg, EmailMessage)
    notes: list[str] = [f"defect: {type(d).__name__}" for d in msg.defects[:10]]
    if any(len(v) > MAX_HEADER for _, v in msg.raw_items()):
        notes.append(f"header(s) over {MAX_HEADER} characters read in part (raw kept)")
    senders = [a for _, a in getaddresses([str(msg.get("From", ""))]) if "@" in a]
    sender_name = next((n for n, a in getaddresses([str(msg.get("From", ""))]) if n), "")
    sender = (senders[0] if senders else envelope_from).strip().lower()
    if "@" not in sender:
        return MessageRejected(digest=digest, reason="no sender address in From or MAIL FROM",
                               mailbox=mailbox, size=len(raw))
    recipient = mailbox.lower() or _first_addr(msg.get("To"))
    if not mailbox and recipient:  # in-process callers only: SMTP and HTTP name the mailbox
        notes.append("no envelope recipient: mailbox taken from the To header")
    if "@" not in recipient:
        return MessageRejected(digest=digest, reason="no recipient mailbox", mailbox=mailbox,
                               size=len(raw))
    own_id, id_header = own_message_id(msg)
    # cleaned before use: what is derived from them (auto, reply) is clean, and junk does
    # not push text past MAX_TEXT
    subject = " ".join(clean(str(msg.get("Subject", "")), tally).split())[:MAX_TEXT // 100]
    date = None
    try:
        date = parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        notes.append("unparseable Date header")
    if date is not None and date.tzinfo is None:
        date = None
    body, content_type = body_of(msg)
    body = clean(body, tally)
    parts = extract(body, content_type)
    text = html_to_text(body) if content_type == "text/html" else body
    if len(text) > MAX_TEXT:
        notes.append(f"body truncated to {MAX_TEXT} characters (raw kept)")
    attachments = tuple(
        Attachment(
            name=(part.get_filename() or "")[:255],
            content_type=part.get_content_type()[:255],
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for part in itertools.islice(msg.iter_attachments(), MAX_ATTACHMENTS + 1)
        for data in [_payload(part)]
    )
    if len(attachments) > MAX_ATTACHMENTS:
        attachments = attachments[:MAX_ATTACHMENTS]
        notes.append(f"only the first {MAX_ATTACHMENTS} attachments listed (raw kept)")
    content = content_digest(sender, _raw_value(msg, "date"), subject, id_header, text,
                             attachments)
    if own_id is None:
        notes.append(f"malformed Message-ID {id_header[:80]!r}; synthesised from the content"
                     if id_header else "no Message-ID; synthesised from the content")
    return MessageReceived(
        message_id=own_id or synthesised_id(content),
        digest=digest,
        mailbox=recipient,
        sender=sender,
        sender_name=sender_name[:200],
        to=_addrs(_values(msg, "To")),
        cc=_addrs(_values(msg, "Cc")),
        subject=subject,
        date=date,
        in_reply_to=message_ids(msg.get("In-Reply-To")),
        references=message_ids(msg.get("References")),
        text=text[:MAX_TEXT],
        reply=parts.reply[:MAX_TEXT],
        auto=auto_reason(msg, subject, sender) or autoreply.detect(parts.reply or text, subject),
        attachments=attachments,
        size=len(raw),
        notes=tuple(notes),
        content_digest=content,
        sender_auth=sender_auth(map(str, msg.get_all("Authentication-Results", [])), sender,
                                trusted),
    )


def _fit(event: MessageReceived) -> MessageReceived:
    """Shorten text and reply until the event encodes to at most MAX_EVENT_BYTES."""
    text, reply, fitted = event.text, event.reply, event
    while len(msgspec.json.encode(fitted)) > MAX_EVENT_BYTES and (text or reply):
        text, reply = text[: len(text) // 2], reply[: len(reply) // 2]
        fitted = msgspec.structs.replace(event, text=text, reply=reply, notes=(
            *event.notes, f"text shortened to {len(text)} characters to fit one event"))
    return fitted


def _values(msg: EmailMessage, name: str) -> list[object]:
    """The first MAX_ADDR_HEADERS values of a header (get_all parses every one)."""
    found = (msg.policy.header_fetch_parse(k, v) for k, v in msg.raw_items()
             if k.lower() == name.lower())
    return list(itertools.islice(found, MAX_ADDR_HEADERS))


def _payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _addrs(values: list[object]) -> tuple[str, ...]:
    return tuple(a.lower() for _, a in getaddresses([str(v) for v in values]) if "@" in a)[:50]


def _first_addr(value: object) -> str:
    found = _addrs([value]) if value else ()
    return found[0] if found else ""
