"""Agreement of `tidydesk thread` with the thread partition given by an mbox's headers.

Truth: conversations from In-Reply-To/References (union-find, as JWZ threading joins them).
Prints pairwise precision/recall/F1 with headers and with --ignore-headers.
Usage: python eval/thread_partition.py [MBOX ...]  (default: tests/data/threading/*.mbox)
"""

from __future__ import annotations

import asyncio
import mailbox
import sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from services.ingest.parse import message_ids
from services.threading.offline import thread_mbox


def header_partition(path: str) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    order = []
    for mail in mailbox.mbox(path, create=False):
        (mid,) = message_ids(mail["Message-ID"])[:1] or ("",)
        order.append(mid)
        for ref in message_ids(mail["In-Reply-To"]) + message_ids(mail["References"]):
            parent[find(ref)] = find(mid)
    return {mid: find(mid) for mid in order}


def pairs(groups: dict[str, str]) -> set[tuple[str, str]]:
    by: dict[str, list[str]] = defaultdict(list)
    for item, group in groups.items():
        by[group].append(item)
    return {tuple(sorted(p)) for members in by.values()  # type: ignore[misc]
            for p in combinations(members, 2)}


def score(truth: dict[str, str], got: dict[str, str]) -> tuple[float, float, float]:
    t, g = pairs(truth), pairs(got)
    tp = len(t & g)
    p = tp / len(g) if g else 1.0
    r = tp / len(t) if t else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    paths = sys.argv[1:] or sorted(str(p) for p in Path("tests/data/threading").glob("*.mbox"))
    print("| mbox | messages | conversations | mode | pair precision | pair recall | F1 |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        truth = header_partition(path)
        for mode, use_headers in (("headers", True), ("--ignore-headers", False)):
            lines = asyncio.run(thread_mbox(path, use_headers=use_headers))
            got = {ln.message_id: ln.ticket or "" for ln in lines if ln.message_id}
            p, r, f1 = score(truth, got)
            print(f"| {Path(path).name} | {len(truth)} | {len(set(truth.values()))} | {mode} "
                  f"| {p:.4f} | {r:.4f} | {f1:.4f} |")


if __name__ == "__main__":
    main()
