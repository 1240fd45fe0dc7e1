"""Out-of-office detection from text (services/ingest/autoreply): hits and false positives.

Usage::

    python eval/autoreply.py [--show]

Positives: tests/data/autoreply/own_positives.jsonl (written for this project: no public
out-of-office corpus was found). Negatives: our own hard cases, and every real-mail text in
the repo: tests/data/replies/** fixtures, scenarios inbound texts, the follow-up sets'
`email` field and the threading mboxes. Each negative mail is checked as a whole and as its
extracted reply; `--show` prints every false positive.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import sys
from collections.abc import Iterator
from pathlib import Path

from tidydesk.ingest.autoreply import detect
from tidydesk.ingest.extract import body_of, extract

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def jsonl(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def own(name: str) -> Iterator[tuple[str, str]]:
    for r in jsonl(DATA / "autoreply" / f"{name}.jsonl"):
        yield str(r["id"]), str(r["text"])


def replies() -> Iterator[tuple[str, str]]:
    for path in sorted((DATA / "replies").glob("*/fixtures/*.txt")):
        yield str(path.relative_to(DATA)), path.read_text(encoding="utf-8", errors="replace")


def scenarios() -> Iterator[tuple[str, str]]:
    for r in jsonl(DATA / "scenarios" / "dev.jsonl"):
        inbound = r["inbound"]
        assert isinstance(inbound, dict)
        yield str(r["id"]), str(inbound.get("text", ""))


def followups() -> Iterator[tuple[str, str]]:
    for path in sorted((DATA / "followups").glob("*.jsonl")):
        for r in jsonl(path):
            yield f"{path.name}:{r['id']}", str(r.get("email", ""))


def mboxes() -> Iterator[tuple[str, str]]:
    for path in sorted((DATA / "threading").glob("*.mbox")):
        for i, msg in enumerate(mailbox.mbox(path, create=False)):
            yield f"{path.name}:{i}", body_of(msg)[0]


def flagged(text: str) -> str | None:
    """Flagged as a whole mail or as its extracted reply (what intake passes)."""
    return detect(text) or detect(extract(text, "text/plain").reply)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show", action="store_true", help="print every false positive")
    args = ap.parse_args()
    pos = list(own("own_positives"))
    hits = sum(1 for _, t in pos if detect(t))
    print(f"positives (own, {len(pos)}): detected {hits}  recall {hits / len(pos):.1%}")
    sets = {"own hard negatives": own("own_negatives"), "replies fixtures": replies(),
            "scenarios inbound": scenarios(), "followups email": followups(),
            "threading mboxes": mboxes()}
    false = 0
    for name, items in sets.items():
        n = fp = 0
        for cid, text in items:
            n += 1
            why = flagged(text)
            if why:
                fp += 1
                if args.show:
                    print(f"  FP {cid}: {why}")
        false += fp
        print(f"negatives {name:<20} {n:>6} mails  false autos {fp}")
    precision = hits / (hits + false) if hits + false else 0.0
    print(f"precision {precision:.1%} ({hits} true, {false} false)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
