"""tidydesk beside the `eventsourcing` library on the same PostgreSQL, in the same run.

    .venv/bin/python -m bench.peer [--tickets 5000]      # needs the [bench] extra

Two workloads, each run by both, one after another in this process:

- append: 5,000 tickets x 4 events (opened, threaded, reply sent, solved), one command per
  event: load the ticket, decide, append with optimistic concurrency. tidydesk:
  `JetStreamEventStore.decide` (JetStream, per-ticket expected sequence, its ticket cache);
  eventsourcing: an `Application` with an `Aggregate` per ticket, `repository.get` +
  `save` on `eventsourcing.postgres` (its aggregate cache on, as ours is). Once with one
  command in flight, once with several (tidydesk: asyncio tasks, one ticket each at a time;
  eventsourcing: threads, as it is synchronous).
- projection catch-up: the 20,000 events just appended, projected from the start into
  PostgreSQL with the checkpoint in the same transaction. tidydesk: the queue `Projector`
  as `tidydesk up` runs it (tickets, messages and events tables, batches of up to 1,024,
  every commit durable); eventsourcing: its
  `ProjectionRunner` with a `PostgresTrackingRecorder` view (one ticket row per event and
  the tracking record, one transaction per event, as its documentation shows).

Prints Markdown; asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import singledispatchmethod
from typing import Any

import asyncpg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from psycopg.conninfo import conninfo_to_dict
from psycopg.sql import SQL, Identifier

from bench._common import (
    drop_namespace,
    fmt,
    machine,
    new_namespace,
    quiet_logs,
    servers,
    table,
)
from tidydesk.common import db
from tidydesk.common.events import (
    Event,
    MessageThreaded,
    ReplySent,
    TicketOpened,
    TicketSolved,
)
from tidydesk.common.store import JetStreamEventStore, close, connect
from tidydesk.common.topology import apply_topology
from tidydesk.queue.projection import Projector
from tidydesk.tickets.ticket import Ticket

STEPS = 4  # events (commands) per ticket


# -- the eventsourcing side ----------------------------------------------------------------

class EsTicket(Aggregate):
    """The same ticket life as an eventsourcing aggregate."""

    class Opened(Aggregate.Created):
        subject: str
        requester: str

    class Threaded(Aggregate.Event):
        message_id: str

    class Replied(Aggregate.Event):
        message_id: str
        text: str

    class Solved(Aggregate.Event):
        agent: str

    @event(Opened)
    def __init__(self, subject: str, requester: str) -> None:
        self.subject, self.requester, self.status = subject, requester, "open"
        self.messages: list[str] = []

    @event(Threaded)
    def thread(self, message_id: str) -> None:
        self.messages.append(message_id)

    @event(Replied)
    def reply(self, message_id: str, text: str) -> None:
        self.messages.append(message_id)

    @event(Solved)
    def solve(self, agent: str) -> None:
        self.status = "solved"


class Desk(Application[uuid.UUID]):
    """One command per event, as tidydesk's services issue them."""

    def command(self, ticket: uuid.UUID | None, step: int, i: int) -> uuid.UUID:
        if ticket is None:
            t = EsTicket(subject=f"Printer on floor {i % 40}", requester=f"c{i}@example.com")
        else:
            t = self.repository.get(ticket)
            if step == 1:
                t.thread(message_id=f"m{i}@example.com")
            elif step == 2:
                t.reply(message_id=f"r{i}@acme.example", text="We sent a technician.")
            else:
                t.solve(agent="agent@acme")
        self.save(t)
        return t.id


class EsTicketView(PostgresTrackingRecorder):
    """A tickets table kept by the projection, written with its tracking record."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.view = Identifier(datastore.schema), Identifier("es_tickets")
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {0}.{1} (id uuid PRIMARY KEY, status text NOT NULL,"
            " messages int NOT NULL, updated_at timestamptz NOT NULL)").format(*self.view))

    def record(self, ticket: uuid.UUID, status: str | None, messages: int, at: Any,
               tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL(
                "INSERT INTO {0}.{1} AS t VALUES (%s, coalesce(%s, 'open'), %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET status = coalesce(%s, t.status),"
                " messages = t.messages + %s, updated_at = %s").format(*self.view),
                (ticket, status, messages, at, status, messages, at))
            self._insert_tracking(curs, tracking)


class EsTicketProjection(Projection[EsTicketView]):
    name = "estickets"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, e: EsTicket.Opened, tracking: Tracking) -> None:
        self.view.record(e.originator_id, "open", 0, e.timestamp, tracking)

    @process_event.register
    def _(self, e: EsTicket.Threaded, tracking: Tracking) -> None:
        self.view.record(e.originator_id, None, 1, e.timestamp, tracking)

    @process_event.register
    def _(self, e: EsTicket.Replied, tracking: Tracking) -> None:
        self.view.record(e.originator_id, None, 1, e.timestamp, tracking)

    @process_event.register
    def _(self, e: EsTicket.Solved, tracking: Tracking) -> None:
        self.view.record(e.originator_id, "solved", 0, e.timestamp, tracking)


def es_env(dsn: str, schema: str, pool: int) -> dict[str, str]:
    """eventsourcing.postgres settings for the PostgreSQL of `dsn`, tables in `schema`."""
    info = conninfo_to_dict(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(info.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(info.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(info.get("port") or "5432"),
        "POSTGRES_USER": str(info.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(info.get("password") or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(pool),
        "CREATE_TABLE": "y",
        "AGGREGATE_CACHE_MAXSIZE": "100000",
    }


def es_append(app: Desk, tickets: int, inflight: int) -> float:
    """Every ticket's commands in order, `inflight` tickets at a time; seconds."""
    def one_ticket(i: int) -> None:
        ticket = None
        for step in range(STEPS):
            ticket = app.command(ticket, step, i)

    start = time.perf_counter()
    if inflight == 1:
        for i in range(tickets):
            one_ticket(i)
    else:
        with ThreadPoolExecutor(inflight) as pool:
            list(pool.map(one_ticket, range(tickets)))
    return time.perf_counter() - start


