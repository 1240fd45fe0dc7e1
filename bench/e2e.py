"""Mail through real SMTP to a ticket visible in PostgreSQL, every service its own process.

    .venv/bin/python -m bench.e2e [--mails 20000] [--connections 8] [--rate 200] [--workers 1 2]

ingest, threading, policy and queue run as processes (as `tidydesk up --workers N` runs them:
N instances of ingest, threading and policy, the ingest ones sharing the SMTP port), each
started through this module (`--serve NAME`), which counts its NATS requests and PostgreSQL
calls; the whole pipeline runs once per --workers value (default 1 and the core count).
Prints: saturated mails/s, latency p50/p99 at a fixed offered rate, round trips per mail by
service, the raw ceilings measured in the same run (awaited js.publish of 2 KB, executemany
INSERT), and the cost of loading a ticket of 1/10/200 events before (one get
per event) and after (cache + batched read). `--baseline` runs the services with the old
load first, for round trips per mail before. Servers: TIDYDESK_NATS_URL /
TIDYDESK_DATABASE_URL when set, else embedded ones. Bounded by --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import contextvars
import json
import os
import runpy
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from bench._common import (
    Deadline,
    Servers,
    corpus,
    drop_namespace,
    fmt,
    machine,
    new_namespace,
    percentile,
    quiet_logs,
    servers,
    stream_config,
    table,
)
from bench.pipeline import Mail, pg_ceiling, workload
from tidydesk.common import db, runtime
from tidydesk.common import store as store_module
from tidydesk.common.events import Envelope, MessageThreaded, TicketOpened, decode
from tidydesk.common.settings import Settings
from tidydesk.common.store import JetStreamEventStore, close, connect
from tidydesk.common.topology import apply_topology
from tidydesk.tickets.ticket import Ticket, fold

SERVICES = ("ingest", "threading", "policy", "queue")
COUNTS: Counter[str] = Counter()  # this process's round trips, by kind
_inside_request = contextvars.ContextVar("inside_request", default=False)


# -- counting round trips (bench only: patches the client libraries in this process) ------

_KINDS = (("$JS.API.STREAM.MSG.GET.KV_", "kv get"), ("$JS.API.STREAM.MSG.GET.OBJ_", "object store"),
          ("$JS.API.DIRECT.GET.KV_", "kv get"), ("$JS.API.STREAM.MSG.GET.", "event get"),
          ("$JS.API.DIRECT.GET.", "direct get"), ("$JS.API.CONSUMER.MSG.NEXT.", "fetch"),
          ("$JS.API.STREAM.INFO.", "stream info"), ("$JS.API.CONSUMER.CREATE.", "consumer"),
          ("$JS.API.CONSUMER.DELETE.", "consumer"), ("$JS.API.CONSUMER.INFO.", "consumer"),
          ("$KV.", "kv write"), ("$O.", "object store"), ("$JS.API.", "other js api"))


def kind(subject: str) -> str:
    """What a NATS request is, from its subject."""
    for prefix, name in _KINDS:
        if subject.startswith(prefix):
            return name
    part = subject.split(".")[1:2]
    return {"tickets": "ticket append", "inbound": "intake publish"}.get(
        part[0] if part else "", "other")

def instrument() -> None:
    """Count NATS requests (a publish with a reply subject is one too: pull fetches),
    one-way publishes (acks) and PostgreSQL calls (BEGIN/COMMIT included) in COUNTS."""
    request, publish = Client.request, Client.publish

    async def counted_request(self: Client, subject: str, *args: Any, **kwargs: Any) -> Any:
        COUNTS["nats"] += 1
        COUNTS[f"nats {kind(subject)}"] += 1
        token = _inside_request.set(True)
        try:
            return await request(self, subject, *args, **kwargs)
        finally:
            _inside_request.reset(token)

    async def counted_publish(self: Client, subject: str, payload: bytes = b"",
                              reply: str = "", headers: dict[str, str] | None = None) -> None:
        if not _inside_request.get():
            COUNTS["nats" if reply else "nats one-way"] += 1
            if reply:
                COUNTS[f"nats {kind(subject)}"] += 1
        await publish(self, subject, payload, reply, headers)

    Client.request = counted_request  # type: ignore[method-assign]
    Client.publish = counted_publish  # type: ignore[method-assign]
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval",
                 "copy_records_to_table"):
        original = getattr(asyncpg.Connection, name)

        def counted(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def call(self: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
                COUNTS["postgres"] += 1
                words = str(args[0] if args else kwargs.get("query", "")).split()
                COUNTS[f"postgres {' '.join(words[:1]).upper() or 'COPY'}"] += 1
                return await original(self, *args, **kwargs)
            return call

        setattr(asyncpg.Connection, name, counted(original))


async def old_load(self: JetStreamEventStore, ticket_id: str) -> Ticket:
    """The load before the cache: one get per event."""
    history: list[tuple[int, Envelope]] = []
    seq = 1
    while True:
        try:
            msg = await self.js.get_msg(self.stream, seq=seq, subject=self.ticket_subject(
                ticket_id), next=True)
        except NotFoundError:
            return fold(ticket_id, history)
        assert msg.seq is not None and msg.data is not None
        history.append((msg.seq, decode(msg.data)))
        seq = msg.seq + 1


def serve(name: str, counts: Path, baseline: bool) -> None:
    """Run one service here, counting; COUNTS goes to `counts` every 0.2 s and at exit."""
    instrument()
    if baseline:
        JetStreamEventStore.load = old_load  # type: ignore[method-assign]

    def dump() -> None:
        tmp = counts.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(COUNTS)))
        os.replace(tmp, counts)

    def keep_dumping() -> None:
        while True:
            dump()
            time.sleep(0.2)

    atexit.register(dump)
    threading.Thread(target=keep_dumping, daemon=True).start()
    sys.argv = [f"tidydesk.{name}"]
    runpy.run_module(f"tidydesk.{name}", run_name="__main__", alter_sys=True)


# -- the pipeline run ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Flow:
    """When each mail was due (scheduled or handed to SMTP) and when it was projected."""

    due: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def latencies(self) -> list[float]:
        return [self.seen[m] - self.due[m] for m in self.seen if m in self.due]


def send(port: int, mails: Sequence[Mail], connections: int, flow: Flow, rate: float | None,
         deadline: Deadline) -> None:
    """Over `connections` SMTP sessions in threads: as fast as they go, or mail i due at
    t0 + i / rate (latency counts from then, so a sender falling behind shows)."""
    t0 = time.perf_counter() + 0.05
    queue = list(enumerate(mails))
    shares = [queue[k::connections] for k in range(connections)] if rate else [queue]
    lock = threading.Lock()

    def session(share: list[tuple[int, Mail]]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            while not deadline.passed():
                with lock:
                    if not share:
                        return
                    i, m = share.pop(0)
                if rate:
                    time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                    due = t0 + i / rate
                else:
                    due = time.perf_counter()
                with flow.lock:
                    flow.due[m.message_id] = due
                try:
                    client.sendmail("customer@example.com", ["support@acme.example"], m.raw)
                except smtplib.SMTPException:
                    with flow.lock:
                        flow.failed += 1

    threads = [threading.Thread(target=session, args=(shares[k % len(shares)],))
               for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


async def watch(pool: asyncpg.Pool, flow: Flow, want: set[str], deadline: Deadline,
                after: float) -> None:
    """Stamp each mail when its message.threaded row is in PostgreSQL (polled every 10 ms)."""
    last = 0
    end = time.monotonic() + deadline.cap(after)
    while time.monotonic() < end and not want <= flow.seen.keys():
        rows = await pool.fetch(
            "SELECT seq, data->'data'->>'message_id' AS mid FROM events "
            "WHERE seq > $1 AND type = 'tidydesk.message.threaded' ORDER BY seq", last)
        now = time.perf_counter()
        for r in rows:
            last = max(last, int(r["seq"]))
            if r["mid"] in want:
                flow.seen.setdefault(r["mid"], now)
        await asyncio.sleep(0.01)


PIDS: dict[str, tuple[str, int]] = {}  # instance label -> (service, pid) of the pipeline
TICK = os.sysconf("SC_CLK_TCK")


def counts(home: Path) -> dict[str, Counter[str]]:
    """Each service's counters so far, and its CPU time in ms ("cpu ms"), summed over its
    instances."""
    out: dict[str, Counter[str]] = {}
    for label, (name, pid) in PIDS.items():
        with contextlib.suppress(OSError, ValueError):
            mine = Counter(json.loads((home / f"{label}.json").read_text()))
            stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            mine["cpu ms"] = (int(stat[11]) + int(stat[12])) * 1000 // TICK
            out[name] = out.get(name, Counter()) + mine
    return out


def listeners(port: int) -> int:
    """How many sockets listen on loopback `port` (SO_REUSEPORT siblings each have one)."""
    wanted = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == wanted and line.split()[3] == "0A")


@dataclass
class Phase:
    name: str
    mails: int
    flow: Flow
    seconds: float
    trips: dict[str, Counter[str]]

    def row(self) -> list[str]:
        lat = self.flow.latencies()
        t0 = min(self.flow.due.values(), default=0.0)
        span = max(self.flow.seen.values(), default=t0) - t0
        return [self.name, f"{len(self.flow.seen):,} / {self.mails:,}", fmt(span, 2),
                fmt(len(self.flow.seen) / span if span else float("nan"), 1),
                fmt(percentile(lat, 50) * 1e3), fmt(percentile(lat, 99) * 1e3),
                str(self.flow.failed)]


async def phase(name: str, srv: Servers, pool: asyncpg.Pool, home: Path, port: int,
                mails: Sequence[Mail], connections: int, rate: float | None,
                deadline: Deadline) -> Phase:
    flow = Flow()
    before = counts(home)
    t0 = time.perf_counter()
    watcher = asyncio.create_task(watch(pool, flow, {m.message_id for m in mails}, deadline,
                                        deadline.left()))
    await asyncio.to_thread(send, port, mails, connections, flow, rate, deadline)
    await asyncio.wait_for(watcher, deadline.left() + 5)
    await asyncio.sleep(0.5)  # the services' counters are written every 0.2 s
    after = counts(home)
    trips = {n: after.get(n, Counter()) - before.get(n, Counter()) for n in SERVICES}
    return Phase(name, len(mails), flow, time.perf_counter() - t0, trips)


def _loop() -> str:
    """The event loop the service processes run (see tidydesk.common.runtime)."""
    name = Settings.from_env().loop
    return "uvloop" if runtime.loop_factory(name) else "asyncio"


def start_services(home: Path, env: dict[str, str], baseline: bool, workers: int
                   ) -> list[subprocess.Popen[bytes]]:
    """Each service instance in a process of its own, through `--serve` (counting), logs in
    `home`; the instances `tidydesk up --workers` runs (PIDS says which is which)."""
    procs = []
    settings = Settings.from_env({"TIDYDESK_WORKERS": str(workers)})
    PIDS.clear()
    for name in SERVICES:
        for i in range(settings.instances(name)):
            label = f"{name}-{i + 1}"
            cmd = [sys.executable, "-m", "bench.e2e", "--serve", name, "--counts",
                   str(home / f"{label}.json"), *(["--baseline"] if baseline else [])]
            with open(home / f"{label}.log", "ab") as log:
                procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log,
                                              start_new_session=True))
            PIDS[label] = (name, procs[-1].pid)
    return procs


async def started(srv: Servers, ns: str, pool: asyncpg.Pool, smtp_port: int, workers: int,
                  deadline: Deadline) -> None:
    """Until every instance takes part: the queue service migrated, each ingest listens,
    each threading and policy instance pulls from its consumer."""
    nc = await connect(srv.nats_url, "tidydesk-bench-e2e-start")
    js = nc.jetstream()
    try:
        while not deadline.passed():
            with contextlib.suppress(Exception):
                await pool.fetchval("SELECT count(*) FROM events")
                pulling = [(await js.consumer_info(f"{ns.upper()}_EVENTS", c)).num_waiting or 0
                           for c in ("threading", "policy")]
                if listeners(smtp_port) >= workers and min(pulling) >= workers:
                    return
            await asyncio.sleep(0.2)
    finally:
        await close(nc)


async def pipeline(srv: Servers, args: argparse.Namespace, baseline: bool, deadline: Deadline,
                   workers: int) -> list[Phase]:
    """Start the services in a fresh namespace, run warm-up, saturated and paced phases."""
    ns = new_namespace()
    home = Path(tempfile.mkdtemp(prefix="tidydesk-e2e-"))
    smtp_port = free_port()
    env = {**os.environ, "TIDYDESK_NATS_URL": srv.nats_url,
           "TIDYDESK_DATABASE_URL": srv.database_url, "TIDYDESK_NAMESPACE": ns,
           "TIDYDESK_SMTP_PORT": str(smtp_port), "TIDYDESK_HTTP_PORT": str(free_port()),
           "TIDYDESK_HEALTH_PORT": "0", "TIDYDESK_LOG_FORMAT": "json",
           "TIDYDESK_LOG_LEVEL": "error", "TIDYDESK_WORKERS": str(workers)}
    procs = start_services(home, env, baseline, workers)
    pool = await db.connect(srv.database_url, ns, attempts=20)
    samples, _ = corpus()
    tag = f"{'base' if baseline else 'new'}{workers}"
    each = f", {workers} worker{'s' if workers > 1 else ''}"
    phases: list[Phase] = []
    try:
        await started(srv, ns, pool, smtp_port, workers, deadline)
        warm = await phase("warm-up", srv, pool, home, smtp_port,
                           workload(samples, args.warmup, f"{tag}-warm"), 4, None, deadline)
        if len(warm.flow.seen) < warm.mails:
            raise RuntimeError(f"warm-up mails did not reach PostgreSQL; logs in {home}")
        mails = args.baseline_mails if baseline else args.mails
        phases.append(await phase(
            f"{'before (one get per event)' if baseline else 'saturated'}, "
            f"{args.connections} SMTP connections{each}", srv, pool, home, smtp_port,
            workload(samples, mails, f"{tag}-sat"), args.connections, None, deadline))
        if not baseline:
            paced = workload(samples, int(args.rate * args.paced_seconds), f"{tag}-paced")
            phases.append(await phase(f"paced at {args.rate:g} mails/s{each}", srv, pool, home,
                                      smtp_port, paced, args.connections, args.rate, deadline))
            sat = phases[0]
            rate = 0.5 * len(sat.flow.seen) / max(sat.seconds, 1e-9)
            if rate < args.rate:
                half = workload(samples, int(rate * args.paced_seconds), f"{tag}-half")
                phases.append(await phase(f"paced at {rate:.0f} mails/s (50% of saturated){each}",
                                          srv, pool, home, smtp_port, half,
                                          args.connections, rate, deadline))
        if not baseline and workers == args.workers[-1]:
            rates = await pg_ceiling(pool, 2000, 256, 3)
            phases.append(Phase(f"raw PostgreSQL executemany INSERT: {rates[0]:,.0f} rows/s "
                                f"(median of 3)", 0, Flow(), 0.0, {}))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        with contextlib.suppress(Exception):
            await pool.execute(f'DROP SCHEMA "{ns}" CASCADE')
        await pool.close()
        nc = await connect(srv.nats_url, "tidydesk-bench-e2e-cleanup")
        await drop_namespace(nc.jetstream(), ns)
        await close(nc)
        shutil.rmtree(home, ignore_errors=True)
    return phases


# -- raw ceilings and ticket loads, in this process ---------------------------------------

async def publish_ceiling(nc: Client, ns: str, n: int, inflight: int) -> float:
    """Awaited js.publish of 2 KB to a scratch stream with the event stream's config."""
    js = nc.jetstream()
    payload = os.urandom(1024).hex().encode()
    it = iter(range(n))

    async def worker() -> None:
        for _ in it:
            await js.publish(f"{ns}.scratch.x", payload)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return n / (time.perf_counter() - t0)


