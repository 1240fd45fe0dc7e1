"""Stitched topic-shift cases from task dialogues: build them, then measure the split policy.

Usage::

    python eval/topic_shift.py [--data tests/data] [--no-write]

Each case pairs one ticket with two replies. The ticket is the start of dialogue A (customer
turns and agent answers up to a cut); the *continuation* is A's next user turn, which stays on
A's service (SGD) or domain (MultiWOZ, CrossWOZ); the *shift* is the first user turn of a
dialogue B of another service / domain, which asks for something the ticket was never about.
Read from the repository copies in ``tests/data/followups`` (SGD dev, MultiWOZ 2.1 val,
CrossWOZ val), written to ``tests/data/topics/stitched_<corpus>.jsonl``. Every choice (which
dialogues, the cut, the partner B) is keyed on SHA-256 of ids, so a rebuild gives the same
files.

SGD rows carry no service; a dialogue's service is read from the Outlook quote header of its
synthetic ``email`` ("Subject: RE: Your Restaurants request"), so dialogues without one are
skipped, and near services count as one (Media/Movies, Events/Music). A continuation is taken
before the dialogue's next INFORM_INTENT turn (a new intent may be a new service).

Measure: shift recall (the policy answers ``split``) and continuation split rate, per corpus
and language, on the dev and held-out parts (``eval/split.py`` on the case id; a case keeps its
two replies together), with the reply arriving 2, 20 and 60 days after the close. "before" is
``services/policy/topic.py`` and ``content_aware.py`` of commit ``BEFORE_COMMIT``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval.split import split  # noqa: E402
from tidydesk.policy import topic  # noqa: E402
from tidydesk.policy.base import FollowUp, PastMessage, TicketView  # noqa: E402
from tidydesk.policy.content_aware import ContentAware  # noqa: E402

BEFORE_COMMIT = "f29d1e1"
CORPORA = (("sgd", "sgd_dev.jsonl", "en", 900), ("multiwoz", "multiwoz_val.jsonl", "en", 700),
           ("crosswoz", "crosswoz_val.jsonl", "zh", 500))
MAX_CUT = 10  # the continuation is at most the 6th user turn: tickets stay short
SGD_GROUPS = {"Movies": "Media", "Music": "Events"}
DAYS = (2.0, 20.0, 60.0)
Predict = Callable[[TicketView, FollowUp], str]


def _h(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:12], 16)


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _dialogues(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """User turns per dialogue id, in turn order."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        dial, turn = r["id"].rsplit("-", 1)
        out[dial].append({**r, "turn": int(turn)})
    return {d: sorted(ts, key=lambda t: t["turn"]) for d, ts in out.items()}


def _domains(corpus: str, turns: list[dict[str, Any]]) -> list[set[str] | None]:
    """Service / domain set of each user turn; None: unknown (not usable)."""
    if corpus == "sgd":
        found = {line.split("Your ", 1)[1].rsplit(" request", 1)[0]
                 for t in turns for line in t["email"].splitlines()
                 if line.startswith("Subject: RE: Your ")}
        if len(found) != 1:
            return [None] * len(turns)
        service = found.pop()
        service = SGD_GROUPS.get(service, service)
        out: list[set[str] | None] = []
        for i, t in enumerate(turns):
            ended = i > 0 and ("INFORM_INTENT" in t["acts"] or out[-1] is None)
            out.append(None if ended else {service})
        return out
    pos = 0 if corpus == "multiwoz" else 1
    return [{a.split("-")[pos] for a in t["acts"]} - {"general", "greet", "thank", "bye"}
            for t in turns]


def _substantive(turn: dict[str, Any]) -> bool:
    text = turn["text"]
    size = len(text.split()) if text.isascii() else len(text)
    return turn["label"] == "substantive" and size >= 3


