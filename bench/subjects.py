"""Server memory per ticket subject: RSS of nats-server before and after writing one
`ticket.opened` event to each of N distinct `<ns>.tickets.<id>` subjects.

    .venv/bin/python -m bench.subjects [--tickets 100000] [--million]

Beside it, a control in the same run: the same N events, same headers and sizes, all on ONE
subject. The difference between the two is what the subjects themselves cost; the rest is
per-message (dedupe window, block cache). Each scenario gets a fresh embedded nats-server,
and is measured right after the writes and again after a restart of the server (state
rebuilt from disk, nothing transient: the figure a long-running server carries).

With TIDYDESK_NATS_URL set, that server is used instead (pass --server-pid to read its RSS;
no restart column). Prints Markdown; asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client

from bench._common import (
    Deadline,
    drop_namespace,
    fmt,
    machine,
    new_namespace,
    quiet_logs,
    servers,
    table,
)
from tidydesk.common.embedded import EmbeddedNats
from tidydesk.common.events import Envelope, TicketOpened, encode, envelope
from tidydesk.common.store import close, connect, digest_key
from tidydesk.common.topology import apply_topology

WINDOW = 2_000  # async publishes in flight
SETTLE = 3.0  # seconds to let the server settle (GC, flushes) before reading RSS


def rss(pid: int | None) -> int | None:
    """Resident set size in bytes from /proc/<pid>/status (VmRSS), or None."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class Result:
    scenario: str
    events: int = 0
    subjects: int = 0
    seconds: float = 0.0
    before: int | None = None
    after: int | None = None
    at_rest: int | None = None  # after a restart of the server
    store_bytes: int = 0

    def per(self, value: int | None) -> float:
        if value is None or self.before is None or not self.events:
            return float("nan")
        return (value - self.before) / self.events


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.1f}"


def opened_envelope(event: TicketOpened) -> Envelope:
    """What `envelope(event, subject=ticket_id, key="opened")` returns, without its per-call
    `type_of` (msgspec.inspect, ~150 µs) that would make this bench measure the client."""
    eid = hashlib.sha256(f"ticket.opened\0{event.ticket_id}\0opened".encode()).hexdigest()[:32]
    return Envelope(id=eid, source="tidydesk", type="tidydesk.ticket.opened",
                    subject=event.ticket_id, time=datetime.now(UTC), data=event)


async def write(nc: Client, ns: str, n: int, one_subject: bool, deadline: Deadline
                ) -> tuple[int, float]:
    """One ticket.opened per ticket, with the headers JetStreamEventStore.append sends."""
    js = nc.jetstream()
    done = 0
    start = time.perf_counter()
    for lo in range(0, n, WINDOW):
        if deadline.passed():
            break
        futures = []
        for i in range(lo, min(n, lo + WINDOW)):
            message_id = f"bench-{i}@customer.example"
            ticket_id = digest_key(message_id)[:24]
            env = opened_envelope(TicketOpened(
                ticket_id=ticket_id, number=i + 1, subject=f"Printer on floor {i % 40} broken",
                requester=f"customer{i % 5000}@example.com", mailbox="support@acme.example",
                message_id=message_id))
            subject = f"{ns}.tickets.{'all' if one_subject else ticket_id}"
            headers = {"Nats-Msg-Id": env.id, "ce-type": env.type}
            if not one_subject:
                headers["Nats-Expected-Last-Subject-Sequence"] = "0"
                headers["Nats-Expected-Last-Subject-Sequence-Subject"] = subject
            futures.append(await js.publish_async(subject, encode(env), headers=headers))
        for ack in await asyncio.gather(*futures, return_exceptions=True):
            if not isinstance(ack, BaseException):
                done += 1
    return done, time.perf_counter() - start


async def subject_count(nc: Client, stream: str) -> int:
    """The server's own count of distinct subjects in the stream (num_subjects)."""
    reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=10)
    return int(json.loads(reply.data)["state"].get("num_subjects", 0))


