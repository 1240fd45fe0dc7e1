"""`tidydesk thread --mbox FILE`: the threading engine over an mbox, no bus, no database.

Like `tidydesk.classify`, a composition root: it parses with ingest and threads with threading,
so that the threading service itself never imports ingest."""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import os
import re
import sys
from datetime import UTC, datetime

import msgspec

from tidydesk.common.events import MessageReceived
from tidydesk.common.memory import InMemoryEventStore, InMemoryIndex
from tidydesk.common.store import message_key, unlink
from tidydesk.ingest.parse import parse
from tidydesk.threading.engine import Options, Threader

_OBFUSCATED = re.compile(r"^\s*([\w.+-]+) at ([\w-]+(?:\.[\w-]+)+)\s*(?:\((.*)\))?\s*$")


class Line(msgspec.Struct):
    message_id: str | None
    ticket: str | None
    method: str
    confidence: float
    related: str | None = None
    related_confidence: float = 0.0


async def thread_mbox(path: str, *, use_headers: bool = True, content_join: bool = True,
                      options: Options | None = None) -> list[Line]:
    """One line per message of the mbox, in file order."""
    opts = options or Options(use_headers=use_headers, content_join=content_join)
    threader = Threader(InMemoryEventStore(), InMemoryIndex(), opts)
    out: list[Line] = []
    box = mailbox.mbox(path, create=False)
    try:
        raws = list(box.itervalues())
    finally:
        box.close()
    for raw in raws:
        sender = str(raw.get("From", ""))
        found = _OBFUSCATED.match(sender)
        if found:  # pipermail archives write "andy at example.com (Andy)"
            del raw["From"]
            raw["From"] = f"{found.group(3) or ''} <{found.group(1)}@{found.group(2)}>".strip()
        event = parse(raw.as_bytes(), mailbox="archive@mbox.invalid")  # one archive, one tenant
        if not isinstance(event, MessageReceived):
            out.append(Line(None, None, f"rejected: {event.reason}", 0.0))
            continue
        at = event.date or datetime.now(UTC)
        threaded = await threader.thread(event, at)
        if threaded is None:  # a duplicate Message-ID: report where the first one went
            value = await threader.index.get(message_key(event.mailbox, event.message_id))
            ticket = unlink(value)[0] if value else None
            out.append(Line(event.message_id, ticket, "duplicate", 1.0))
        else:
            out.append(Line(event.message_id, threaded.ticket_id, threaded.method,
                            threaded.confidence, threaded.related, threaded.related_confidence))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidydesk thread", description=__doc__)
    parser.add_argument("--mbox", required=True, help="mbox file to thread")
    parser.add_argument("--ignore-headers", action="store_true",
                        help="drop In-Reply-To/References/subject tokens: content alone")
    parser.add_argument("--headers-only", action="store_true",
                        help="no content joining: headers, reply tokens and [#N] only")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.mbox):
        print(f"tidydesk thread: no such mbox file: {args.mbox}", file=sys.stderr)
        return 2
    try:
        lines = asyncio.run(thread_mbox(args.mbox, use_headers=not args.ignore_headers,
                                        content_join=not args.headers_only))
    except (OSError, mailbox.Error) as exc:
        print(f"tidydesk thread: {exc}", file=sys.stderr)
        return 2
    encoder = msgspec.json.Encoder()
    for line in lines:
        sys.stdout.buffer.write(encoder.encode(line) + b"\n")
    return 0
