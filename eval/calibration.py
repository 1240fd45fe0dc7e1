"""Reliability of the content-join confidence, and the Platt fit behind it.

Candidates: every case-B item (a fresh mail beside an open ticket, gold ``thread`` / ``new``) of
``tests/data/scenarios/dev.jsonl`` and ``tests/data/threading/handwritten*.jsonl``, split into
dev / held-out by ``eval/split.is_held_out`` of the item id. Prints, per part, the reliability
table (bins of predicted confidence vs the observed share of right joins) and, with ``--fit``,
Platt parameters (slope, intercept) fitted on the dev part for strong and weak evidence, to be
copied into ``services/threading/similarity.py``.
Usage: python eval/calibration.py [--fit]
"""

from __future__ import annotations

import math
import sys
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval.fresh_mail import DEFAULT_SCENARIOS, load, ticket_of  # noqa: E402
from eval.split import is_held_out  # noqa: E402
from tidydesk.threading.similarity import judge  # noqa: E402

BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 1.0001)
Row = tuple[float, float, bool, bool]  # confidence, raw logit, strong, gold "thread"


def candidates() -> tuple[list[Row], list[Row]]:
    """(dev, held-out) rows over all case-B items."""
    paths = [DEFAULT_SCENARIOS, *sorted((ROOT / "tests/data/threading").glob("handwritten*.jsonl"))]
    dev: list[Row] = []
    held: list[Row] = []
    for path in paths:
        for item in load(path, "B"):
            ib = item["inbound"]
            j = judge(ticket_of(item), ib["from"], ib["subject"], ib["text"])
            row = (j.confidence, j.logit, j.strong, item["expected"] == "thread")
            (held if is_held_out(item["id"]) else dev).append(row)
    return dev, held


def reliability(rows: list[Row], title: str) -> None:
    """Print bins of predicted confidence against the observed share of right joins."""
    print(f"{title} ({len(rows)} candidates)")
    print("| confidence | n | strong | mean predicted | observed right |")
    print("|---|---|---|---|---|")
    for lo, hi in pairwise(BINS):
        inside = [r for r in rows if lo <= r[0] < hi]
        if inside:
            pred = sum(r[0] for r in inside) / len(inside)
            obs = sum(r[3] for r in inside) / len(inside)
            strong = sum(r[2] for r in inside)
            print(f"| {lo:.2f}-{min(hi, 1.0):.2f} | {len(inside)} | {strong} | {pred:.2f} "
                  f"| {obs:.2f} |")
    brier = sum((r[0] - r[3]) ** 2 for r in rows) / max(len(rows), 1)
    print(f"Brier score {brier:.3f}\n")


def platt(xs: list[float], ys: list[bool], prior: float = 1.0) -> tuple[float, float]:
    """Logistic fit p = sigmoid(a*x + b) by Newton steps, with Platt's smoothed targets and a
    small ridge (``prior``) so that a class with few negatives is not pushed to 1.0."""
    pos = sum(ys)
    neg = len(ys) - pos
    t = [(pos + 1) / (pos + 2) if y else 1 / (neg + 2) for y in ys]
    a, b = 0.5, 0.0
    for _ in range(50):
        g_a = g_b = h_aa = h_ab = h_bb = 0.0
        for x, ti in zip(xs, t, strict=True):
            p = 1.0 / (1.0 + math.exp(-(a * x + b)))
            w = p * (1 - p)
            g_a += (p - ti) * x
            g_b += p - ti
            h_aa += w * x * x
            h_ab += w * x
            h_bb += w
        g_a += prior * (a - 0.5)
        h_aa += prior
        h_bb += 1e-6
        det = h_aa * h_bb - h_ab * h_ab
        if abs(det) < 1e-12:
            break
        a -= (h_bb * g_a - h_ab * g_b) / det
        b -= (h_aa * g_b - h_ab * g_a) / det
    return round(a, 2), round(b, 2)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    dev, held = candidates()
    if "--fit" in args:
        for strong in (True, False):
            part = [r for r in dev if r[2] == strong]
            a, b = platt([r[1] for r in part], [r[3] for r in part])
            print(f"PLATT_{'STRONG' if strong else 'WEAK'} = ({a}, {b})  # {len(part)} dev rows, "
                  f"{sum(r[3] for r in part)} same request")
        print()
    reliability(dev, "reliability, dev")
    reliability(held, "reliability, held-out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
