"""Inbound-mail provider webhooks turned back into RFC 5322 bytes, so intake has one path."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parsedate_to_datetime

import msgspec


class _Address(msgspec.Struct, frozen=True):
    Email: str = ""
    Name: str | None = None


class _Header(msgspec.Struct, frozen=True):
    Name: str
    Value: str | None = None


class _Attachment(msgspec.Struct, frozen=True):
    Name: str | None = None
    Content: str = ""
    ContentType: str | None = None
    ContentID: str | None = None


class _Postmark(msgspec.Struct, frozen=True):
    """The fields of Postmark's inbound webhook that make up the mail; others are ignored."""

    From: str | None = None
    FromName: str | None = None
    FromFull: _Address | None = None
    To: str | None = None
    ToFull: list[_Address] | None = None
    Cc: str | None = None
    CcFull: list[_Address] | None = None
    ReplyTo: str | None = None
    OriginalRecipient: str | None = None
    Subject: str | None = None
    MessageID: str | None = None
    Date: str | None = None
    TextBody: str | None = None
    HtmlBody: str | None = None
    Headers: list[_Header] | None = None
    Attachments: list[_Attachment] | None = None


_decoder = msgspec.json.Decoder(_Postmark)
# Set from the top-level fields or by the MIME structure we build, never copied from Headers.
_OWN = {"from", "to", "cc", "reply-to", "subject", "date", "delivered-to", "mime-version",
        "content-type", "content-transfer-encoding", "content-disposition"}
_FIELD_NAME = re.compile(r"^[!-9;-~]{1,200}$")  # RFC 5322 ftext
_COLON_ZONE = re.compile(r"([+-]\d{2}):(\d{2})\s*$")


def postmark_to_mime(payload: bytes) -> bytes:
    """Postmark inbound webhook JSON -> RFC 5322 bytes; ValueError when the JSON is malformed.

    The output is deterministic (same JSON, same bytes), so a retried webhook is a duplicate.
    """
    return postmark_mail(payload)[0]


def postmark_mail(payload: bytes) -> tuple[bytes, str]:
    """`postmark_to_mime` and the envelope recipient (OriginalRecipient, "" if absent)."""
    try:
        post = _decoder.decode(payload)
    except msgspec.ValidationError as exc:  # (a subclass of DecodeError)
        raise ValueError(f"malformed Postmark inbound JSON: wrong shape: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed Postmark inbound JSON: {exc}") from None
    sender = _address(post.FromFull) or post.From or ""
    if "@" not in sender:
        raise ValueError("Postmark inbound JSON has no sender (From/FromFull)")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _one_line(sender)
    _set(msg, "To", ", ".join(filter(None, map(_address, post.ToFull or []))) or post.To)
    _set(msg, "Cc", ", ".join(filter(None, map(_address, post.CcFull or []))) or post.Cc)
    _set(msg, "Reply-To", post.ReplyTo)
    _set(msg, "Delivered-To", post.OriginalRecipient)
    _set(msg, "Subject", post.Subject)
    _set(msg, "Date", _date(post.Date))
    headers = {h.Name.lower() for h in post.Headers or []}
    for header in post.Headers or []:
        if header.Name.lower() not in _OWN and _FIELD_NAME.match(header.Name):
            with contextlib.suppress(ValueError):  # e.g. a second Message-ID: first one wins
                _set(msg, header.Name, header.Value)
    if "message-id" not in headers and post.MessageID:
        # Postmark's own id is stable across webhook retries, so intake still dedupes
        msg["Message-ID"] = f"<{_one_line(post.MessageID)}@inbound.postmarkapp.com>"
    _body(msg, post)
    salt = hashlib.sha256(payload).hexdigest()[:24]
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_tidydesk_{salt}_{i}")
        if part is not msg:
            del part["MIME-Version"]
    return msg.as_bytes(), _one_line(post.OriginalRecipient or "")


def _body(msg: EmailMessage, post: _Postmark) -> None:
    text, html = post.TextBody or "", post.HtmlBody or ""
    if text or not html:
        msg.set_content(text, cte="quoted-printable")
    if html:
        if text:
            msg.add_alternative(html, subtype="html", cte="quoted-printable")
        else:
            msg.set_content(html, subtype="html", cte="quoted-printable")
    for i, att in enumerate(post.Attachments or []):
        try:
            data = base64.b64decode(att.Content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"attachment {i} {att.Name or ''!r}: Content is not base64: {exc}"
                             ) from None
        maintype, _, subtype = (att.ContentType or "").strip().lower().partition("/")
        if not (maintype and subtype) or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        cid = f"<{att.ContentID.strip('<>')}>" if att.ContentID else None
        msg.add_attachment(data, maintype=maintype, subtype=subtype, cid=cid,
                           filename=_one_line(att.Name or f"attachment-{i}"))


def _address(addr: _Address | None) -> str:
    if addr is None or not addr.Email:
        return ""
    return formataddr((_one_line(addr.Name or ""), _one_line(addr.Email)))


def _date(value: str | None) -> str | None:
    """Postmark passes the sender's Date as it was, sometimes with a `-04:00` zone."""
    if not value:
        return None
    fixed = _COLON_ZONE.sub(r"\1\2", value.strip())
    try:
        parsed = parsedate_to_datetime(fixed)
    except (TypeError, ValueError):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None  # the stdlib would write an empty Date header
    return format_datetime(parsed) if parsed.tzinfo else None


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _set(msg: EmailMessage, name: str, value: str | None) -> None:
    if value and value.strip():
        msg[name] = _one_line(value)
