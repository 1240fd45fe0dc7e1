"""`tidydesk webhooks add|list|remove|redeliver`: the subscriptions notify delivers to."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import aiohttp
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from tidydesk.common import clinats, parking
from tidydesk.common.events import decode
from tidydesk.common.settings import Settings
from tidydesk.notify import subscriptions
from tidydesk.notify.subscriptions import Subscription
from tidydesk.notify.webhooks import (
    Mailboxes,
    Webhook,
    delete_consumers,
    ensure_consumer,
    restart_consumer,
    stream,
)

MAIL = "notify-mail"  # the consumer whose retry budget endpoints copy (as notify does)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    head = ("ID", "URL", "EVENTS", "MAILBOXES", "CONSUMER", "PENDING", "PARKED")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [head, *rows])


async def _find(js: JetStreamContext, ns: str, settings: Settings, sub_id: str
                ) -> Subscription | None:
    found = await subscriptions.get(await subscriptions.bucket(js, ns), sub_id)
    return found or next((s for s in subscriptions.static(settings) if s.id == sub_id), None)


async def _list(js: JetStreamContext, ns: str, settings: Settings) -> int:
    subs = [*subscriptions.static(settings),
            *await subscriptions.stored(await subscriptions.bucket(js, ns))]
    if not subs:
        print("no webhook subscriptions (add one with `tidydesk webhooks add URL`)")
        return 0
    parked: dict[str, int] = {}
    for _, record in await parking.records(js, ns):
        parked[record.consumer] = parked.get(record.consumer, 0) + 1
    rows = []
    for sub in subs:
        try:
            info = await js.consumer_info(stream(ns), sub.durable)
            consumer, pending = sub.durable, str(info.num_pending + info.num_ack_pending)
        except NotFoundError:  # notify creates it at start
            consumer, pending = f"{sub.durable} (not created yet)", "-"
        rows.append((sub.id + (" (env)" if sub.static else ""), sub.safe_url,
                     ",".join(e.removeprefix("tidydesk.") for e in sub.events) or "all",
                     ",".join(sub.mailboxes) or "all", consumer, pending,
                     str(parked.get(sub.durable, 0))))
    print(_table(rows))
    return 0


async def _add(js: JetStreamContext, ns: str, args: argparse.Namespace) -> int:
    events = subscriptions.event_types(args.events or "")
    mailboxes = tuple(m.strip() for spec in args.mailbox or () for m in spec.split(",")
                      if m.strip())
    sub = await subscriptions.add(await subscriptions.bucket(js, ns), args.url, events,
                                  mailboxes)
    # Created here too, so events from now on wait for the endpoint even if notify is down.
    budget = (await js.consumer_info(stream(ns), MAIL)).config
    await ensure_consumer(js, ns, sub, budget)
    print(f"added webhook {sub.id} -> {sub.safe_url}")
    print(f"events: {', '.join(sub.events) or 'all'}; mailboxes: "
          f"{', '.join(sub.mailboxes) or 'all'}; consumer: {sub.durable}")
    print(f"secret (shown once, verify with Standard Webhooks): {sub.secret}")
    return 0


async def _remove(js: JetStreamContext, ns: str, settings: Settings, sub_id: str) -> int:
    kv = await subscriptions.bucket(js, ns)
    sub = await subscriptions.get(kv, sub_id)
    if sub is None:
        static = any(s.id == sub_id for s in subscriptions.static(settings))
        print(f"tidydesk: {sub_id} is set in TIDYDESK_WEBHOOK_URLS; remove it there" if static
              else f"tidydesk: no webhook {sub_id} (see `tidydesk webhooks list`)",
              file=sys.stderr)
        return 1
    await kv.delete(sub_id)  # notify stops delivering on seeing this
    await delete_consumers(js, ns, sub.durable)
    dropped = 0
    for seq, record in await parking.records(js, ns):
        if record.consumer == sub.durable:
            dropped += await parking.drop(js, ns, seq)
    print(f"removed webhook {sub_id} ({sub.safe_url}), its consumer {sub.durable} and "
          f"{dropped} park record(s)")
    return 0


async def _redeliver(js: JetStreamContext, ns: str, settings: Settings,
                     args: argparse.Namespace) -> int:
    sub = await _find(js, ns, settings, args.id)
    if sub is None:
        print(f"tidydesk: no webhook {args.id} (see `tidydesk webhooks list`)", file=sys.stderr)
        return 1
    if args.from_seq is not None:
        budget = (await js.consumer_info(stream(ns), MAIL)).config
        await restart_consumer(js, ns, sub, budget, args.from_seq)
        print(f"{sub.durable} restarted at stream sequence {args.from_seq}: notify delivers "
              "every matching event from there, in order")
        return 0
    try:
        msg = await js.get_msg(stream(ns), seq=args.event)
    except NotFoundError:
        print(f"tidydesk: no event at stream sequence {args.event}", file=sys.stderr)
        return 1
    if not (msg.subject or "").startswith(f"{ns}.tickets."):
        print(f"tidydesk: event {args.event} is an intake event; webhooks carry ticket events",
              file=sys.stderr)
        return 1
    env = decode(msg.data or b"")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout)) as http:
        hook = Webhook(http, sub, ns, Mailboxes(js, ns))
        if not await hook.wants(env):
            print(f"tidydesk: event {args.event} ({env.type}) does not match the filters of "
                  f"{sub.id}", file=sys.stderr)
            return 1
        try:
            await hook.post(env)
        except (aiohttp.ClientError, RuntimeError) as exc:
            print(f"tidydesk: {sub.safe_url}: {exc or type(exc).__name__}", file=sys.stderr)
            return 1
    print(f"event {args.event} ({env.type}, webhook-id {env.id}) delivered to {sub.safe_url}")
    return 0


async def _run(nc: Client, settings: Settings, args: argparse.Namespace) -> int:
    js, ns = nc.jetstream(), settings.namespace
    if args.action == "list":
        return await _list(js, ns, settings)
    if args.action == "add":
        return await _add(js, ns, args)
    if args.action == "remove":
        return await _remove(js, ns, settings, args.id)
    return await _redeliver(js, ns, settings, args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tidydesk webhooks",
                                description="Endpoints that receive ticket events as "
                                "Standard Webhooks (CloudEvents JSON bodies).")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="give up on NATS after this long (default 10)")
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument("--timeout", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                       help="give up on NATS after this long (default 10)")
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", parents=[waits], help="subscribe a URL; prints its secret once")
    add.add_argument("url")
    add.add_argument("--events", metavar="T1,T2", help="CloudEvent types, e.g. "
                     "ticket.opened,ticket.solved (default: all)")
    add.add_argument("--mailbox", action="append", metavar="ADDRESS",
                     help="only tickets of this mailbox (repeat or comma-separate; "
                     "default: all)")
    sub.add_parser("list", parents=[waits], help="subscriptions, their consumers and backlog")
    sub.add_parser("remove", parents=[waits], help="delete a subscription and its consumer"
                   ).add_argument("id")
    again = sub.add_parser("redeliver", parents=[waits], help="deliver events again")
    again.add_argument("id")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--from-seq", type=int, metavar="N",
                       help="restart the endpoint's consumer at stream sequence N")
    which.add_argument("--event", type=int, metavar="SEQ",
                       help="POST the event at stream sequence SEQ now")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)

    async def body(nc: Client, settings: Settings) -> int:
        return await asyncio.wait_for(_run(nc, settings, args), args.timeout)

    return clinats.run("tidydesk-webhooks", args.timeout, body, bad_input=2)