async def scenario(name: str, n: int, one_subject: bool, pid_arg: int | None,
                   deadline: Deadline) -> Result:
    """A fresh server (unless given one), topology, writes, RSS before/after/after restart."""
    res = Result(name)
    with servers() as srv:
        pid = srv.nats_pid() or pid_arg
        ns = new_namespace()
        nc = await connect(srv.nats_url, "tidydesk-bench-subjects")
        js = nc.jetstream()
        stream = f"{ns.upper()}_EVENTS"
        try:
            await apply_topology(js, ns)
            await asyncio.sleep(SETTLE)
            res.before = rss(pid)
            res.events, res.seconds = await write(nc, ns, n, one_subject, deadline)
            info = await js.stream_info(stream)
            res.subjects = await subject_count(nc, stream)
            res.store_bytes = int(info.state.bytes)
            await asyncio.sleep(SETTLE)
            res.after = rss(pid)
            if srv.nats is not None:
                await close(nc)
                res.at_rest = await restarted(srv.nats, stream, res.events)
                nc = await connect(srv.nats.url, "tidydesk-bench-subjects")
                js = nc.jetstream()
        finally:
            await drop_namespace(js, ns)
            await close(nc)
    return res


async def restarted(server: EmbeddedNats, stream: str, expected: int) -> int | None:
    """Restart the server on its data, wait until the stream is back whole, read RSS."""
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)
    nc = await connect(server.url, "tidydesk-bench-subjects")
    try:
        js = nc.jetstream()
        for _ in range(600):
            try:
                if (await js.stream_info(stream)).state.messages >= expected:
                    break
            except Exception:  # JetStream still recovering
                pass
            await asyncio.sleep(0.1)
        await asyncio.sleep(SETTLE)
        return rss(server.proc.pid if server.proc else None)
    finally:
        await close(nc)


async def bench(args: argparse.Namespace) -> None:
    quiet_logs()
    n = 1_000_000 if args.million else args.tickets
    deadline = Deadline(args.cap)
    print(f"# tidydesk subject-cardinality bench — {machine()}\n")
    sample = TicketOpened(ticket_id="0" * 24, number=1, subject="s", requester="a@example.com",
                          mailbox="support@acme.example", message_id="m@example.com")
    mine, real = opened_envelope(sample), envelope(sample, subject="0" * 24, key="opened")
    if (mine.id, mine.type, mine.source) != (real.id, real.type, real.source):
        print("WARNING: the event contract changed; bench envelopes differ from envelope()\n")
    per_ticket = await scenario("one subject per ticket (tidydesk)", n, False,
                                args.server_pid, deadline)
    control = await scenario("control: same events on one subject", n, True,
                             args.server_pid, deadline)
    rows = []
    for r in (per_ticket, control):
        rows.append([
            r.scenario, f"{r.events:,}", f"{r.subjects:,}", fmt(r.events / r.seconds
                                                                 if r.seconds else 0),
            mib(r.before), mib(r.after), fmt(r.per(r.after)), mib(r.at_rest),
            fmt(r.per(r.at_rest)), mib(r.store_bytes),
        ])
    print(table(["scenario", "events", "subjects", "writes/s", "RSS before MiB",
                 "RSS after MiB", "B/event after", "RSS after restart MiB",
                 "B/event after restart", "stream on disk MiB"], rows))
    if per_ticket.events and per_ticket.events == control.events:
        live = per_ticket.per(per_ticket.after) - control.per(control.after)
        rest = per_ticket.per(per_ticket.at_rest) - control.per(control.at_rest)
        print(f"\nBytes of server memory per ticket subject (one-subject-per-ticket minus "
              f"control): {fmt(live)} right after the writes, {fmt(rest)} after a restart. "
              f"That is {fmt(live * 1e6 / 2**20)} MiB / {fmt(rest * 1e6 / 2**20)} MiB per "
              f"million ticket subjects; a subject per event type instead (≈ 3 per ticket: "
              f"opened, threaded, solved) would be ≈ 3× that (arithmetic, not measured).")
    elif per_ticket.events < n or control.events < n:
        print(f"\nTime cap reached: {per_ticket.events:,} and {control.events:,} of {n:,} "
              "events written; the per-subject difference is not comparable.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=100_000,
                   help="distinct ticket subjects to write (default 100000)")
    p.add_argument("--million", action="store_true",
                   help="1,000,000 tickets (~3.5 min, ~0.8 GB of temp disk; see README)")
    p.add_argument("--server-pid", type=int, default=None,
                   help="PID of the nats-server behind TIDYDESK_NATS_URL, to read its RSS")
    p.add_argument("--cap", type=float, default=600.0,
                   help="stop writing after this many seconds overall (default 600)")
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
