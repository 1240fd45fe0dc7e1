"""Parked events: what a consumer gave up on after its bounded retries, and the way back.

An event that keeps failing stays in the event stream; a park record naming it goes to the
`{NS}_PARKED` stream and the consumer moves on. `tidydesk parked retry` asks the consumer's
own process to run its handler on the event again; on success the record is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from tidydesk.common import metrics
from tidydesk.common.events import Envelope, decode

log = structlog.get_logger()
Handler = Callable[[int, Envelope], Awaitable[None]]


class Permanent(Exception):
    """Raised by a handler when retrying cannot help (a 4xx answer): the event is parked
    at once instead of after the consumer's retry budget."""


class Later(Exception):
    """Raised by a handler that wants the event again after the consumer's next backoff
    (not an error: e.g. the mail it answers has not arrived yet)."""


class Parked(msgspec.Struct, frozen=True, kw_only=True):
    """One park record: which consumer gave up on which event, why, after how many tries."""

    consumer: str
    stream_seq: int
    event_id: str
    event_type: str
    error: str
    attempts: int
    time: datetime


def parked_stream(ns: str) -> str:
    return f"{ns.upper()}_PARKED"


def events_stream(ns: str) -> str:
    return f"{ns.upper()}_EVENTS"


def _describe(data: bytes | None) -> tuple[str, str]:
    try:
        env = decode(data or b"")
    except msgspec.MsgspecError:
        return "", "undecodable"
    return env.id, env.type


async def park(js: JetStreamContext, ns: str, consumer: str, seq: int, data: bytes | None,
               error: str, attempts: int) -> None:
    """Record that `consumer` gave up on event `seq` (idempotent per consumer, seq, attempts)."""
    event_id, event_type = _describe(data)
    record = Parked(consumer=consumer, stream_seq=seq, event_id=event_id,
                    event_type=event_type, error=error[:2000], attempts=attempts,
                    time=datetime.now(UTC))
    await js.publish(f"{ns}.parked.{consumer}", msgspec.json.encode(record),
                     headers={"Nats-Msg-Id": f"park:{consumer}:{seq}:{attempts}"})
    metrics.PARKED.labels(consumer, metrics.short(event_type)).inc()
    log.error("event_parked", consumer=consumer, seq=seq, event_type=event_type,
              attempts=attempts, error=error[:300])


