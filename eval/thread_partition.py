"""Agreement of `tidydesk thread` with the thread partition given by an mbox's headers.

Truth: conversations from In-Reply-To/References (union-find, as JWZ threading joins them).
Modes: (a) headers only (no content joining), (b) headers + content joining, the product
default, (c) content only (``--ignore-headers``). Each is scored by pairwise precision/recall/F1
on the dev and held-out parts (a conversation is held out by ``eval/split.is_held_out`` of its
root Message-ID), with the number of wrong content joins (a mail joined by content into a ticket
opened by another conversation). (b) must never be below (a).
Usage: python eval/thread_partition.py [MBOX ...] [--no-content-only]
(default: tests/data/threading/*.mbox)
"""

from __future__ import annotations

import asyncio
import mailbox
import sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eval.split import is_held_out  # noqa: E402
from tidydesk.ingest.parse import message_ids  # noqa: E402
from tidydesk.offline_thread import Line, thread_mbox  # noqa: E402

MODES = (("(a) headers only", True, False), ("(b) headers + content", True, True),
         ("(c) content only", False, True))


def header_partition(path: str) -> dict[str, str]:
    """Message-ID -> root Message-ID of its conversation, in file order."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    order = []
    box = mailbox.mbox(path, create=False)
    try:
        for mail in box:
            (mid,) = message_ids(mail["Message-ID"])[:1] or ("",)
            order.append(mid)
            for ref in message_ids(mail["In-Reply-To"]) + message_ids(mail["References"]):
                parent[find(ref)] = find(mid)
    finally:
        box.close()
    groups = {mid: find(mid) for mid in order}
    first: dict[str, str] = {}
    for mid in order:  # name each conversation by its first mail in the file
        first.setdefault(groups[mid], mid)
    return {mid: first[groups[mid]] for mid in order}


def pairs(groups: dict[str, str]) -> set[tuple[str, str]]:
    by: dict[str, list[str]] = defaultdict(list)
    for item, group in groups.items():
        by[group].append(item)
    return {(a, b) if a < b else (b, a) for members in by.values()
            for a, b in combinations(members, 2)}


def score(truth: dict[str, str], got: dict[str, str]) -> tuple[float, float, float]:
    t, g = pairs(truth), pairs(got)
    tp = len(t & g)
    p = tp / len(g) if g else 1.0
    r = tp / len(t) if t else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def wrong_joins(truth: dict[str, str], lines: list[Line]) -> list[Line]:
    """Mails joined by content into a ticket whose first mail is of another conversation."""
    opener: dict[str, str] = {}
    out = []
    for ln in lines:
        if not ln.message_id or not ln.ticket:
            continue
        opener.setdefault(ln.ticket, ln.message_id)
        if ln.method == "content" and truth.get(opener[ln.ticket]) != truth.get(ln.message_id):
            out.append(ln)
    return out


def evaluate(path: str, modes: tuple[tuple[str, bool, bool], ...] = MODES
             ) -> dict[tuple[str, str], tuple[float, float, float, int]]:
    """(mode, part) -> (precision, recall, F1, wrong content joins) for one mbox."""
    truth = header_partition(path)
    out: dict[tuple[str, str], tuple[float, float, float, int]] = {}
    for mode, use_headers, content in modes:
        lines = asyncio.run(thread_mbox(path, use_headers=use_headers, content_join=content))
        got = {ln.message_id: ln.ticket or "" for ln in lines if ln.message_id}
        wrong = wrong_joins(truth, lines)
        for part, held in (("dev", False), ("held-out", True)):
            keep = {m for m, root in truth.items() if is_held_out(root) == held}
            sub_t = {m: g for m, g in truth.items() if m in keep}
            sub_g = {m: g for m, g in got.items() if m in keep}
            n_wrong = sum(1 for ln in wrong if ln.message_id in keep)
            out[(mode, part)] = (*score(sub_t, sub_g), n_wrong)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    modes = MODES[:2] if "--no-content-only" in args else MODES
    paths = [a for a in args if not a.startswith("--")] or sorted(
        str(p) for p in (ROOT / "tests" / "data" / "threading").glob("*.mbox"))
    print("| mbox | part | mails | conversations | mode | pair precision | pair recall | F1 "
          "| wrong content joins |")
    print("|---|---|---|---|---|---|---|---|---|")
    worse = []
    for path in paths:
        truth = header_partition(path)
        res = evaluate(path, modes)
        for part, held in (("dev", False), ("held-out", True)):
            mails = [m for m, root in truth.items() if is_held_out(root) == held]
            convs = {truth[m] for m in mails}
            for mode, _h, _c in modes:
                p, r, f1, wrong = res[(mode, part)]
                print(f"| {Path(path).name} | {part} | {len(mails)} | {len(convs)} | {mode} "
                      f"| {p:.4f} | {r:.4f} | {f1:.4f} | {wrong} |")
            if res[(modes[1][0], part)][2] < res[(modes[0][0], part)][2]:
                worse.append(f"{Path(path).name} {part}")
    if worse:
        print("content joining is WORSE than headers alone on: " + ", ".join(worse))
        return 1
    print("content joining is never worse than headers alone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