def build(corpus: str, rows: list[dict[str, Any]], lang: str, limit: int
          ) -> list[dict[str, Any]]:
    """Stitched cases of one corpus (see the module docstring)."""
    dialogues = _dialogues(rows)
    doms = {d: _domains(corpus, ts) for d, ts in dialogues.items()}
    openers = sorted(d for d, ts in dialogues.items()
                     if ts[0]["turn"] == 0 and doms[d][0] and _substantive(ts[0]))
    cases = []
    for dial in sorted(dialogues, key=lambda d: _h(corpus, d)):
        turns, ds = dialogues[dial], doms[dial]
        if turns[0]["turn"] != 0 or not ds[0]:
            continue
        context: set[str] = set()
        cuts = []
        for i, (t, d) in enumerate(zip(turns, ds, strict=True)):
            if d is None or t["turn"] > MAX_CUT:
                break
            if i > 0 and t["turn"] == 2 * i and d and d <= context and _substantive(t):
                cuts.append(i)
            context |= d
        if not cuts:
            continue
        cut = cuts[_h(dial, "cut") % len(cuts)]
        ticket_doms = set().union(*(d for d in ds[: cut + 1] if d))
        partners = [b for b in openers if not (doms[b][0] or set()) & ticket_doms]
        if not partners:
            continue
        partner = partners[_h(dial, "partner") % len(partners)]
        messages = []
        for t in turns[:cut]:
            if t["prev_agent"]:
                messages.append({"from": "agent", "text": t["prev_agent"]})
            messages.append({"from": "customer", "text": t["text"]})
        messages.append({"from": "agent", "text": turns[cut]["prev_agent"]})
        shift = dialogues[partner][0]
        cases.append({
            "id": f"stitch-{corpus}-{dial.split('-', 2)[2]}-{turns[cut]['turn']}"
                  f"+{partner.split('-', 2)[2]}",
            "corpus": corpus, "lang": lang,
            "ticket": {"subject": "", "messages": messages},
            "continuation": {"source": turns[cut]["id"], "text": turns[cut]["text"]},
            "shift": {"source": shift["id"], "text": shift["text"]},
            "domains": {"ticket": sorted(ticket_doms), "shift": sorted(doms[partner][0] or ())},
        })
        if len(cases) == limit:
            break
    return sorted(cases, key=lambda c: c["id"])


def _before() -> Predict | None:
    """ContentAware as of BEFORE_COMMIT, on that commit's topic module (from git)."""
    modules = {}
    for name in ("topic", "content_aware"):
        try:
            src = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{BEFORE_COMMIT}:services/policy/{name}.py"],
                capture_output=True, check=True, text=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
        mod = types.ModuleType(f"{name}_before")
        sys.modules[mod.__name__] = mod  # dataclasses look their module up
        exec(compile(src, f"{name}_before.py", "exec"), mod.__dict__)
        modules[name] = mod
    modules["content_aware"].topic = modules["topic"]  # type: ignore[attr-defined]
    policy = modules["content_aware"].ContentAware()
    return lambda ticket, message: str(policy.decide(ticket, message).verdict)


def _after() -> Predict:
    policy = ContentAware()
    return lambda ticket, message: policy.decide(ticket, message).verdict


def replies(case: dict[str, Any], days: float | None
            ) -> Iterator[tuple[TicketView, FollowUp, bool]]:
    """(ticket, reply, is a shift) for the continuation and the shift of a case."""
    ticket = TicketView(
        subject=case["ticket"]["subject"], status="solved", requester="", closed_days_ago=days,
        messages=tuple(PastMessage(author=m["from"], text=m["text"])
                       for m in case["ticket"]["messages"]),
    )
    for kind in ("continuation", "shift"):
        text = case[kind]["text"]
        yield ticket, FollowUp(sender="", subject="", body=text, reply=text), kind == "shift"


def rates(predict: Predict, cases: list[dict[str, Any]], days: float | None
          ) -> tuple[float, float, int]:
    """(shift recall, continuation split rate, cases) of a predictor."""
    hit = false_split = 0
    for case in cases:
        for ticket, message, shift in replies(case, days):
            split_ = predict(ticket, message) == "split"
            hit += split_ and shift
            false_split += split_ and not shift
    n = len(cases)
    return (hit / n, false_split / n, n) if n else (0.0, 0.0, 0)