async def records(js: JetStreamContext, ns: str) -> list[tuple[int, Parked]]:
    """Every park record, oldest first, with its sequence in the parked stream."""
    out: list[tuple[int, Parked]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(parked_stream(ns), seq=seq, subject=f"{ns}.parked.*",
                                   next=True)
        except NotFoundError:
            return out
        assert msg.seq is not None
        out.append((msg.seq, msgspec.json.decode(msg.data or b"", type=Parked)))
        seq = msg.seq + 1


async def record(js: JetStreamContext, ns: str, seq: int) -> Parked | None:
    try:
        msg = await js.get_msg(parked_stream(ns), seq=seq)
    except NotFoundError:
        return None
    if not msg.subject or msg.subject.count(".") != 2:  # a retry request, not a record
        return None
    return msgspec.json.decode(msg.data or b"", type=Parked)


async def drop(js: JetStreamContext, ns: str, seq: int) -> bool:
    try:
        return await js.delete_msg(parked_stream(ns), seq)
    except NotFoundError:
        return False


async def serve_retries(js: JetStreamContext, ns: str, consumer: str, handler: Handler) -> None:
    """Run `handler` again for every `tidydesk parked retry` aimed at this consumer."""
    durable = f"{consumer}-retry"
    subject = f"{ns}.parked.{consumer}.retry"
    await js.add_consumer(parked_stream(ns), api.ConsumerConfig(
        durable_name=durable, filter_subject=subject, ack_policy=api.AckPolicy.EXPLICIT,
        max_deliver=3, ack_wait=60.0,
    ))
    sub = await js.pull_subscribe_bind(durable, stream=parked_stream(ns))
    while True:
        try:
            msgs = await sub.fetch(1, timeout=5)
        except (TimeoutError, NatsTimeout):
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise asyncio.CancelledError from None
            continue
        for msg in msgs:
            await _retry_one(js, ns, handler, msg)


async def _retry_one(js: JetStreamContext, ns: str, handler: Handler, request: Msg) -> None:
    record_seq = int(request.data or b"0")
    found = await record(js, ns, record_seq)
    if found is None:
        await request.ack()  # dropped or retried already
        return
    data: bytes | None = None
    try:
        data = (await js.get_msg(events_stream(ns), seq=found.stream_seq)).data
        await handler(found.stream_seq, decode(data or b""))
    except Exception as exc:
        await park(js, ns, found.consumer, found.stream_seq, data,
                   f"{type(exc).__name__}: {exc}", found.attempts + 1)
    else:
        log.info("parked_retry_succeeded", consumer=found.consumer, seq=found.stream_seq,
                 event_type=found.event_type)
    await drop(js, ns, record_seq)
    await request.ack()


# --- tidydesk parked list|show|retry|drop ---------------------------------------------------

def _table(rows: list[tuple[int, Parked]]) -> str:
    head = ("ID", "CONSUMER", "EVENT SEQ", "TYPE", "TRIES", "PARKED AT", "ERROR")
    body = [(str(s), r.consumer, str(r.stream_seq), r.event_type, str(r.attempts),
             r.time.strftime("%Y-%m-%d %H:%M:%S"), r.error.splitlines()[0][:60] if r.error
             else "") for s, r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip()
                     for x in [head, *body])


async def _run(nc: Client, ns: str, args: argparse.Namespace) -> int:
    js = nc.jetstream()
    if args.action == "list":
        rows = await records(js, ns)
        print(_table(rows) if rows else "no parked events")
        return 0
    found = await record(js, ns, args.id)
    if found is None:
        print(f"tidydesk: no parked event with id {args.id} (see `tidydesk parked list`)",
              file=sys.stderr)
        return 1
    if args.action == "show":
        print(json.dumps(msgspec.to_builtins(found), indent=2, ensure_ascii=False))
        with contextlib.suppress(NotFoundError):
            event = await js.get_msg(events_stream(ns), seq=found.stream_seq)
            text = (event.data or b"").decode("utf-8", "replace")
            with contextlib.suppress(ValueError):
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            print(f"event at stream sequence {found.stream_seq}:\n{text}")
        return 0
    if args.action == "drop":
        await drop(js, ns, args.id)
        print(f"dropped park record {args.id}; event {found.stream_seq} stays in the stream")
        return 0
    await js.publish(f"{ns}.parked.{found.consumer}.retry", str(args.id).encode())
    print(f"retry of event {found.stream_seq} requested from {found.consumer}; waiting…")
    while await record(js, ns, args.id) is not None:  # noqa: ASYNC110 - a remote record
        await asyncio.sleep(0.2)
    again = [r for _, r in await records(js, ns)
             if (r.consumer, r.stream_seq) == (found.consumer, found.stream_seq)]
    if again:
        print(f"failed again: {again[-1].error.splitlines()[0][:200]}", file=sys.stderr)
        return 1
    print("succeeded; the park record is gone")
    return 0


def main(argv: list[str]) -> int:
    from tidydesk.common import clinats  # the CLI only: services import this module too
    from tidydesk.common.settings import Settings

    parser = argparse.ArgumentParser(prog="tidydesk parked",
                                     description="Events a consumer gave up on.")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every park record")
    for name, text in (("show", "the record and the event it names"),
                       ("retry", "run the consumer's handler on the event again"),
                       ("drop", "delete the record (the event stays in the stream)")):
        sub.add_parser(name, help=text).add_argument("id", type=int, help="ID from list")
    args = parser.parse_args(argv)

    async def body(nc: Client, settings: Settings) -> int:
        return await _run(nc, settings.namespace, args)

    return clinats.run("tidydesk-parked", args.timeout, body)
