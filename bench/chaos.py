"""Chaos run: mixed mail through real SMTP while services, NATS and PostgreSQL are killed.

    .venv/bin/python -m bench.chaos [--mails 10000] [--connections 8] [--faults 14]

Every service runs as its own process (as `tidydesk up` runs them) on an embedded
nats-server -js and an embedded PostgreSQL in a temporary directory. While the mails go in,
faults land evenly spaced: SIGKILL of each service in turn, SIGKILL of nats-server
(restarted on the same port), and PostgreSQL stopped with `pg_ctl -m immediate`. Agents
solve and answer tickets through the HTTP API meanwhile; their replies are mailed to an SMTP
sink on loopback. A sender retries a mail until it gets a 250, as a real MTA would.

Afterwards it prints what the guarantees say should hold: every mail answered 250 is in
exactly one ticket, none lost or duplicated, what was parked, that the live projection
equals a rebuild from the stream, and that every reply.sent was mailed exactly once.
Everything listens on 127.0.0.1 only; the run is bounded by --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

from bench._cluster import Cluster
from bench._common import Deadline, machine, quiet_logs, table
from tidydesk.common import db
from tidydesk.common.embedded import EmbeddedPostgres, nats_binary
from tidydesk.common.store import close, connect
from tidydesk.queue.projection import Projector

SERVICES = ("ingest", "threading", "policy", "notify", "queue")
# a mail is where it belongs: in a ticket, or recorded as an auto-reply that threads nowhere
PLACED = "ticket_id IS NOT NULL OR threaded_by = 'auto'"
FAULTS = (*SERVICES, "nats", "postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """The SMTP relay agents' replies go to: counts each Message-ID it was handed."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mid = str(message_from_bytes(envelope.content).get("Message-ID", "")).strip("<> ")
        with self.lock:
            self.seen[mid] += 1
        return "250 OK"


class Nats:
    """nats-server -js on one fixed port, so a restarted server has the clients' URL."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.home / "nats.log", "ab") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                [nats_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port),
                 "-sd", str(self.home / "nats")], stdout=log, stderr=log,
                start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ClusterNats:
    """A 3-node cluster in Nats' shape: a fault kills one node (in turn) and restarts it."""

    def __init__(self, home: Path) -> None:
        self.cluster = Cluster(home)
        self.url, self.victim = self.cluster.url, -1

    def start(self) -> None:
        if self.victim < 0:
            self.cluster.start()
        else:
            self.cluster.start_node(self.victim)

    def kill(self) -> None:
        self.victim = (self.victim + 1) % len(self.cluster.ports)
        self.cluster.kill(self.victim)

    def stop(self) -> None:
        self.cluster.stop()


