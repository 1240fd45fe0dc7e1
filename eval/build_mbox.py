"""Build a realistic threaded mbox from the TIAGE dialogues, for the threading partition measure.

Usage::

    python eval/build_mbox.py [--source PATH] [--out PATH] [--sets test] [--limit N]

Each dialogue becomes one support conversation: utterance 0 is the customer's first mail, then
support and customer alternate. Every message carries real ``Message-ID``, ``In-Reply-To`` and
``References`` headers (References trimmed the usual way to the root plus the nearest
ancestors), ``Re:`` on replies (``RE:`` / ``AW:`` / ``Re: Re:`` from some clients), a quote of
the message answered (``On ... wrote:`` + ``> `` lines), and a deterministic date. Conversations
overlap in time and the mbox is in date order, as a mailbox really is.

Gold labels ride along in ``X-Tidydesk-*`` headers that a threader must ignore:
``X-Tidydesk-Conversation`` (the dialogue id: the partition to reproduce),
``X-Tidydesk-Turn`` (0-based index in the dialogue) and ``X-Tidydesk-Topic-Segment`` (the
0-based TIAGE topic segment of the utterance). The same mapping is written next to the mbox as
``<out>.threads.jsonl`` (one ``{"message_id", "conversation", "turn", "segment"}`` per line).

Source: ``/work/shared/data/topics/tiage.jsonl`` (TIAGE, Xie et al. 2021, MIT, see
``LICENSE-tiage.txt``, copied next to the output). The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path("/work/shared/data/topics/tiage.jsonl")
DEFAULT_OUT = ROOT / "tests" / "data" / "threading" / "dialogues.mbox"
LICENSE_NAME = "LICENSE-tiage.txt"

SUPPORT = ("Brightdesk Support", "support@brightdesk.example")
EPOCH = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
REFERENCES_KEEP = 6  # root + the nearest ancestors, like common clients trim long chains

FIRST = ["Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery",
         "Quinn", "Robin", "Drew", "Charlie", "Dana", "Emery", "Frankie", "Harper", "Kai"]
LAST = ["Miller", "Garcia", "Nguyen", "Okafor", "Schmidt", "Rossi", "Kowalski", "Tanaka",
        "Silva", "Dubois", "Novak", "Jensen", "Murphy", "Haddad", "Larsen", "Costa"]
AGENTS = ["Mia", "Leo", "Nora", "Omar", "Ines", "Theo"]


def _h(*parts: object) -> int:
    """A stable integer from the parts (sha256), for every deterministic choice."""
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def detok(s: str) -> str:
    """Undo the corpus tokenisation ("hey ! i am . . ." -> "Hey! I am...")."""
    s = re.sub(r"\s+([.,!?;:%)])", r"\1", s)
    s = re.sub(r"([(])\s+", r"\1", s)
    s = re.sub(r"\s+n't\b", "n't", s)
    s = re.sub(r"\s+'(s|m|re|ve|ll|d)\b", r"'\1", s)
    s = re.sub(r"\.\s?\.\s?\.", "...", s)
    s = re.sub(r"\bi\b", "I", s)
    s = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), s)
    return s.strip()


def subject_of(first: str) -> str:
    words = re.sub(r"[^\w' -]", " ", detok(first)).split()
    subj = " ".join(words[:7]) or "Question"
    return subj[0].upper() + subj[1:]


@dataclass(frozen=True)
class Mail:
    date: datetime
    msg: EmailMessage
    message_id: str
    conversation: str
    turn: int
    segment: int


def conversation(index: int, d: dict[str, Any]) -> list[Mail]:
    did = str(d["id"])
    h = _h(did)
    name = f"{FIRST[h % len(FIRST)]} {LAST[(h // 7) % len(LAST)]}"
    addr = f"{name.split()[0].lower()}.{name.split()[1].lower()}{h % 97}@mail.example"
    agent = AGENTS[(h // 13) % len(AGENTS)]
    subject = subject_of(d["utterances"][0])
    bounds = set(d.get("boundaries", []))
    # conversations start every ~5 hours and overlap; replies come 20 min .. 2 days later
    when = EPOCH + timedelta(minutes=index * 293 + h % 97)
    ids: list[str] = []
    out: list[Mail] = []
    segment = 0
    prev_text, prev_from, prev_date = "", "", when
    for turn, utt in enumerate(d["utterances"]):
        if turn in bounds:
            segment += 1
        customer = turn % 2 == 0
        if turn:
            when = when + timedelta(minutes=20 + _h(did, turn) % 2880)
        mid = f"<{did}.{turn}.{_h(did, turn, 'id') % 16**8:08x}@" + (
            "mail.example>" if customer else "brightdesk.example>")
        msg = EmailMessage()
        sender = (name, addr) if customer else SUPPORT
        rcpt = SUPPORT if customer else (name, addr)
        msg["From"] = f"{sender[0]} <{sender[1]}>"
        msg["To"] = f"{rcpt[0]} <{rcpt[1]}>"
        if turn == 0:
            msg["Subject"] = subject
        else:
            style = _h(did, turn, "re") % 10
            prefix = "RE: " if style == 0 else "AW: " if style == 1 else "Re: "
            tag = f"[Brightdesk #{1000 + index}] " if not customer or style == 2 else ""
            msg["Subject"] = f"{prefix}{tag}{subject}"
        msg["Date"] = format_datetime(when)
        msg["Message-ID"] = mid
        if ids:
            msg["In-Reply-To"] = ids[-1]
            refs = ids if len(ids) <= REFERENCES_KEEP else [ids[0], *ids[-(REFERENCES_KEEP - 1):]]
            msg["References"] = " ".join(refs)
        msg["X-Tidydesk-Conversation"] = did
        msg["X-Tidydesk-Turn"] = str(turn)
        msg["X-Tidydesk-Topic-Segment"] = str(segment)
        text = detok(utt)
        body = [text, ""]
        if not customer:
            body += ["Best regards,", f"{agent} - Brightdesk Support", ""]
        if turn:
            body.append(f"On {format_datetime(prev_date)}, {prev_from} wrote:")
            body += ["> " + ln for ln in textwrap.wrap(prev_text, 72)] or [">"]
        msg.set_content("\n".join(body) + "\n", charset="utf-8", cte="8bit")
        out.append(Mail(when, msg, mid, did, turn, segment))
        ids.append(mid)
        prev_text, prev_from, prev_date = text, msg["From"], when
    return out


def mbox_bytes(mails: list[Mail]) -> bytes:
    """mboxrd: 'From ' separator lines, '>From ' escaping, blank line between messages."""
    chunks: list[bytes] = []
    for m in mails:
        addr = re.sub(r".*<|>.*", "", str(m.msg["From"]))
        d = m.date
        sep = f"From {addr} {d:%a %b} {d.day:2d} {d:%H:%M:%S %Y}\n".encode()
        raw = m.msg.as_bytes(policy=SMTP.clone(linesep="\n"))
        raw = re.sub(rb"(?m)^(>*From )", rb">\1", raw)
        chunks.append(sep + raw.rstrip(b"\n") + b"\n\n")
    return b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--sets", default="test", help="TIAGE splits to use (train,dev,test)")
    ap.add_argument("--limit", type=int, default=0, help="at most N dialogues (0 = all)")
    a = ap.parse_args(argv)
    sets = {s.strip() for s in a.sets.split(",") if s.strip()}
    with a.source.open(encoding="utf-8") as f:
        dialogues = [json.loads(line) for line in f if line.strip()]
    chosen = [d for d in dialogues if d.get("set") in sets]
    if a.limit:
        chosen = chosen[: a.limit]
    mails = [m for i, d in enumerate(chosen) for m in conversation(i, d)]
    mails.sort(key=lambda m: (m.date, m.conversation, m.turn))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    data = mbox_bytes(mails)
    a.out.write_bytes(data)
    side = a.out.with_name(a.out.name + ".threads.jsonl")
    with side.open("w", encoding="utf-8", newline="\n") as f:
        for m in mails:
            f.write(json.dumps({"message_id": m.message_id, "conversation": m.conversation,
                                "turn": m.turn, "segment": m.segment}) + "\n")
    lic = a.source.parent / LICENSE_NAME
    if lic.exists():
        shutil.copyfile(lic, a.out.parent / LICENSE_NAME)
    print(f"{a.out}: {len(chosen)} conversations, {len(mails)} messages, {len(data):,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
