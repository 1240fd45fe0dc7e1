"""Offline evaluation of fresh-mail threading (``tidydesk.threading.similarity``).

Usage::

    python eval/fresh_mail.py [SCENARIOS ...] [--threshold T] [--verbose] [--case-a]

SCENARIOS defaults to ``tests/data/scenarios/dev.jsonl`` (``--all`` adds the hand-written sets
``tests/data/threading/handwritten*.jsonl``, same schema). Scores the case-B items (a fresh mail
from a customer with an open ticket; label ``thread`` or ``new``): accuracy per language,
wrong-thread vs wrong-new counts and the confusion matrix, in one run. ``--verbose`` prints
every item with its confidence and reasons. ``--case-a`` also runs the matcher on case-A
``reopen``/``split`` items as a secondary check (reopen ~ thread, split ~ new), using the reply
extracted from the quoted inbound body.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tidydesk.policy.base import PastMessage, TicketView  # noqa: E402
from tidydesk.threading.similarity import DEFAULT_THRESHOLD, judge  # noqa: E402

DEFAULT_SCENARIOS = ROOT / "tests" / "data" / "scenarios" / "dev.jsonl"
LABELS = ("thread", "new")


def ticket_of(item: dict[str, Any]) -> TicketView:
    t = item["ticket"]
    return TicketView(
        subject=t["subject"], status=t["status"], requester=t["requester"],
        messages=tuple(PastMessage(author=m["from"], text=m["text"]) for m in t["messages"]),
        closed_days_ago=t.get("closed_days_ago"),
    )


def load(path: Path, case: str = "B") -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    return [i for i in items if i["case"] == case]


def predict(item: dict[str, Any], threshold: float, reply: str | None = None,
            subject: str | None = None) -> tuple[str, float, list[str]]:
    ib = item["inbound"]
    j = judge(ticket_of(item), ib["from"], ib["subject"] if subject is None else subject,
              ib["text"] if reply is None else reply)
    return ("thread" if j.joins(threshold) else "new"), j.confidence, j.reasons


def report(rows: list[tuple[dict[str, Any], str, float, list[str]]], gold_of: dict[str, str],
           title: str, verbose: bool) -> int:
    per_lang: dict[str, Counter[str]] = defaultdict(Counter)
    conf_m: Counter[tuple[str, str]] = Counter()
    wrong: list[str] = []
    for item, pred, conf, reasons in rows:
        gold = gold_of[item["expected"]]
        ok = pred == gold
        per_lang[item["lang"]]["n"] += 1
        per_lang[item["lang"]]["ok"] += ok
        conf_m[(gold, pred)] += 1
        if not ok:
            wrong.append(item["id"])
        if verbose or not ok:
            mark = "  " if ok else "XX"
            print(f"{mark} {item['id']:<12} gold={gold:<6} pred={pred:<6} conf={conf:.2f}  "
                  + "; ".join(reasons))
    n = sum(c["n"] for c in per_lang.values())
    ok_all = sum(c["ok"] for c in per_lang.values())
    print(f"\n== {title}: {ok_all}/{n} = {ok_all / max(n, 1):.1%}")
    for lang in sorted(per_lang, key=lambda k: (-per_lang[k]["n"], k)):
        c = per_lang[lang]
        print(f"   {lang:<3} {c['ok']:>3}/{c['n']:<3} {c['ok'] / c['n']:.1%}")
    wt, wn = conf_m[("new", "thread")], conf_m[("thread", "new")]
    print(f"   wrong thread (new glued into ticket): {wt}   wrong new (issue split off): {wn}")
    print("   confusion (rows gold, cols predicted):")
    print(f"   {'':<8}{'thread':>8}{'new':>8}")
    for g in LABELS:
        print(f"   {g:<8}{conf_m[(g, 'thread')]:>8}{conf_m[(g, 'new')]:>8}")
    if wrong:
        print("   wrong: " + " ".join(wrong))
    return len(wrong)


def run(path: Path, threshold: float, verbose: bool, case_a: bool) -> None:
    print(f"threading eval: {path} (threshold {threshold:.2f})")
    items = load(path, "B")
    rows = [(i, *predict(i, threshold)) for i in items]
    report(rows, {"thread": "thread", "new": "new"}, "case B (fresh mail, open ticket)", verbose)
    if case_a:
        from tidydesk.ingest.extract import extract

        items_a = [i for i in load(path, "A") if i["expected"] in ("reopen", "split")]
        rows = []
        for i in items_a:
            # the reply subject is "Re: <ticket subject>": leave it out, it proves nothing here
            reply = extract(i["inbound"]["text"]).reply
            rows.append((i, *predict(i, threshold, reply, subject="")))
        if rows:
            report(rows, {"reopen": "thread", "split": "new"},
                   "case A reopen/split as thread/new (secondary)", verbose)
    print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", type=Path)
    ap.add_argument("--all", action="store_true", help="also the hand-written sets")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--case-a", action="store_true")
    a = ap.parse_args(argv)
    paths = list(a.scenarios) or [DEFAULT_SCENARIOS]
    if a.all:
        paths += sorted((ROOT / "tests" / "data" / "threading").glob("handwritten*.jsonl"))
    for path in paths:
        run(path, a.threshold, a.verbose, a.case_a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
