"""New-topic ("split") detection: TIAGE topic boundaries and the helpdesk scenarios, before/after.

Usage::

    python eval/topics.py [--data tests/data]

TIAGE (``tests/data/topics/tiage.jsonl``, MIT): every utterance after the first is a follow-up;
the earlier utterances of its gold segment are the ticket. "New topic" = the policy answers
``split``. Train + dev (400 dialogues) is the development data the threshold was calibrated on;
test (100) is held out: only its figures are looked at, never its errors. The policy is run as
if the reply came 20 days after the close (content alone decides, ``topic.SPLIT_SCORE``) and 60
days after (the lower bar for old tickets).

Scenarios (``tests/data/scenarios/dev.jsonl``, case A): split precision / recall per language,
with both error kinds: a real follow-up (gold ``reopen``) split off its ticket, and a new topic
(gold ``split``) left in the old ticket. Held out: ``int(sha256(id)[:8], 16) % 5 == 0`` (the
rule other evals use; eval/split.py did not exist when this was written).

"before" is the content-aware policy of commit 6812d01 (marker, order-id and overlap rules),
rebuilt here from that commit's ``services/policy/topic.py``; both sides share today's ``ack``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from tidydesk.classify import _follow_up, _ticket  # noqa: E402
from tidydesk.policy import ack, topic  # noqa: E402
from tidydesk.policy.base import FollowUp, PastMessage, TicketView  # noqa: E402
from tidydesk.policy.content_aware import ContentAware  # noqa: E402

BEFORE_COMMIT = "6812d01"
Predict = Callable[[TicketView, FollowUp], str]


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def held_out(item_id: str) -> bool:
    """Fixed held-out fifth of the scenarios."""
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) % 5 == 0


def _before() -> Predict | None:
    """The previous content-aware split rule, on the previous topic module (from git)."""
    try:
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE_COMMIT}:services/policy/topic.py"],
            capture_output=True, check=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    old = types.ModuleType("topic_before")
    sys.modules[old.__name__] = old  # dataclasses look their module up
    exec(compile(src, "topic_before.py", "exec"), old.__dict__)

    def predict(ticket: TicketView, message: FollowUp) -> str:
        reply = message.reply if message.reply.strip() else message.body
        if message.auto or ack.detect(reply, message.sender).is_ack:
            return "acknowledge"
        text = old.ticket_text(ticket.subject, [(m.author, m.text) for m in ticket.messages])
        ev = old.compare(reply, text)
        age = ticket.closed_days_ago
        if ev.shared_ids:
            return "reopen"
        if ev.new_topic_marker or (ev.new_ids and ev.ticket_has_ids and ev.overlap < 0.2):
            return "split"
        if age is not None and ev.units >= 4 and not ev.back_reference:
            if age > 30 and ev.overlap < 0.2:
                return "split"
            if age > 14 and ev.overlap < 0.1 and not ev.continuation_marker:
                return "split"
        return "reopen"

    return predict


def _after() -> Predict:
    policy = ContentAware()
    return lambda ticket, message: policy.decide(ticket, message).verdict


def _without_markers(predict: Predict) -> Predict:
    """The same policy on replies whose new-topic markers ("separately", "별개로") are deleted."""

    def run(ticket: TicketView, message: FollowUp) -> str:
        strip = lambda text: topic._NEW_TOPIC.sub(" ", ack.fold(text))  # noqa: E731
        bare = msgspec.structs.replace(message, body=strip(message.body),
                                       reply=strip(message.reply))
        return predict(ticket, bare)

    return run


def tiage_pairs(rows: list[dict[str, Any]], sets: tuple[str, ...]
                ) -> Iterator[tuple[list[str], str, bool]]:
    """(segment so far, next utterance, starts a new segment) for each utterance but the first."""
    for row in rows:
        if row["set"] not in sets:
            continue
        utts, bounds, start = row["utterances"], set(row["boundaries"]), 0
        for i in range(1, len(utts)):
            yield utts[start:i], utts[i], i in bounds
            if i in bounds:
                start = i


def prf(pred: list[bool], gold: list[bool]) -> tuple[float, float, float, int, int, int]:
    """Precision, recall, F1 of the positive class, and tp / fp / fn."""
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0), tp, fp, fn


def tiage_new_topic(predict: Predict, rows: list[dict[str, Any]], sets: tuple[str, ...],
                    days: float) -> tuple[list[bool], list[bool]]:
    """Predicted and gold "new topic" over the TIAGE pairs of `sets`."""
    pred, gold = [], []
    for context, reply, boundary in tiage_pairs(rows, sets):
        ticket = TicketView(
            subject="", status="solved", requester="", closed_days_ago=days,
            messages=tuple(PastMessage(author="customer", text=c) for c in context),
        )
        message = FollowUp(sender="", subject="", body=reply, reply=reply)
        pred.append(predict(ticket, message) == "split")
        gold.append(boundary)
    return pred, gold


def tiage(predictors: dict[str, Predict], rows: list[dict[str, Any]]) -> None:
    print("== TIAGE: new topic at utterance boundaries (policy answers 'split')")
    print(f"{'set':24} {'days':>4} {'policy':7} {'precision':>9} {'recall':>6} {'F1':>6}"
          f" {'tp':>5} {'fp':>5} {'fn':>5}")
    for label, sets in (("dev (train+dev, 400)", ("train", "dev")), ("held-out (test, 100)",
                                                                      ("test",))):
        for days in (20.0, 60.0):
            for name, predict in predictors.items():
                p, r, f, tp, fp, fn = prf(*tiage_new_topic(predict, rows, sets, days))
                print(f"{label:24} {days:4.0f} {name:7} {p:9.3f} {r:6.3f} {f:6.3f}"
                      f" {tp:5d} {fp:5d} {fn:5d}")


def scenarios(predictors: dict[str, Predict], rows: list[dict[str, Any]]) -> None:
    predictors = {**predictors, **{f"{k}-mk": _without_markers(v) for k, v in predictors.items()}}
    case_a = [r for r in rows if r["case"] == "A"]
    prepared = [(r, _ticket(r["ticket"]), _follow_up(r["inbound"])) for r in case_a]
    print("\n== Scenarios case A: split per language (P / R over all case A replies;"
          " reopen->split = real follow-up split off, split->reopen = new topic kept;"
          " -mk: new-topic markers deleted from the reply)")
    for part, keep in (("dev", False), ("held-out", True)):
        items = [x for x in prepared if held_out(x[0]["id"]) == keep]
        print(f"  {part} ({len(items)} replies)")
        for name, predict in predictors.items():
            by_lang: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for r, ticket, message in items:
                pair = (r["expected"], predict(ticket, message))
                by_lang[r["lang"]].append(pair)
                by_lang["all"].append(pair)
            cells = []
            for lang in ("ko", "ja", "zh", "en", "de", "fr", "es", "all"):  # split-bearing only
                pairs = by_lang.get(lang)
                if not pairs:
                    continue
                n_split = sum(g == "split" for g, _ in pairs)
                hit = sum(g == p == "split" for g, p in pairs)
                called = sum(p == "split" for _, p in pairs)
                lost = sum(g == "reopen" and p == "split" for g, p in pairs)
                kept = sum(g == "split" and p == "reopen" for g, p in pairs)
                prec = f"{hit / called:.2f}" if called else "-"
                rec = f"{hit / n_split:.2f}" if n_split else "-"
                cells.append(f"{lang} P {prec} R {rec} ({hit}/{n_split}; r->s {lost}, s->r {kept})")
            print(f"    {name:9} " + "\n              ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data")
    args = parser.parse_args(argv)
    predictors: dict[str, Predict] = {}
    before = _before()
    if before is None:
        print(f"(before: commit {BEFORE_COMMIT} not readable with git; showing 'after' only)")
    else:
        predictors["before"] = before
    predictors["after"] = _after()
    tiage(predictors, _load(args.data / "topics" / "tiage.jsonl"))
    scenarios(predictors, _load(args.data / "scenarios" / "dev.jsonl"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
