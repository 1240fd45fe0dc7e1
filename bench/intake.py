"""Intake figures, side by side in one run: parse+extract on one core, the raw JetStream
publish ceiling, Intake.accept, the real SMTP listener, and how fast `message.received`
events land in the stream.

    .venv/bin/python -m bench.intake [--concurrency 32] [--smtp-connections 8] [--cap 150]

Prints Markdown tables; asserts nothing about speed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import smtplib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

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
    stream_config,
    table,
)
from tidydesk.common.events import MessageReceived
from tidydesk.common.store import JetStreamEventStore, RawStore, close, connect
from tidydesk.common.topology import apply_topology
from tidydesk.ingest.intake import Intake
from tidydesk.ingest.parse import intake_key, parse
from tidydesk.ingest.smtp import serve
from tidydesk.tickets.mailbox import tenant

PAYLOAD = 2048  # bytes of a raw-publish message, about a small mail's event


@dataclass
class Run:
    """One measured phase: how many operations, how long, and each one's latency."""

    name: str
    inflight: int
    done: int = 0
    failed: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    latencies: tuple[float, ...] = ()
    in_stream_rate: float = float("nan")  # message.received per second seen in the stream

    def row(self) -> list[str]:
        rate = self.done / self.seconds if self.seconds else float("nan")
        mbs = self.nbytes / self.seconds / 1e6 if self.seconds else float("nan")
        return [
            self.name, str(self.inflight), f"{self.done:,}" + (f" ({self.failed} failed)"
                                                               if self.failed else ""),
            fmt(self.seconds, 2), fmt(rate), fmt(mbs, 2),
            fmt(percentile(self.latencies, 50) * 1e3, 2),
            fmt(percentile(self.latencies, 95) * 1e3, 2), fmt(self.in_stream_rate),
        ]


HEADERS = ["path", "in flight", "messages", "s", "msgs/s", "MB/s", "p50 ms", "p95 ms",
           "message.received/s in stream"]


async def drive(name: str, items: Sequence[bytes], op: Callable[[bytes], Awaitable[object]],
                inflight: int, seconds: float) -> Run:
    """Run `op` over `items` with `inflight` workers until done or `seconds` have passed."""
    run = Run(name, inflight)
    latencies: list[float] = []
    it = iter(items)
    start = time.perf_counter()
    stop = start + seconds

    async def worker() -> None:
        for item in it:
            if time.perf_counter() > stop:
                return
            t0 = time.perf_counter()
            try:
                await op(item)
            except Exception:
                run.failed += 1
                continue
            latencies.append(time.perf_counter() - t0)
            run.done += 1
            run.nbytes += len(item)

    await asyncio.gather(*(worker() for _ in range(inflight)))
    run.seconds = time.perf_counter() - start
    run.latencies = tuple(latencies)
    return run


class StreamWatch:
    """Polls the event stream's message count (own connection) to time when events land."""

    def __init__(self, js: JetStreamContext, stream: str) -> None:
        self.js, self.stream = js, stream

    async def count(self) -> int:
        return int((await self.js.stream_info(self.stream)).state.messages)

    async def rate_until(self, base: int, expected: int, started: float, within: float
                         ) -> float:
        """message.received per second: `expected` new events since `started`, timed by
        polling until they are all in the stream (nan when they never all arrive)."""
        deadline = time.perf_counter() + within
        while time.perf_counter() < deadline:
            if await self.count() - base >= expected:
                return expected / (time.perf_counter() - started) if expected else 0.0
            await asyncio.sleep(0.01)
        return float("nan")


async def watched(watch: StreamWatch, phase: Callable[[], Awaitable[Run]]) -> Run:
    """Run an intake phase; afterwards time how long its events took to be in the stream."""
    base = await watch.count()
    started = time.perf_counter()
    run = await phase()
    run.in_stream_rate = await watch.rate_until(base, run.done, started, within=10.0)
    return run


def unique_mails(samples: Sequence[Sample], n: int, tag: str) -> list[bytes]:
    """n distinct mails (own Message-ID, so own bytes) cycling through the corpus."""
    return [samples[i % len(samples)].mail(message_id=f"{tag}-{i}@bench.example")
            for i in range(n)]


# -- SMTP clients, in a process of their own so they don't share the server's GIL -------

