"""Raw RFC 5322 bytes -> a `message.received` (or a `message.rejected` with a reason). Pure."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime

from services.common.events import Attachment, MessageReceived, MessageRejected
from services.ingest.extract import body_of, extract, html_to_text

MAX_TEXT = 200_000  # characters kept per body field; an event must stay far below 1 MiB
MAX_IDS = 100  # nearest References kept; a parent is almost always among the last few
_MSGID = re.compile(r"<([^<>\s]{1,500})>")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|abwesenheit|"
    r"automatische antwort|r[ée]ponse automatique|absence|respuesta autom[aá]tica|"
    r"fuera de la oficina|resposta autom[aá]tica|risposta automatica|자동\s*응답|부재|"
    r"自動応答|自動返信|不在|自动回复|自動回覆|undeliverable|delivery status notification|"
    r"mail delivery (failed|subsystem))",
    re.IGNORECASE,
)


def intake_key(message_id: str | None, raw: bytes) -> str:
    """Dedupe key: the Message-ID when there is one, else the bytes."""
    source = message_id.encode("utf-8", "surrogatepass") if message_id else raw
    return hashlib.sha256(source).hexdigest()


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


def parse(raw: bytes, *, mailbox: str = "", envelope_from: str = ""
          ) -> MessageReceived | MessageRejected:
    """Parse a mail; anything unusable becomes a rejection with a reason, never an exception."""
    digest = hashlib.sha256(raw).hexdigest()
    try:
        return _parse(raw, digest, mailbox, envelope_from)
    except Exception as exc:  # the stdlib parser can raise almost anything on hostile input
        return MessageRejected(digest=digest, reason=f"unparseable mail: {type(exc).__name__}: "
                               f"{str(exc)[:200]}", mailbox=mailbox, size=len(raw))


def _parse(raw: bytes, digest: str, mailbox: str, envelope_from: str
           ) -> MessageReceived | MessageRejected:
    if not raw.strip():
        return MessageRejected(digest=digest, reason="empty message", mailbox=mailbox, size=0)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    notes: list[str] = [f"defect: {type(d).__name__}" for d in msg.defects[:10]]
    senders = [a for _, a in getaddresses([str(msg.get("From", ""))]) if "@" in a]
    sender_name = next((n for n, a in getaddresses([str(msg.get("From", ""))]) if n), "")
    sender = (senders[0] if senders else envelope_from).strip().lower()
    if "@" not in sender:
        return MessageRejected(digest=digest, reason="no sender address in From or MAIL FROM",
                               mailbox=mailbox, size=len(raw))
    ids = message_ids(msg.get("Message-ID"))
    message_id = ids[0] if ids else f"{digest[:32]}@tidydesk.invalid"
    if not ids:
        notes.append("no Message-ID; synthesised from the bytes")
    subject = " ".join(str(msg.get("Subject", "")).split())
    date = None
    try:
        date = parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        notes.append("unparseable Date header")
    if date is not None and date.tzinfo is None:
        date = None
    body, content_type = body_of(msg)
    parts = extract(body, content_type)
    text = html_to_text(body) if content_type == "text/html" else body
    if len(text) > MAX_TEXT:
        notes.append(f"body truncated to {MAX_TEXT} characters (raw kept)")
    attachments = tuple(
        Attachment(
            name=part.get_filename() or "",
            content_type=part.get_content_type(),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for part in msg.iter_attachments()
        for data in [_payload(part)]
    )
    return MessageReceived(
        message_id=message_id,
        digest=digest,
        mailbox=mailbox.lower() or _first_addr(msg.get("To")),
        sender=sender,
        sender_name=sender_name,
        to=_addrs(msg.get_all("To", [])),
        cc=_addrs(msg.get_all("Cc", [])),
        subject=subject,
        date=date,
        in_reply_to=message_ids(msg.get("In-Reply-To")),
        references=message_ids(msg.get("References")),
        text=text[:MAX_TEXT],
        reply=parts.reply[:MAX_TEXT],
        auto=auto_reason(msg, subject, sender),
        attachments=attachments,
        size=len(raw),
        notes=tuple(notes),
    )


def _payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _addrs(values: list[object]) -> tuple[str, ...]:
    return tuple(a.lower() for _, a in getaddresses([str(v) for v in values]) if "@" in a)[:50]


def _first_addr(value: object) -> str:
    found = _addrs([value]) if value else ()
    return found[0] if found else ""