async def timed(op: Callable[[], Awaitable[object]], reps: int) -> tuple[float, float]:
    """(ms per call, round trips per call)."""
    trips = COUNTS["nats"]
    t0 = time.perf_counter()
    for _ in range(reps):
        await op()
    return (time.perf_counter() - t0) * 1e3 / reps, (COUNTS["nats"] - trips) / reps


async def fresh_load(js: JetStreamContext, ns: str, ticket_id: str) -> Ticket:
    """A load by a store with an empty cache (a cold read)."""
    return await JetStreamEventStore(js, ns).load(ticket_id)


async def loads(nc: Client, ns: str, sizes: Sequence[int]) -> tuple[list[list[str]],
                                                                    list[list[str]]]:
    """Ticket load before/after per history size, and the cold-read strategies compared."""
    js = nc.jetstream()
    writer = JetStreamEventStore(js, ns)
    rows, strategies = [], []
    for n in sizes:
        tid = f"load{n}"
        seq = await writer.append(tid, [(TicketOpened(
            ticket_id=tid, number=n, subject="s", requester="a@example.com",
            mailbox="support@acme.example", message_id="m0"), "opened")], 0)
        for i in range(n - 1):  # ~1 KB of reply text each, as a real follow-up
            seq = await writer.append(tid, [(MessageThreaded(
                ticket_id=tid, message_id=f"m{i}", method="bench", reply="text " * 200),
                f"m{i}")], seq)
        reps = max(5, min(200, 2000 // n))
        warm = JetStreamEventStore(js, ns)
        await warm.load(tid)
        before = await timed(partial(old_load, warm, tid), reps)
        cold = await timed(partial(fresh_load, js, ns, tid), reps)
        hot = await timed(partial(warm.load, tid), reps)
        assert await warm.load(tid) == await old_load(warm, tid)
        rows.append([f"{n:,}", fmt(before[0], 2), fmt(before[1], 0), fmt(cold[0], 2),
                     fmt(cold[1], 0), fmt(hot[0], 3), fmt(hot[1], 0),
                     fmt(before[0] / hot[0], 0)])
        line = [f"{n:,}"]
        for gets in (10**9, 0, store_module.SINGLE_GETS):
            saved, store_module.SINGLE_GETS = store_module.SINGLE_GETS, gets
            try:
                line.append(fmt((await timed(
                    partial(fresh_load, js, ns, tid), reps))[0], 2))
            finally:
                store_module.SINGLE_GETS = saved
        strategies.append(line)
    return rows, strategies


def trip_rows(phases: Sequence[Phase]) -> list[list[str]]:
    out = []
    for p in phases:
        if not p.trips or not p.flow.seen:
            continue
        per = {n: {k: v / len(p.flow.seen) for k, v in c.items()} for n, c in p.trips.items()}
        nats = sum(c.get("nats", 0.0) for c in per.values())
        pg = sum(c.get("postgres", 0.0) for c in per.values())
        cells = [f"{per[n].get('nats', 0):.1f} / {per[n].get('postgres', 0):.1f}"
                 for n in SERVICES]
        oneway = sum(c.get("nats one-way", 0.0) for c in per.values())
        cpu = " / ".join(f"{per[n].get('cpu ms', 0):.1f}" for n in SERVICES)
        out.append([p.name, *cells, f"{nats:.1f}", f"{pg:.1f}", f"{nats + pg:.1f}",
                    f"{oneway:.1f}", cpu])
    return out


def breakdown(p: Phase) -> list[list[str]]:
    """Round trips per mail of one phase by service and kind, the largest first."""
    rows = []
    for service, c in p.trips.items():
        for key, value in c.most_common():
            if key.startswith(("nats ", "postgres ")) and key != "nats one-way" and value:
                rows.append([service, key, f"{value / max(1, len(p.flow.seen)):.2f}"])
    return rows


async def bench(args: argparse.Namespace) -> None:
    quiet_logs()
    instrument()  # this process's own NATS requests, for the load figures
    deadline = Deadline(args.max_seconds)
    began = time.monotonic()
    print(f"# bench.e2e — {machine()}\n")
    with servers(postgres=True) as srv:
        print("Servers: " + "; ".join(srv.notes) + "\n")
        nc = await connect(srv.nats_url, "tidydesk-bench-e2e")
        ns = new_namespace()
        js = nc.jetstream()
        try:
            await apply_topology(js, ns)
            scratch = stream_config(ns) | {"name": f"{ns.upper()}_SCRATCH",
                                           "subjects": [f"{ns}.scratch.*"]}
            await js.add_stream(api.StreamConfig.from_response(scratch))
            load_rows, strategy_rows = await loads(nc, ns, args.load_sizes)
            ceilings = [await publish_ceiling(nc, ns, args.publishes, k) for k in (1, 32)]
        finally:
            await drop_namespace(js, ns)
            await close(nc)
        phases = []
        if args.baseline:
            phases += await pipeline(srv, args, True, deadline, args.workers[0])
        for workers in args.workers:
            phases += await pipeline(srv, args, False, deadline, workers)
    print(f"mails: half new tickets, half replies (In-Reply-To) 25 mails later "
          f"(bench.pipeline.workload); services ingest, threading, policy (x workers), queue "
          f"as processes, event loop {_loop()} (TIDYDESK_LOOP); "
          f"{time.monotonic() - began:.0f} s\n")
    print(table(("run", "in PostgreSQL", "s", "mails/s", "p50 ms", "p99 ms", "SMTP errors"),
                [p.row() for p in phases if p.mails]))
    print("\nlatency: from the mail's due time (paced) or SMTP start (saturated) to its "
          "message.threaded row in PostgreSQL\n")
    print("\n".join(f"- {p.name}" for p in phases if not p.mails))
    print(f"- raw JetStream: awaited js.publish 2 KB, 1 / 32 in flight: "
          f"{ceilings[0]:,.0f} / {ceilings[1]:,.0f} msgs/s\n")
    print("Round trips per mail (NATS requests / PostgreSQL calls, by service):\n")
    print(table(("run", *SERVICES, "NATS", "PostgreSQL", "total", "one-way publishes (acks)",
                 "CPU ms per mail (same order)"),
                trip_rows(phases)))
    main_run = next((p for p in phases if p.mails and not p.name.startswith("before")), None)
    if main_run is not None:
        print(f"\nBy kind, {main_run.name}:\n")
        print(table(("service", "round trip", "per mail"), breakdown(main_run)))
    print("\nTicket load (ms per load, NATS round trips per load):\n")
    print(table(("events", "before ms", "RT", "after, cold ms", "RT", "after, cached ms", "RT",
                 "speed-up cached"), load_rows))
    print(f"\nCold read strategies (ms per load): single gets only / one consumer / "
          f"{store_module.SINGLE_GETS} gets then a consumer (used):\n")
    print(table(("events", "single gets", "consumer", "hybrid (used)"), strategy_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200.0, help="paced mails/s")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--baseline", action="store_true",
                        help="first a run with the old per-event load (round trips before)")
    parser.add_argument("--baseline-mails", type=int, default=2000)
    parser.add_argument("--publishes", type=int, default=10_000)
    parser.add_argument("--load-sizes", type=int, nargs="+", default=[1, 10, 100, 200, 1000])
    parser.add_argument("--workers", type=int, nargs="+", metavar="N",
                        default=sorted({1, os.cpu_count() or 1}),
                        help="run the pipeline once per N, with N instances of ingest, "
                        "threading and policy as `tidydesk up --workers N` (default: 1 and "
                        "the core count)")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--serve", choices=SERVICES, help=argparse.SUPPRESS)
    parser.add_argument("--counts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.counts, args.baseline)
        return
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