def report(predictors: dict[str, Predict], sets: dict[str, list[dict[str, Any]]]) -> None:
    print("== Stitched topic shifts: shift recall (split) / continuation split rate")
    print(f"  {'set':9} {'lng':3} {'part':5} {'n':>5} {'days':>4} " + " ".join(
        f"{name:>15}" for name in predictors))
    groups = {**sets, "all-en": [c for s in sets.values() for c in s if c["lang"] == "en"],
              "all": [c for s in sets.values() for c in s]}
    for name, cases in groups.items():
        lang = cases[0]["lang"] if cases and name != "all" else "*"
        for part, items in zip(("dev", "held"), split(cases), strict=True):
            for days in DAYS:
                cells = []
                for predict in predictors.values():
                    rec, fsplit, _ = rates(predict, items, days)
                    cells.append(f"{rec:6.3f} / {fsplit:5.3f}")
                print(f"  {name:9} {lang:3} {part:5} {len(items):5d} {days:4.0f} "
                      + " ".join(f"{c:>15}" for c in cells))


def fit(cases: list[dict[str, Any]], rounds: int = 1500, rate: float = 0.5,
        l2: float = 1e-3) -> tuple[list[float], float]:
    """Logistic regression of "is the shift" on `topic.features` over both replies of the cases;
    returns the weights and the score above which 4% of the continuations lie."""
    xs: list[tuple[float, ...]] = []
    ys: list[float] = []
    for case in cases:
        for ticket, message, shift in replies(case, None):
            text = topic.ticket_text(ticket.subject, [(m.author, m.text) for m in ticket.messages])
            ev = topic.compare(message.reply, text)
            if ev.mass >= topic.MIN_MASS and not (ev.back_reference or ev.shared_ids):
                xs.append(topic.features(ev))  # only replies that `score` decides
                ys.append(float(shift))
    w = [0.0] * len(xs[0])
    for _ in range(rounds):
        grad = [0.0] * len(w)
        for x, y in zip(xs, ys, strict=True):
            err = 1 / (1 + math.exp(-sum(a * b for a, b in zip(w, x, strict=True)))) - y
            grad = [g + err * v for g, v in zip(grad, x, strict=True)]
        w = [wj - rate * (g / len(xs) + l2 * wj) for wj, g in zip(w, grad, strict=True)]
    negatives = sorted((sum(a * b for a, b in zip(w, x, strict=True))
                        for x, y in zip(xs, ys, strict=True) if not y), reverse=True)
    return w, negatives[len(negatives) * 4 // 100]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data")
    parser.add_argument("--no-write", action="store_true", help="only measure the files")
    parser.add_argument("--fit", action="store_true",
                        help="fit topic.WEIGHTS on the dev part and print them")
    args = parser.parse_args(argv)
    out = args.data / "topics"
    sets: dict[str, list[dict[str, Any]]] = {}
    for corpus, file, lang, limit in CORPORA:
        path = out / f"stitched_{corpus}.jsonl"
        if args.no_write:
            sets[corpus] = _load(path)
            continue
        sets[corpus] = build(corpus, _load(args.data / "followups" / file), lang, limit)
        with path.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(c, ensure_ascii=False) + "\n" for c in sets[corpus])
        held = len(split(sets[corpus])[1])
        print(f"wrote {path.relative_to(ROOT)}: {len(sets[corpus])} cases ({held} held out)")
    if args.fit:
        weights, threshold = fit([c for cases in sets.values() for c in split(cases)[0]])
        print("WEIGHTS = (" + ", ".join(f"{w:.2f}" for w in weights) + ")")
        print(f"score of the 96th percentile continuation (dev): {threshold:.2f}")
        return 0
    predictors: dict[str, Predict] = {}
    before = _before()
    if before is not None:
        predictors[f"before {BEFORE_COMMIT}"] = before
    predictors["after"] = _after()
    report(predictors, sets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
