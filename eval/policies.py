"""Follow-up policy evaluation: acknowledgement P/R, scenario accuracy, throughput.

Usage::

    python eval/policies.py [--data tests/data] [--policy NAME ...]

Reads only the repository copies in ``tests/data/followups/`` - ``sgd_dev.jsonl``
(Schema-Guided Dialogue, CC BY-SA 4.0, en), ``multiwoz_val.jsonl`` (MultiWOZ 2.1, en) and
``crosswoz_val.jsonl`` (CrossWOZ, zh) - and ``tests/data/scenarios/dev.jsonl``.

Every set is cut by ``eval/split.py`` into a dev part (rules were developed on it) and a fixed
20% held-out part (never read for errors). The acknowledgement table gives, per set, language,
part and input (the bare ``text`` or the reply extracted from the synthetic ``email``; the
scenarios have e-mails only), precision and recall of "acknowledge" and the count of false
acknowledgements - a real request parked on a solved ticket, the worst error. Gray items are
not scored. Then scenario accuracy per language for case A (the policy) and case B (the
threading engine) with confusion matrices, and decisions per second on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval.split import split  # noqa: E402
from tidydesk.classify import (  # noqa: E402
    _follow_up,
    _threading_match,
    _ticket,
    reply_text,
)
from tidydesk.policy.base import FollowUp, Policy, TicketView  # noqa: E402
from tidydesk.policy.registry import POLICIES  # noqa: E402

EUROPEAN = ("de", "fr", "es", "pt", "it", "nl")
UNKNOWN = TicketView(subject="", status="solved", requester="")


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclass(frozen=True, slots=True)
class AckScore:
    """Counts of one acknowledgement measurement."""

    n: int
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")


def ack_score(pred: list[bool], gold: list[bool]) -> AckScore:
    """Score predicted acknowledgements against gold labels."""
    pairs = list(zip(pred, gold, strict=True))
    return AckScore(
        n=len(pairs),
        tp=sum(p and g for p, g in pairs),
        fp=sum(p and not g for p, g in pairs),
        fn=sum(g and not p for p, g in pairs),
    )


def acknowledges(policy: Policy, reply: str) -> bool:
    """The policy's verdict on a bare reply to a solved ticket of unknown content."""
    message = FollowUp(sender="", subject="", body=reply, reply=reply)
    return policy.decide(UNKNOWN, message).verdict == "acknowledge"


def followup_score(policy: Policy, rows: list[dict[str, Any]], field: str) -> AckScore:
    """Acknowledgement score on a followups set; field ``text`` or ``email`` (reply extracted)."""
    scored = [r for r in rows if r["label"] != "gray"]
    replies = [r["text"] if field == "text" else reply_text(r["email"]) for r in scored]
    return ack_score([acknowledges(policy, b) for b in replies],
                     [r["label"] == "ack" for r in scored])


FOLLOWUP_SETS = (("sgd", "sgd_dev.jsonl", "en"), ("multiwoz", "multiwoz_val.jsonl", "en"),
                 ("crosswoz", "crosswoz_val.jsonl", "zh"))
SCENARIO_LANGS = ("ko", "ja", "zh", "en", "de", "fr", "es")


def _row(name: str, lang: str, part: str, field: str, s: AckScore) -> str:
    return (f"  {name:9} {lang:3} {part:5} {field:5} {s.n:6d} {s.tp + s.fn:5d} "
            f"{s.precision:9.4f} {s.recall:7.4f} {s.fp:9d}")


def ack_table(policies: dict[str, Policy], sets: dict[str, list[dict[str, Any]]],
              scen_rows: list[dict[str, Any]]) -> None:
    """Print acknowledgement P/R and false acks per set, language, part and input."""
    case_a = [r for r in scen_rows if r["case"] == "A"]
    for name, policy in policies.items():
        lines: list[tuple[str, str, str, str, AckScore]] = []
        for set_name, _, lang in FOLLOWUP_SETS:
            for part, rows in zip(("dev", "held"), split(sets[set_name]), strict=True):
                for field in ("text", "email"):
                    lines.append((set_name, lang, part, field,
                                  followup_score(policy, rows, field)))
        pred = {r["id"]: policy.decide(_ticket(r["ticket"]), _follow_up(r["inbound"])).verdict
                == "acknowledge" for r in case_a}
        for lang in SCENARIO_LANGS:
            for part, rows in zip(("dev", "held"),
                                  split(r for r in case_a if r["lang"] == lang), strict=True):
                if rows:
                    lines.append(("scenarios", lang, part, "email",
                                  ack_score([pred[r["id"]] for r in rows],
                                            [r["expected"] == "acknowledge" for r in rows])))
        if not any(s.tp + s.fp for *_, s in lines):
            print(f"\n== Acknowledgement: {name} never acknowledges a human reply")
            continue
        print(f"\n== Acknowledgement: {name} (gray excluded; 'false ack' = request parked; "
              "held = eval/split.py held-out part)")
        print(f"  {'set':9} {'lng':3} {'part':5} {'input':5} {'n':>6} {'ack':>5} "
              f"{'precision':>9} {'recall':>7} {'false ack':>9}")
        for line in lines:
            print(_row(*line))


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
          "tidydesk.threading.similarity)")
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
    sets = {name: _load(args.data / "followups" / file) for name, file, _ in FOLLOWUP_SETS}
    scen_rows = _load(args.data / "scenarios" / "dev.jsonl")
    print("policies: " + ", ".join(f"{p.name} v{p.version}" for p in policies.values()))
    ack_table(policies, sets, scen_rows)
    scenarios(policies, scen_rows)
    throughput(policies, sets["sgd"], scen_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
