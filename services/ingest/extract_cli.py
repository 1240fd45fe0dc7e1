"""``tidydesk extract``: print the newly written text of e-mails (offline, no services).

Usage::

    extract FILE [--content-type text/plain|text/html|message/rfc822]
    extract --jsonl < items.jsonl > replies.jsonl

Without ``--content-type`` a file that parses as a mail with headers is read as
``message/rfc822``, else as an HTML body when it looks like HTML, else as plain text.

``--jsonl`` reads one JSON object a line on stdin, either
``{"id": …, "content_type": …, "path": …}`` or ``{"id": …, "text": …}`` (with an optional
``content_type``), and writes ``{"id": …, "reply": …}`` for each line, in order; a line that
cannot be handled gets ``{"id": …, "error": …}`` instead.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import sys
from pathlib import Path
from typing import Any

import msgspec

from tidydesk.ingest.extract import body_of, decode_bytes, extract

__all__ = ["main", "read_body", "reply_of_bytes"]

CONTENT_TYPES = ("text/plain", "text/html", "message/rfc822")

_HEADER_LINE = re.compile(rb"^[!-9;-~]+:[ \t]?\S", re.ASCII)
_MAIL_HEADERS = frozenset(
    {"from", "to", "subject", "date", "message-id", "mime-version", "content-type", "received"}
)
_HTML_HINT = re.compile(r"<\s*(?:html|body|div|p|br|table|span|blockquote)\b", re.I)


def _looks_like_mail(data: bytes) -> bool:
    """Does ``data`` start with an RFC 5322 header block naming at least two mail headers?"""
    head = data.lstrip(b"\r\n")[:8192]
    if not _HEADER_LINE.match(head):
        return False
    names: set[str] = set()
    for line in head.splitlines():
        if not line.strip():
            break
        if line[:1] in (b" ", b"\t"):
            continue
        m = _HEADER_LINE.match(line)
        if not m:
            return False
        names.add(line.split(b":", 1)[0].decode("ascii", "replace").lower())
    return len(names & _MAIL_HEADERS) >= 2


def read_body(data: bytes, content_type: str | None = None) -> tuple[str, str]:
    """(text, content_type) of raw input bytes: a whole message or a plain/HTML body."""
    ctype = content_type
    if ctype is None:
        ctype = "message/rfc822" if _looks_like_mail(data) else None
    if ctype == "message/rfc822":
        msg = email.message_from_bytes(data, policy=email.policy.default)
        return body_of(msg)
    text = decode_bytes(data)
    if ctype is None:
        ctype = "text/html" if _HTML_HINT.search(text[:4096]) else "text/plain"
    if ctype not in ("text/plain", "text/html"):
        raise ValueError(f"unsupported content_type {ctype!r}")
    return text, ctype


def reply_of_bytes(data: bytes, content_type: str | None = None) -> str:
    text, ctype = read_body(data, content_type)
    return extract(text, ctype).reply


def _one(item: Any) -> dict[str, str]:
    if not isinstance(item, dict):
        raise ValueError("line is not a JSON object")
    ident = item.get("id")
    if not isinstance(ident, str):
        raise ValueError("missing string field 'id'")
    ctype = item.get("content_type")
    if ctype is not None and ctype not in CONTENT_TYPES:
        raise ValueError(f"unsupported content_type {ctype!r}")
    if "text" in item:
        text = item["text"]
        if not isinstance(text, str):
            raise ValueError("field 'text' is not a string")
        if ctype == "message/rfc822":
            return {"id": ident, "reply": reply_of_bytes(text.encode("utf-8"), ctype)}
        return {"id": ident, "reply": extract(text, ctype or "text/plain").reply}
    path = item.get("path")
    if not isinstance(path, str):
        raise ValueError("need a string field 'text' or 'path'")
    return {"id": ident, "reply": reply_of_bytes(Path(path).read_bytes(), ctype)}


def _jsonl(stdin: Any, stdout: Any) -> int:
    enc = msgspec.json.Encoder()
    for line in stdin:
        if not line.strip():
            continue
        ident: Any = None
        try:
            item = msgspec.json.decode(line)
            if isinstance(item, dict):
                ident = item.get("id")
            out: dict[str, Any] = _one(item)
        except Exception as e:  # a bad line is reported, never fatal
            out = {"id": ident, "error": f"{type(e).__name__}: {e}"}
        stdout.write(enc.encode(out).decode("utf-8") + "\n")
        stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="tidydesk extract", description="Print the newly written text of an e-mail."
    )
    ap.add_argument("file", nargs="?", help="a .eml file or a plain/HTML body")
    ap.add_argument("--content-type", choices=CONTENT_TYPES, default=None)
    ap.add_argument("--jsonl", action="store_true", help="JSON lines on stdin -> stdout")
    args = ap.parse_args(argv)
    if args.jsonl:
        return _jsonl(sys.stdin, sys.stdout)
    if not args.file:
        ap.error("FILE is required unless --jsonl is given")
    try:
        data = Path(args.file).read_bytes()
        reply = reply_of_bytes(data, args.content_type)
    except (OSError, ValueError) as e:
        print(f"extract: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(reply + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
