"""Follow-up policy evaluation: acknowledgement P/R, scenario accuracy, throughput.

Usage::

    python eval/policies.py [--data tests/data] [--policy NAME ...]

Reads only the repository copies: ``tests/data/followups/sgd_dev.jsonl`` (Schema-Guided
Dialogue, CC BY-SA 4.0) and ``tests/data/scenarios/dev.jsonl``. Prints, for every policy:
acknowledgement precision / recall on the SGD ``text`` and on the reply extracted from ``email``
(gray items excluded); scenario accuracy per language for case A (the policy) and case B (the
threading engine, same for every policy) with confusion matrices; and decisions per second on
one core (``decide`` only, replies pre-extracted).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from services.policy.base import FollowUp, Policy, TicketView
from services.policy.classify import _follow_up, _threading_match, _ticket, reply_text
from services.policy.registry import POLICIES

ROOT = Path(__file__).resolve().parents[1]

EUROPEAN = ("de", "fr", "es", "pt", "it", "nl")
UNKNOWN = TicketView(subject="", status="solved", requester="")


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _pr(pred: list[bool], gold: list[bool]) -> tuple[float, float, int, int, int]:
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return precision, recall, tp, fp, fn


def sgd(policies: dict[str, Policy], rows: list[dict[str, Any]]) -> None:
    scored = [r for r in rows if r["label"] != "gray"]
    gold = [r["label"] == "ack" for r in scored]
    emails = [reply_text(r["email"]) for r in scored]
    print(f"\n== SGD dev: acknowledgement detection ({len(scored)} items, gray excluded, "
          f"{sum(gold)} ack)")
    print(f"{'policy':15} {'input':6} {'precision':>9} {'recall':>7} {'tp':>5} {'fp':>4} {'fn':>5}")
    for name, policy in policies.items():
        for field, replies in (("text", [r["text"] for r in scored]), ("email", emails)):
            pred = [
                policy.decide(UNKNOWN, FollowUp(sender="", subject="", body=b, reply=b)).verdict
                == "acknowledge"
                for b in replies
            ]
            p, r, tp, fp, fn = _pr(pred, gold)
            print(f"{name:15} {field:6} {p:9.4f} {r:7.4f} {tp:5d} {fp:4d} {fn:5d}")


def _lang_groups(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        groups[it["lang"]].append(it)
        if it["lang"] in EUROPEAN:
            groups["european"].append(it)
        groups["all"].append(it)
    order = ["ko", "ja", "zh", "en", "european", *EUROPEAN, "all"]
    return {k: groups[k] for k in order if groups.get(k)}


def _confusion(pairs: list[tuple[str, str]], labels: list[str]) -> None:
    counts = Counter(pairs)
    print("    gold \\ pred " + "".join(f"{lab:>12}" for lab in labels))
    for g in labels:
        print(f"    {g:12} " + "".join(f"{counts[(g, p)]:12d}" for p in labels))


def scenarios(policies: dict[str, Policy], rows: list[dict[str, Any]]) -> None:
    case_a = [r for r in rows if r["case"] == "A"]
    case_b = [r for r in rows if r["case"] == "B"]
    prepared = [(r, _ticket(r["ticket"]), _follow_up(r["inbound"])) for r in case_a]
    print(f"\n== Scenarios dev: case A ({len(case_a)} replies to solved/closed tickets)")
    for name, policy in policies.items():
        pred = {r["id"]: policy.decide(t, m).verdict for r, t, m in prepared}
        line = []
        for lang, items in _lang_groups(case_a).items():
            ok = sum(pred[i["id"]] == i["expected"] for i in items)
            line.append(f"{lang} {ok}/{len(items)} ({ok / len(items):.0%})")
        print(f"  {name}: " + ", ".join(line))
        _confusion([(r["expected"], pred[r["id"]]) for r in case_a],
                   ["acknowledge", "reopen", "split"])
        wrong = [r["id"] for r in case_a if pred[r["id"]] != r["expected"]]
        if wrong and len(wrong) <= 12:
            print(f"    wrong: {', '.join(wrong)}")

    match = _threading_match()
    print(f"\n== Scenarios dev: case B ({len(case_b)} fresh mails beside an open ticket; "
          "services.threading.similarity)")
    if match is None:
        print("  threading engine unavailable: every item answered 'new'")
    predb: dict[str, str] = {}
    for r in case_b:
        m = _follow_up(r["inbound"])
        same = match(_ticket(r["ticket"]), m.sender, m.subject, m.reply)[0] if match else False
        predb[r["id"]] = "thread" if same else "new"
    line = []
    for lang, items in _lang_groups(case_b).items():
        ok = sum(predb[i["id"]] == i["expected"] for i in items)
        line.append(f"{lang} {ok}/{len(items)} ({ok / len(items):.0%})")
    print("  threading: " + ", ".join(line))
    _confusion([(r["expected"], predb[r["id"]]) for r in case_b], ["thread", "new"])


def throughput(policies: dict[str, Policy], sgd_rows: list[dict[str, Any]],
               scen_rows: list[dict[str, Any]]) -> None:
    """decide() calls per second on one core over a mix of SGD e-mails and scenario replies."""
    work: list[tuple[TicketView, FollowUp]] = [
        (_ticket(r["ticket"]), _follow_up(r["inbound"])) for r in scen_rows if r["case"] == "A"
    ]
    for r in sgd_rows[:3000]:
        body = r["email"]
        work.append((UNKNOWN, FollowUp(sender="", subject="", body=body, reply=reply_text(body))))
    print(f"\n== Throughput: decide() on one core, {len(work)} distinct follow-ups "
          "(SGD e-mails + scenario case A), replies pre-extracted")
    for name, policy in policies.items():
        start = time.process_time()  # CPU time of this single-threaded process
        for ticket, message in work:
            policy.decide(ticket, message)
        rate = len(work) / (time.process_time() - start)
        print(f"  {name:15} {rate:10,.0f} decisions/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data")
    parser.add_argument("--policy", action="append", choices=sorted(POLICIES))
    args = parser.parse_args(argv)
    names = args.policy or list(POLICIES)
    policies = {n: POLICIES[n] for n in names}
    sgd_rows = _load(args.data / "followups" / "sgd_dev.jsonl")
    scen_rows = _load(args.data / "scenarios" / "dev.jsonl")
    print("policies: " + ", ".join(f"{p.name} v{p.version}" for p in policies.values()))
    sgd(policies, sgd_rows)
    scenarios(policies, scen_rows)
    throughput(policies, sgd_rows, scen_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
