"""Policy decisions per second on one core: every registered policy, side by side.

Run: .venv/bin/python -m bench.policies  (best of 3 rounds of CPU time, replies pre-extracted)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tidydesk.ingest.extract import reply_text
from tidydesk.policy.base import FollowUp, TicketView
from tidydesk.policy.registry import POLICIES

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "followups" / "sgd_dev.jsonl"
UNKNOWN = TicketView(subject="", status="solved", requester="")


def main() -> None:
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8")][:3000]
    work = [FollowUp(sender="", subject="", body=r["email"], reply=reply_text(r["email"]))
            for r in rows]
    print(f"| policy | decisions/s (best of 3, one core, {len(work)} SGD reply e-mails) |")
    print("|---|---|")
    for name, policy in POLICIES.items():
        best = 0.0
        for _ in range(3):
            start = time.process_time()
            for message in work:
                policy.decide(UNKNOWN, message)
            best = max(best, len(work) / (time.process_time() - start))
        print(f"| {name} | {best:,.0f} |")


if __name__ == "__main__":
    main()