def smtp_clients(port: int, mails: list[bytes], connections: int, seconds: float
                 ) -> tuple[int, int, float, list[float]]:
    """Send `mails` over `connections` SMTP sessions in threads: (ok, failed, s, latencies)."""
    lock = threading.Lock()
    it = iter(mails)
    ok = failed = 0
    latencies: list[float] = []
    start = time.perf_counter()
    stop = start + seconds

    def session() -> None:
        nonlocal ok, failed
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            while time.perf_counter() < stop:
                with lock:
                    raw = next(it, None)
                if raw is None:
                    return
                t0 = time.perf_counter()
                try:
                    client.sendmail("customer@example.com", ["support@acme.example"], raw)
                except smtplib.SMTPException:
                    with lock:
                        failed += 1
                    continue
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    ok += 1

    threads = [threading.Thread(target=session) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok, failed, time.perf_counter() - start, latencies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- phases -------------------------------------------------------------------------------

def parse_throughput(raws: Sequence[bytes], seconds: float) -> tuple[Run, int, int]:
    """parse() over the corpus, round and round, for `seconds`, in this one thread."""
    ok = rejected = 0
    for raw in raws:  # one pass to classify (and warm up)
        if isinstance(parse(raw, mailbox="support@acme.example"), MessageReceived):
            ok += 1
        else:
            rejected += 1
    run = Run("parse + extract (pure, 1 core)", 1)
    latencies: list[float] = []
    start = time.perf_counter()
    stop = start + seconds
    while time.perf_counter() < stop:
        for raw in raws:
            t0 = time.perf_counter()
            parse(raw, mailbox="support@acme.example")
            latencies.append(time.perf_counter() - t0)
            run.done += 1
            run.nbytes += len(raw)
    run.seconds = time.perf_counter() - start
    run.latencies = tuple(latencies)
    return run, ok, rejected


async def bench(args: argparse.Namespace) -> None:
    quiet_logs()
    cap = Deadline(args.cap)
    samples, counts = corpus()
    raws = [s.mail() for s in samples]
    print(f"# tidydesk intake bench — {machine()}\n")
    print("Corpus: " + ", ".join(f"{v} {k}" for k, v in counts.items()) +
          f"; {len(raws)} mails, {sum(map(len, raws)):,} bytes, "
          f"mean {sum(map(len, raws)) // len(raws):,} B\n")

    parsed, ok, rejected = parse_throughput(raws, cap.cap(args.parse_seconds))
    print(f"Corpus parse outcome: {ok} message.received, {rejected} message.rejected\n")

    n = args.concurrency
    phase_s = args.phase_seconds
    with servers() as srv:
        nc: Client = await connect(srv.nats_url, "tidydesk-bench-intake")
        watch_nc: Client = await connect(srv.nats_url, "tidydesk-bench-watch")
        js = nc.jetstream()
        ns = new_namespace()
        scratch = f"{ns.upper()}_SCRATCH"
        runs: list[Run] = [parsed]
        try:
            await apply_topology(js, ns)
            cfg = stream_config(ns) | {"name": scratch, "subjects": [f"{ns}.scratch.*"]}
            await js.add_stream(api.StreamConfig.from_response(cfg))
            store = JetStreamEventStore(js, ns)
            raw_store = RawStore(js, ns)
            intake = Intake(store, raw_store)
            watch = StreamWatch(watch_nc.jetstream(), store.stream)

            # 1. raw JetStream publish ceiling, same stream config, ~2 KB payloads
            payload = (os.urandom(PAYLOAD // 2).hex()).encode()[:PAYLOAD]
            blobs = [payload] * args.publishes

            async def raw_publish(data: bytes) -> object:
                return await js.publish(f"{ns}.scratch.x", data)

            runs.append(await drive("js.publish 2 KB, scratch subject", blobs, raw_publish, 1,
                                    cap.cap(phase_s)))
            runs.append(await drive("js.publish 2 KB, scratch subject", blobs, raw_publish, n,
                                    cap.cap(phase_s)))

            # 2. what Intake.accept is made of, one at a time: the raw store, then the event
            mails = unique_mails(samples, args.mails, "raw")
            runs.append(await drive("RawStore.put alone", mails, raw_store.put, 1,
                                    cap.cap(phase_s)))
            events = [(parse(m, mailbox="support@acme.example"), m) for m in
                      unique_mails(samples, args.mails, "evt")]
            by_raw = {m: e for e, m in events}

            async def record(m: bytes) -> object:
                e = by_raw[m]
                mid = e.message_id if isinstance(e, MessageReceived) else e.digest
                return await store.record_intake(e, intake_key(tenant(e.mailbox), mid))

            runs.append(await watched(watch, lambda: drive(
                "record_intake alone (event publish)", [m for _, m in events], record, 1,
                cap.cap(phase_s))))

            # 3. Intake.accept = parse + raw store put + intake event publish
            async def accept(m: bytes) -> object:
                return await intake.accept(m, mailbox="support@acme.example")

            seq_mails = unique_mails(samples, args.mails, "seq")
            runs.append(await watched(watch, lambda: drive(
                "Intake.accept", seq_mails, accept, 1, cap.cap(phase_s))))
            conc_mails = unique_mails(samples, args.mails * 2, "conc")
            runs.append(await watched(watch, lambda: drive(
                "Intake.accept", conc_mails, accept, n, cap.cap(phase_s))))

            # 4. the real SMTP listener on a free loopback port; clients in another process
            port = free_port()
            server = await serve(intake, "127.0.0.1", port, 25 * 1024 * 1024)
            smtp_mails = unique_mails(samples, args.mails * 2, "smtp")
            ctx = multiprocessing.get_context("spawn")
            try:
                with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
                    loop = asyncio.get_running_loop()
                    # warm the worker process up (imports) outside the timed part
                    await loop.run_in_executor(pool, smtp_clients, port, smtp_mails[:1], 1,
                                               10.0)
                    base = await watch.count()
                    started = time.perf_counter()
                    ok_n, failed, secs, lats = await loop.run_in_executor(
                        pool, smtp_clients, port, smtp_mails[1:], args.smtp_connections,
                        cap.cap(phase_s))
                    smtp = Run(f"SMTP DATA → 250 ({args.smtp_connections} connections)",
                               args.smtp_connections, ok_n, failed,
                               sum(len(m) for m in smtp_mails[1:ok_n + 1]), secs, tuple(lats))
                    smtp.in_stream_rate = await watch.rate_until(base, ok_n, started, 10.0)
                    runs.append(smtp)
            finally:
                server.close()
                await server.wait_closed()

            print(table(HEADERS, [r.row() for r in runs]))
            total = await watch.count()
            received = await count_types(js, ns)
            print(f"\nEvent stream after the run: {total:,} events, "
                  f"{received.get('tidydesk.message.received', 0):,} of them message.received"
                  f" ({', '.join(f'{k}: {v}' for k, v in sorted(received.items()))}).")
            print("; ".join(srv.notes) + f"; namespace {ns}.")
        finally:
            await drop_namespace(js, ns)
            await close(watch_nc)
            await close(nc)


async def count_types(js: JetStreamContext, ns: str, within: float = 30.0) -> dict[str, int]:
    """ce-type of every intake event, read back from the stream with an ordered consumer."""
    stream = f"{ns.upper()}_EVENTS"
    last = int((await js.stream_info(stream)).state.last_seq)
    counts: dict[str, int] = {}
    if not last:
        return counts
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        kind = (msg.headers or {}).get("ce-type", "?")
        counts[kind] = counts.get(kind, 0) + 1
        if msg.metadata.sequence.stream >= last:
            done.set()

    sub = await js.subscribe(f"{ns}.inbound.*", cb=on_msg, ordered_consumer=True)
    try:
        await asyncio.wait_for(done.wait(), within)
    except TimeoutError:
        counts["(not read in time)"] = 1
    finally:
        await sub.unsubscribe()
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", type=int, default=32,
                   help="in-flight publishes/accepts for the concurrent rows (default 32)")
    p.add_argument("--smtp-connections", type=int, default=8,
                   help="SMTP client connections, each in a thread (default 8)")
    p.add_argument("--publishes", type=int, default=20_000,
                   help="raw publishes per row at most (default 20000)")
    p.add_argument("--mails", type=int, default=2_000,
                   help="mails per intake row at most; concurrent rows get twice (default 2000)")
    p.add_argument("--parse-seconds", type=float, default=5.0)
    p.add_argument("--phase-seconds", type=float, default=12.0,
                   help="time cap of each measured row (default 12)")
    p.add_argument("--cap", type=float, default=150.0,
                   help="overall time cap in seconds for the measured rows (default 150)")
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