def es_catch_up(env: dict[str, str]) -> tuple[int, float]:
    """ProjectionRunner from the start to the application's last notification."""
    start = time.perf_counter()
    with ProjectionRunner(application_class=Desk, projection_class=EsTicketProjection,
                          view_class=EsTicketView, env=env) as runner:
        last = runner.app.recorder.max_notification_id() or 0
        runner.wait(last, timeout=600)
    return last, time.perf_counter() - start


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """eventsourcing reads its settings from os.environ as well as the given env."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- the tidydesk side ---------------------------------------------------------------------

def decider(i: int, step: int) -> Callable[[Ticket], list[tuple[Event, str]]]:
    def decide(ticket: Ticket) -> list[tuple[Event, str]]:
        tid = ticket.ticket_id
        events: list[Event] = [
            TicketOpened(ticket_id=tid, number=i + 1, subject=f"Printer on floor {i % 40}",
                         requester=f"c{i}@example.com", mailbox="support@acme.example",
                         message_id=f"m{i}@example.com"),
            MessageThreaded(ticket_id=tid, message_id=f"m{i}@example.com", method="new"),
            ReplySent(ticket_id=tid, message_id=f"r{i}@acme.example", agent="agent@acme",
                      text="We sent a technician.", sender="support@acme.example",
                      to=f"c{i}@example.com", subject="Re: Printer",
                      reply_to="support@acme.example"),
            TicketSolved(ticket_id=tid, agent="agent@acme"),
        ]
        return [(events[step], f"step-{step}")]
    return decide


async def our_append(store: JetStreamEventStore, prefix: str, tickets: int, inflight: int
                     ) -> float:
    async def one_ticket(i: int) -> None:
        for step in range(STEPS):
            await store.decide(f"{prefix}{i}", decider(i, step))

    queue = iter(range(tickets))

    async def lane() -> None:
        for i in queue:
            await one_ticket(i)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(inflight)))
    return time.perf_counter() - start


@dataclass
class Row:
    workload: str
    ours: float  # per second
    theirs: float

    def cells(self) -> list[str]:
        return [self.workload, fmt(self.ours), fmt(self.theirs), f"{self.ours / self.theirs:.1f}x"]


async def bench(args: argparse.Namespace) -> None:
    quiet_logs()
    with servers(postgres=True) as srv:
        namespaces = [new_namespace(), new_namespace()]  # one per append run
        nc = await connect(srv.nats_url, "tidydesk-bench-peer")
        js = nc.jetstream()
        es_schemas = [f"{ns}_es" for ns in namespaces]
        admin = await asyncpg.connect(srv.database_url)
        rows: list[Row] = []
        try:
            n = args.tickets * STEPS
            for ns, schema, inflight in zip(namespaces, es_schemas, (1, args.inflight),
                                            strict=True):
                await apply_topology(js, ns)
                await admin.execute(f'CREATE SCHEMA "{schema}"')
                ours = await our_append(JetStreamEventStore(js, ns), "t", args.tickets,
                                        inflight)
                env = es_env(srv.database_url, schema, max(inflight, 2))
                with environment(env):
                    app = Desk(env=env)
                    theirs = await asyncio.to_thread(es_append, app, args.tickets, inflight)
                    app.close()
                rows.append(Row(f"append, {inflight} in flight (events/s)", n / ours,
                                n / theirs))

            # catch-up over the first run's events, from the start, each into a new view
            pool = await db.connect(srv.database_url, namespaces[0], attempts=1)
            try:
                await db.migrate(pool)
                start = time.perf_counter()
                done = await Projector(js, pool, namespaces[0]).run(stop_at_end=True)
                ours_s = time.perf_counter() - start
            finally:
                await pool.close()
            env = es_env(srv.database_url, es_schemas[0], 2)
            with environment(env):
                count, theirs_s = await asyncio.to_thread(es_catch_up, env)
            rows.append(Row(f"projection catch-up, {done:,} / {count:,} events (events/s)",
                            done / ours_s, count / theirs_s))
        finally:
            for ns in namespaces:
                await drop_namespace(js, ns)
            await close(nc)
            for schema in (*namespaces, *es_schemas):
                await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()
        print(f"\n{machine()}; {'; '.join(srv.notes)}")
        print(f"{args.tickets:,} tickets x {STEPS} events, one command per event\n")
        print(table(("workload", "tidydesk", "eventsourcing", "ratio"),
                    [r.cells() for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=5_000)
    parser.add_argument("--inflight", type=int, default=16,
                        help="commands in flight in the second append run")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
