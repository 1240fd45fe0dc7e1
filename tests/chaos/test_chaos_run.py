"""The small version of `python -m bench.chaos`: every service, NATS and PostgreSQL killed
once or twice while mixed mail flows through real SMTP; the guarantees must hold exactly."""

from __future__ import annotations

import asyncio

from bench.chaos import chaos


async def test_chaos_run_loses_duplicates_and_parks_nothing() -> None:
    rows, _ = await asyncio.to_thread(chaos, mails=300, faults=7, seed=11, max_seconds=240)
    figures = dict(rows)
    print("\n".join(f"{k}: {v}" for k, v in rows))
    assert figures["mails answered 250 (distinct Message-IDs)"] == figures[
        "distinct mails offered (5% resent, 5% hostile bytes)"]
    assert figures["lost (answered, neither in a ticket nor recorded)"] == 0
    assert figures["duplicated (threaded into two tickets)"] == 0
    assert figures["parked events"] == 0
    assert figures["projection == rebuild from the stream"] is True
    sent, mailed, twice = (int(x) for x in str(
        figures["reply.sent events / mailed / mailed twice"]).split(" / "))
    assert sent > 0 and sent == mailed  # agents did answer, every answer was mailed
    assert twice <= 1  # only a kill between the relay's 250 and the "sent" record
    assert figures["settled at stream sequence"] != "NOT SETTLED"
    assert len(str(figures["faults injected"]).split(", ")) == 7  # every kind happened
