"""End-to-end figures, side by side in one run: mail -> ticket visible in PostgreSQL through
the services' cores (threading, policy and the queue projector in this process, exactly as
tests/conftest.py::Stack runs them), beside the raw PostgreSQL ceiling for as many
single-row inserts, and the threading decision alone, in memory.

    .venv/bin/python -m bench.pipeline [--mails 2000] [--inflight 4] [--cap 150]

Half the mails open tickets, half reply to one of them (In-Reply-To). Latency runs from
the call to Intake.accept until the message's `message.threaded` row is in the projection
(same transaction as the ticket row). Prints Markdown; asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from nats.aio.client import Client

from bench._common import (
    Deadline,
    Sample,
    corpus,
    drop_namespace,
    fmt,
    machine,
    new_namespace,
    percentile,
    quiet_logs,
    servers,
    table,
)
from tests.conftest import Stack
from tidydesk.common import db
from tidydesk.common.events import MessageReceived
from tidydesk.common.store import close, connect
from tidydesk.common.topology import apply_topology
from tidydesk.ingest.parse import parse
from tidydesk.threading.engine import candidates, locate, new_ticket_id

LAG = 25  # a reply follows its ticket's first mail this many mails later


@dataclass
class Mail:
    message_id: str
    raw: bytes
    reply: bool


def workload(samples: Sequence[Sample], n: int, tag: str) -> list[Mail]:
    """n mails: n/2 new tickets (one requester each), n/2 replies to them, interleaved."""
    half = n // 2
    new = [Mail(f"{tag}-new-{i}@customer.example", b"", False) for i in range(half)]
    for i, m in enumerate(new):
        s = samples[i % len(samples)]
        m.raw = Sample(s.body, f"Customer {i} <customer-{tag}-{i}@example.com>",
                       f"{s.subject} ({tag} {i})").mail(message_id=m.message_id)
    replies = []
    for i in range(n - half):
        s = samples[(i * 7 + 3) % len(samples)]
        mid = f"{tag}-reply-{i}@customer.example"
        raw = Sample(s.body, f"Customer {i} <customer-{tag}-{i % half}@example.com>",
                     f"Re: {samples[i % len(samples)].subject} ({tag} {i})").mail(
            message_id=mid, in_reply_to=new[i % half].message_id)
        replies.append(Mail(mid, raw, True))
    order: list[Mail] = []
    for i, m in enumerate(new):
        order.append(m)
        if i >= LAG and i - LAG < len(replies):
            order.append(replies[i - LAG])
    order.extend(replies[max(0, half - LAG):])
    return order


@dataclass
class Flow:
    """One end-to-end run: when each mail was handed to intake and when it was projected."""

    name: str
    started: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    accepted_at: float = 0.0  # when the last accept returned
    failed: int = 0

    def row(self, total: int) -> list[str]:
        lat = [self.seen[m] - self.started[m] for m in self.seen if m in self.started]
        t0 = min(self.started.values(), default=0.0)
        span = max(self.seen.values(), default=t0) - t0
        accept_rate = len(self.started) / (self.accepted_at - t0) if self.accepted_at > t0 \
            else float("nan")
        return [self.name, f"{len(self.seen):,} / {total:,}", fmt(span, 2),
                fmt(len(self.seen) / span if span else float("nan"), 1), fmt(accept_rate),
                fmt(percentile(lat, 50) * 1e3), fmt(percentile(lat, 95) * 1e3),
                fmt(max(lat, default=float("nan")) * 1e3)]


async def watch(pool: asyncpg.Pool, flow: Flow, want: set[str], stop: asyncio.Event) -> None:
    """Poll the projection for message.threaded rows; stamp when each message shows up."""
    last = 0
    while not stop.is_set():
        rows = await pool.fetch(
            "SELECT seq, data->'data'->>'message_id' AS mid FROM events "
            "WHERE seq > $1 AND type = 'tidydesk.message.threaded' ORDER BY seq", last)
        now = time.perf_counter()
        for r in rows:
            last = max(last, int(r["seq"]))
            if r["mid"] in want and r["mid"] not in flow.seen:
                flow.seen[r["mid"]] = now
        if want <= flow.seen.keys():
            return
        await asyncio.sleep(0.02)


async def run_flow(stack: Stack, pool: asyncpg.Pool, name: str, mails: Sequence[Mail],
                   inflight: int, pace: float | None, within: float) -> Flow:
    """Feed `mails` through Intake.accept (`inflight` at a time, or at `pace` mails/s) and
    wait for every one of them to be visible in the projection, up to `within` seconds."""
    flow = Flow(name)
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(pool, flow, {m.message_id for m in mails}, stop))
    it = iter(enumerate(mails))
    t0 = time.perf_counter()

    async def feed() -> None:
        for i, m in it:
            if pace:
                await asyncio.sleep(max(0.0, t0 + i / pace - time.perf_counter()))
            flow.started[m.message_id] = time.perf_counter()
            try:
                await stack.intake.accept(m.raw, mailbox="support@acme.example")
            except Exception:
                flow.failed += 1

    await asyncio.gather(*(feed() for _ in range(1 if pace else inflight)))
    flow.accepted_at = time.perf_counter()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(watcher), max(1.0, within - (flow.accepted_at - t0)))
    stop.set()
    await watcher
    return flow


async def pg_ceiling(pool: asyncpg.Pool, rows: int, batch: int, rounds: int
                     ) -> tuple[float, float]:
    """Single-row inserts via executemany, `batch` per transaction: median and best rows/s."""
    await pool.execute("CREATE TABLE bench_rows (LIKE messages INCLUDING ALL)")
    now = datetime.now(UTC)
    rates = []
    for r in range(rounds):
        data = [(f"r{r}-{i}@bench.example", f"{i:064x}", None, "support@acme.example",
                 f"customer{i}@example.com", f"Subject {i}", now, "body " * 40, "reply " * 5,
                 None, None, None) for i in range(rows)]
        async with pool.acquire() as conn:
            t0 = time.perf_counter()
            for lo in range(0, rows, batch):
                async with conn.transaction():
                    await conn.executemany(
                        "INSERT INTO bench_rows VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
                        data[lo:lo + batch])
            rates.append(rows / (time.perf_counter() - t0))
    await pool.execute("DROP TABLE bench_rows")
    return statistics.median(rates), max(rates)


async def decisions(mails: Sequence[Mail], seconds: float) -> list[list[str]]:
    """The threading decision alone, in memory, over the same mails in the same order."""
    events = [e for m in mails for e in [parse(m.raw, mailbox="support@acme.example")]
              if isinstance(e, MessageReceived)]
    rows = []
    # 1. candidates + dict lookups + locate: the header decision
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        index: dict[str, str] = {}
        for e in events:
            known = {mid: index[mid] for mid in candidates(e) if mid in index}
            ticket, _method = locate(e, known)
            index[e.message_id] = ticket or new_ticket_id(e)
            done += 1
    span = time.perf_counter() - t0
    rows.append(["engine.candidates + dict lookups + engine.locate", f"{done:,}",
                 fmt(span, 2), fmt(done / span)])
    # 2. the whole engine (headers, tokens, subject number, content) on in-memory adapters
    try:
        from tidydesk.common.memory import InMemoryEventStore, InMemoryIndex
        from tidydesk.threading.engine import Threader
    except ImportError as exc:
        rows.append([f"Threader.thread, in-memory adapters (unavailable: {exc})", "", "", ""])
        return rows
    done, t0 = 0, time.perf_counter()
    at = datetime.now(UTC)
    while time.perf_counter() - t0 < seconds / 2:
        threader = Threader(InMemoryEventStore(), InMemoryIndex())
        for e in events:
            await threader.thread(e, at)
            done += 1
    span = time.perf_counter() - t0
    rows.append(["Threader.thread (whole engine + append), in-memory adapters", f"{done:,}",
                 fmt(span, 2), fmt(done / span)])
    return rows


async def start(stack: Stack) -> list[asyncio.Task[Any]]:
    tasks = stack.tasks()
    return list(await tasks) if inspect.isawaitable(tasks) else list(tasks)


async def bench(args: argparse.Namespace) -> None:
    quiet_logs()
    cap = Deadline(args.cap)
    samples, _ = corpus()
    print(f"# tidydesk pipeline bench — {machine()}\n")
    mails = workload(samples, args.mails, "sat")
    with servers(postgres=True) as srv:
        ns = new_namespace()
        nc: Client = await connect(srv.nats_url, "tidydesk-bench-pipeline")
        pool = await db.connect(srv.database_url, ns, attempts=3)
        stack = Stack(nc, pool, ns, policy=args.policy)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await db.migrate(pool)
            await apply_topology(nc.jetstream(), ns)
            tasks = await start(stack)
            # warm-up: a few mails through the whole path, not counted
            await run_flow(stack, pool, "warm-up", workload(samples, 10, "warm"), 1, None, 20)

            flows = [await run_flow(stack, pool, f"saturated, {args.inflight} accepts in flight",
                                    mails, args.inflight, None, cap.cap(args.cap * 0.7))]
            sat = flows[0]
            sat_rate = len(sat.seen) / max(1e-9, max(sat.seen.values(), default=0) -
                                           min(sat.started.values(), default=0))
            pace = max(1.0, sat_rate * args.pace_fraction)
            paced = workload(samples, args.paced, "paced")
            flows.append(await run_flow(stack, pool, f"paced at {pace:,.0f} mails/s "
                                        f"({args.pace_fraction:.0%} of saturated)", paced, 1,
                                        pace, cap.cap(60)))
            methods = await pool.fetch(
                "SELECT threaded_by, count(*) AS n FROM messages GROUP BY 1 ORDER BY 1")
            n_tickets = await pool.fetchval("SELECT count(*) FROM tickets")
            events = await pool.fetchval("SELECT count(*) FROM events")
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks = []
            median, best = await pg_ceiling(pool, args.mails, args.batch, 3)
            ceiling_row = [f"raw PostgreSQL: executemany INSERT, {args.batch}/txn, median of 3",
                           f"{args.mails:,} rows", "",
                           f"{fmt(median)} rows/s", f"(best {fmt(best)})", "", "", ""]
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await drop_namespace(nc.jetstream(), ns)
            await pool.execute(f'DROP SCHEMA "{ns}" CASCADE')
            await pool.close()
            await close(nc)

    print(table(["run", "projected", "s", "mails/s to projection", "accepts/s",
                 "p50 ms", "p95 ms", "max ms"],
                [*(f.row(len(m)) for f, m in zip(flows, (mails, paced), strict=True)),
                 ceiling_row]))
    print(f"\nProjection after the runs: {n_tickets:,} tickets, {events:,} ticket events; "
          "messages by threading method: "
          + ", ".join(f"{r['threaded_by']}: {r['n']:,}" for r in methods)
          + f". Policy: {args.policy}. " + "; ".join(srv.notes) + ".\n")
    print(table(["threading decision alone (1 core, no I/O)", "decisions", "s",
                 "decisions/s"], await decisions(mails, min(6.0, max(1.0, cap.left())))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mails", type=int, default=2_000,
                   help="mails in the saturated run, half new, half replies (default 2000)")
    p.add_argument("--inflight", type=int, default=4,
                   help="concurrent Intake.accept calls in the saturated run (default 4)")
    p.add_argument("--paced", type=int, default=200,
                   help="mails in the paced run, for latency without a backlog (default 200)")
    p.add_argument("--pace-fraction", type=float, default=0.5,
                   help="paced rate as a fraction of the saturated rate (default 0.5)")
    p.add_argument("--batch", type=int, default=256,
                   help="rows per transaction for the PostgreSQL ceiling (the projector's "
                        "batch, default 256)")
    p.add_argument("--policy", default="always-reopen")
    p.add_argument("--cap", type=float, default=150.0,
                   help="overall time cap in seconds (default 150)")
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