@dataclass
class Run:
    """Everything one chaos run started, and what it observed."""

    home: Path
    ns: str = "chaos"
    nats: Nats | ClusterNats | None = None
    pg: EmbeddedPostgres | None = None
    database_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)  # Message-IDs the listener took (250)
    refused: Counter[str] = field(default_factory=Counter)  # non-250 answers and failures
    faults: Counter[str] = field(default_factory=Counter)
    replies_requested: int = 0
    stopping: bool = False

    def start_service(self, name: str) -> None:
        with open(self.home / f"{name}.log", "ab") as log:  # the child keeps its own handle
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"tidydesk.{name}"], env=self.env, stdout=log,
                stderr=log, start_new_session=True)

    def supervise(self) -> None:
        """Restart a dead service (as `tidydesk up` does), in a thread."""
        while not self.stopping:
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None and not self.stopping:
                    self.start_service(name)
            time.sleep(0.2)

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1
        if kind == "nats":
            assert self.nats is not None
            self.nats.kill()
            time.sleep(1.0)
            self.nats.start()
        elif kind == "postgres":
            assert self.pg is not None
            subprocess.run([*self.pg.as_user, str(self.pg.bindir / "pg_ctl"), "-D",
                            str(self.pg.data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, check=False)
            time.sleep(1.0)
            self.pg.start()
        else:
            self.procs[kind].send_signal(signal.SIGKILL)


def build_mail(i: int, rng: random.Random, sent: list[str]) -> tuple[str, bytes]:
    """A mix: new requests, replies, thanks, unrelated questions sent as replies, out-of-office
    answers, fresh chasers, exact resends and hostile bytes."""
    kind = rng.random()
    if kind < 0.05 and sent:  # exact resend of an earlier mail (MTA retry): deduped
        return sent[rng.randrange(len(sent))], b""
    mid = f"chaos{i}@customer.example"
    msg = EmailMessage()
    msg["From"] = f"Customer {i % 400} <c{i % 400}@customer.example>"
    msg["To"] = "support@acme.example"
    msg["Date"] = formatdate(1_774_000_000 + i, localtime=False)
    msg["Message-ID"] = f"<{mid}>"
    if kind < 0.40 and sent:
        parent = sent[rng.randrange(max(0, len(sent) - 200), len(sent))]
        msg["In-Reply-To"] = msg["References"] = f"<{parent}>"
        msg["Subject"] = f"Re: case {i}"
        if kind < 0.15:
            body = "Thank you, that solved it!"
        elif kind < 0.30:
            body = f"It still fails after the update, error code {i}. What should I try next?"
        elif kind < 0.35:  # an unrelated question sent as a reply
            body = f"Separate question: how do I add a second admin user to account {i}?"
        else:  # an out-of-office answer, one in two without Auto-Submitted
            body = ("I am out of the office until Monday with limited access to email. "
                    "I will respond when I return.")
            msg.replace_header("Subject", f"Out of office: case {i}")
            if kind < 0.375:
                msg["Auto-Submitted"] = "auto-replied"
    elif kind < 0.45:  # a fresh chaser without thread headers
        msg["Subject"] = f"Printer {i - 7} still broken"
        body = f"Any update on printer {i - 7}? It still shows error E{(i - 7) % 13}."
    else:
        msg["Subject"] = f"Printer {i} does not print"
        body = f"Hello, printer {i} in room {i % 97} shows error E{i % 13}. Please help."
    msg.set_content(body)
    raw = msg.as_bytes()
    if 0.95 <= kind < 0.975:  # NUL and control bytes in the body
        raw = raw.replace(b"Hello,", b"Hel\x00lo,\x01\x1b")
    elif kind >= 0.975:  # NUL only after decoding an encoded word
        raw = raw.replace(b"Subject: Printer", b"Subject: =?utf-16be?B?AAA=?= Printer")
    return mid, raw


def send_all(run: Run, mails: list[tuple[str, bytes]], port: int, deadline: Deadline) -> None:
    """One SMTP connection's share; a refused or failed mail is sent again until 250."""
    smtp: smtplib.SMTP | None = None
    for mid, raw in mails:
        while not deadline.passed():
            try:
                if smtp is None:
                    smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
                smtp.sendmail("c@customer.example", ["support@acme.example"], raw)
                run.answered.add(mid)
                break
            except (OSError, smtplib.SMTPException) as exc:
                run.refused[type(exc).__name__] += 1
                with contextlib.suppress(Exception):
                    if smtp is not None:
                        smtp.close()
                smtp = None
                time.sleep(0.2)
    if smtp is not None:
        with contextlib.suppress(Exception):
            smtp.quit()


def api(port: int, method: str, path: str, body: dict[str, Any] | None = None,
        token: str | None = None) -> Any:
    """One API call; the bearer token is `token` or $TIDYDESK_API_TOKEN (an admin one)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token := token or os.environ.get("TIDYDESK_API_TOKEN", ""):
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def agents(run: Run, port: int, rng: random.Random, done: threading.Event) -> None:
    """Solve and answer open tickets, retrying each request with its idempotency key."""
    n, token = 0, run.env["TIDYDESK_API_TOKEN"]
    while not done.is_set():
        time.sleep(0.3)
        try:
            tickets = api(port, "GET", "/tickets?status=open&limit=20", token=token)["tickets"]
        except Exception:
            continue
        for t in tickets[:3]:
            n += 1
            key = f"agent-{n}"
            for _ in range(50):  # the API may be mid-restart: same key, same reply
                try:
                    api(port, "POST", f"/tickets/{t['id']}/reply",
                        {"text": f"Please try driver {n}.", "agent": "kim",
                         "idempotency_key": key}, token)
                    run.replies_requested += 1
                    if rng.random() < 0.5:
                        api(port, "POST", f"/tickets/{t['id']}/solve", {"agent": "kim"}, token)
                    break
                except Exception:
                    time.sleep(0.3)


async def settle(pool: asyncpg.Pool, run: Run, deadline: Deadline) -> int:
    """Wait until every answered mail is projected (or the deadline); return the stream end."""
    nc = await connect(run.env["TIDYDESK_NATS_URL"], "chaos-check")
    try:
        js = nc.jetstream()
        stable = 0
        while not deadline.passed():
            with contextlib.suppress(Exception):
                end = (await js.stream_info(f"{run.ns.upper()}_EVENTS")).state.last_seq
                done = await pool.fetchval("SELECT seq FROM checkpoints WHERE name = 'queue'")
                placed = await pool.fetchval(
                    f"SELECT count(*) FROM messages WHERE message_id = ANY($1::text[]) AND "
                    f"({PLACED})", list(run.answered))
                stable = stable + 1 if done == end and placed == len(run.answered) else 0
                if stable >= 10:  # nothing moved for 5 s with everything placed
                    return int(end)
            await asyncio.sleep(0.5)
        return -1
    finally:
        await close(nc)


async def check(run: Run, deadline: Deadline, sink: Sink) -> list[tuple[str, object]]:
    pool = await db.connect(run.database_url, run.ns, attempts=20)
    try:
        end = await settle(pool, run, deadline)
        answered = list(run.answered)
        placed = int(await pool.fetchval(
            "SELECT count(*) FROM messages WHERE message_id = ANY($1::text[]) AND "
            "ticket_id IS NOT NULL", answered))
        recorded = int(await pool.fetchval(
            "SELECT count(*) FROM messages WHERE message_id = ANY($1::text[]) AND "
            "ticket_id IS NULL AND threaded_by = 'auto'", answered))
        doubled = int(await pool.fetchval(
            "SELECT count(*) FROM (SELECT data->'data'->>'message_id' AS mid FROM events "
            "WHERE type = 'tidydesk.message.threaded' AND data->'data'->>'method' <> 'split' "
            "GROUP BY 1 HAVING count(DISTINCT ticket_id) > 1) x"))
        sent = int(await pool.fetchval(
            "SELECT count(*) FROM events WHERE type = 'tidydesk.reply.sent'"))
        live = await _snapshot(pool)
        nc = await connect(run.env["TIDYDESK_NATS_URL"], "chaos-rebuild")
        rebuild_pool = await db.connect(run.database_url, f"{run.ns}_rebuild", attempts=5)
        try:
            await db.migrate(rebuild_pool)
            await Projector(nc.jetstream(), rebuild_pool, run.ns).run(stop_at_end=True)
            rebuilt = await _snapshot(rebuild_pool)
            parked = (await nc.jetstream().stream_info(f"{run.ns.upper()}_PARKED")
                      ).state.messages
        finally:
            await rebuild_pool.close()
            await close(nc)
    finally:
        await pool.close()
    mailed = sum(1 for mid, n in sink.seen.items() if n and mid)
    twice = sum(1 for n in sink.seen.values() if n > 1)
    return [
        ("mails answered 250 (distinct Message-IDs)", len(answered)),
        ("… in exactly one ticket", placed),
        ("… recorded without a ticket (auto-replies that thread nowhere)", recorded),
        ("lost (answered, neither in a ticket nor recorded)", len(answered) - placed - recorded),
        ("duplicated (threaded into two tickets)", doubled),
        ("parked events", parked),
        ("projection == rebuild from the stream", live == rebuilt),
        ("reply.sent events / mailed / mailed twice", f"{sent} / {mailed} / {twice}"),
        ("settled at stream sequence", end if end >= 0 else "NOT SETTLED"),
    ]


async def _snapshot(pool: asyncpg.Pool) -> tuple[list[Any], list[Any]]:
    tickets = await pool.fetch("SELECT id, number, status, subject, requester, split_from, "
                               "message_count FROM tickets ORDER BY id")
    messages = await pool.fetch("SELECT message_id, ticket_id, threaded_by, decision "
                                "FROM messages ORDER BY message_id")
    return [tuple(r) for r in tickets], [tuple(r) for r in messages]


def chaos(mails: int = 10_000, connections: int = 8, faults: int = 14, seed: int = 7,
          max_seconds: float = 1200.0, cluster: bool = False
          ) -> tuple[list[tuple[str, object]], Run]:
    """One whole run; returns the figures table rows and the run (for the suite's test)."""
    deadline = Deadline(max_seconds)
    rng = random.Random(seed)
    home = Path(tempfile.mkdtemp(prefix="tidydesk-chaos-"))
    run = Run(home=home)
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    done = threading.Event()
    try:
        run.nats = ClusterNats(home) if cluster else Nats(home)
        run.nats.start()
        run.pg = EmbeddedPostgres(home)
        run.database_url = run.pg.start()
        smtp_port, http_port = free_port(), free_port()
        run.env = {**os.environ, "TIDYDESK_NATS_URL": run.nats.url,
                   "TIDYDESK_DATABASE_URL": run.database_url, "TIDYDESK_NAMESPACE": run.ns,
                   "TIDYDESK_SMTP_PORT": str(smtp_port), "TIDYDESK_HTTP_PORT": str(http_port),
                   "TIDYDESK_HEALTH_PORT": "0", "TIDYDESK_LOG_FORMAT": "json",
                   "TIDYDESK_LOG_LEVEL": "warning",
                   "TIDYDESK_SMTP_RELAY": f"127.0.0.1:{controller.port}",
                   "TIDYDESK_REPLICAS": "3" if cluster else "1"}
        for _ in range(60):  # = `tidydesk tokens create --scope admin`, for the agents
            minted = subprocess.run(  # (a cluster elects its JetStream leader first)
                [sys.executable, "-m", "tidydesk.queue.tokens", "create", "--scope", "admin",
                 "--name", "chaos"], env=run.env, capture_output=True, text=True, timeout=60,
                check=False)
            if minted.returncode == 0:
                break
            time.sleep(1)
        run.env["TIDYDESK_API_TOKEN"] = minted.stdout.split()[-1]
        for name in SERVICES:
            run.start_service(name)
        supervisor = threading.Thread(target=run.supervise, daemon=True)
        supervisor.start()
        sent: list[str] = []
        corpus: list[tuple[str, bytes]] = []
        by_id: dict[str, bytes] = {}
        for i in range(mails):
            mid, raw = build_mail(i, rng, sent)
            raw = raw or by_id[mid]
            by_id.setdefault(mid, raw)
            sent.append(mid)
            corpus.append((mid, raw))
        shares = [corpus[k::connections] for k in range(connections)]
        agent = threading.Thread(target=agents, args=(run, http_port, rng, done), daemon=True)
        senders = [threading.Thread(target=send_all, args=(run, share, smtp_port, deadline))
                   for share in shares]
        agent.start()
        for t in senders:
            t.start()
        plan = [FAULTS[k % len(FAULTS)] for k in range(faults)]
        rng.shuffle(plan)
        unique = len({mid for mid, _ in corpus})
        for k, kind in enumerate(plan, 1):  # spaced by progress, not time: same on any machine
            while (len(run.answered) < unique * k // (faults + 1)
                   and any(t.is_alive() for t in senders)):
                time.sleep(0.05)
            run.fault(kind)
        for t in senders:
            t.join(deadline.left())
        done.set()
        agent.join(15)
        rows = asyncio.run(check(run, deadline, sink))
    finally:
        run.stopping = True
        done.set()
        for proc in run.procs.values():
            proc.terminate()
        for proc in run.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        controller.stop()
        if isinstance(run.nats, ClusterNats):
            run.nats.stop()
        elif run.nats is not None:
            run.nats.kill()
        if run.pg is not None:
            run.pg.stop()
    rows.insert(0, ("distinct mails offered (5% resent, 5% hostile bytes)",
                    len({mid for mid, _ in corpus})))
    rows.insert(2, ("faults injected", ", ".join(f"{k}×{n}" for k, n in sorted(
        run.faults.items())) or "none"))
    rows.insert(3, ("sends retried after a refusal or a dropped connection",
                    sum(run.refused.values())))
    return rows, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--faults", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    parser.add_argument("--cluster", action="store_true", help="a 3-node JetStream cluster "
                        "with R3 streams; the nats fault kills one node")
    args = parser.parse_args()
    quiet_logs()
    started = time.monotonic()
    rows, run = chaos(args.mails, args.connections, args.faults, args.seed, args.max_seconds,
                      args.cluster)
    print(f"# bench.chaos — {machine()}\n")
    where = "a 3-node cluster (R3)" if args.cluster else "one nats-server"
    print(f"{args.mails} mails over {args.connections} SMTP connections to {where}, "
          f"{args.faults} faults,"
          f" seed {args.seed}, {time.monotonic() - started:.0f} s; logs in {run.home}\n")
    print(table(("guarantee", "figure"), rows))


if __name__ == "__main__":
    main()
