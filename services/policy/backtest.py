"""`tidydesk backtest`: replay recorded follow-ups through a candidate policy, no side effects."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime

import msgspec
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api
from tqdm import tqdm

from tidydesk.common.events import (
    Envelope,
    FollowupAcknowledged,
    FollowupRecorded,
    MessageReceived,
    MessageRejected,
    MessageThreaded,
    TicketReopened,
    TicketSplit,
    decode,
)
from tidydesk.common.runtime import stop_if_cancelled
from tidydesk.common.settings import Settings
from tidydesk.common.store import close, connect
from tidydesk.policy.app import decide
from tidydesk.policy.registry import get_policy
from tidydesk.text.script import language_code
from tidydesk.tickets.ticket import Ticket

RECORDED = {TicketReopened: "reopen", FollowupAcknowledged: "acknowledge",
            FollowupRecorded: "auto", TicketSplit: "split"}


class Example(msgspec.Struct):
    ticket: int
    message_id: str
    recorded: str
    candidate: str
    reply: str
    reasons: tuple[str, ...]


class Report(msgspec.Struct):
    policy: str
    follow_ups: int = 0
    changed: int = 0
    reopens_avoided: int = 0
    splits_added: int = 0
    transitions: dict[str, int] = {}  # "reopen->acknowledge": n
    by_queue: dict[str, dict[str, int]] = {}  # mailbox -> {"follow_ups": n, "changed": n}
    by_language: dict[str, dict[str, int]] = {}
    examples: dict[str, list[Example]] = {}


def build_report(policy: str, items: list[tuple[Ticket, MessageThreaded, datetime]],
                 recorded: dict[str, str]) -> Report:
    """Compare the candidate's decision with the recorded one for every follow-up."""
    report = Report(policy=policy)
    transitions: Counter[str] = Counter()
    queues: dict[str, Counter[str]] = defaultdict(Counter)
    langs: dict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[str, list[Example]] = defaultdict(list)
    for ticket, m, at in items:
        before = recorded.get(m.message_id, "none")
        after = decide(ticket, m, at, policy)
        report.follow_ups += 1
        for bucket in (queues[ticket.mailbox], langs[language_code(m.reply) or "other"]):
            bucket["follow_ups"] += 1
        if after.verdict == before:
            continue
        report.changed += 1
        report.reopens_avoided += before == "reopen" and after.verdict == "acknowledge"
        report.splits_added += after.verdict == "split"
        kind = f"{before}->{after.verdict}"
        transitions[kind] += 1
        queues[ticket.mailbox]["changed"] += 1
        langs[language_code(m.reply) or "other"]["changed"] += 1
        if len(examples[kind]) < 3:
            examples[kind].append(Example(ticket.number, m.message_id, before, after.verdict,
                                          m.reply[:200], after.reasons))
    report.transitions = dict(transitions)
    report.by_queue = {k: dict(v) for k, v in queues.items()}
    report.by_language = {k: dict(v) for k, v in langs.items()}
    report.examples = dict(examples)
    return report


async def collect(js: JetStreamContext, ns: str, *, from_seq: int = 1,
                  since: datetime | None = None, progress: bool = True
                  ) -> tuple[list[tuple[Ticket, MessageThreaded, datetime]], dict[str, str]]:
    """Fold every ticket from sequence 1; keep follow-ups inside the window."""
    stream = f"{ns.upper()}_EVENTS"
    end = (await js.stream_info(stream)).state.last_seq
    tickets: dict[str, Ticket] = {}
    items: list[tuple[Ticket, MessageThreaded, datetime]] = []
    recorded: dict[str, str] = {}
    sub = await js.pull_subscribe(
        "", stream=stream,
        config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0),
    )
    bar = tqdm(total=end, unit="event", disable=not progress, file=sys.stderr)
    seq = 0
    try:
        while seq < end:
            try:
                msgs = await sub.fetch(512, timeout=2.0)
            except (NatsTimeout, TimeoutError):
                stop_if_cancelled()
                break
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                env: Envelope = decode(msg.data)
                bar.update(1)
                data = env.data
                if isinstance(data, MessageReceived | MessageRejected):
                    continue  # intake events belong to no ticket yet
                ticket_id = env.subject
                if type(data) in RECORDED:
                    recorded[data.message_id] = RECORDED[type(data)]  # type: ignore[union-attr]
                ticket = tickets.setdefault(ticket_id, Ticket(ticket_id=ticket_id))
                ticket.apply(env, seq)
                if (isinstance(data, MessageThreaded) and data.message_id in ticket.followups
                        and seq >= from_seq and (since is None or env.time >= since)):
                    snapshot = msgspec.structs.replace(ticket, messages=list(ticket.messages),
                                                       followups=dict(ticket.followups))
                    items.append((snapshot, data, env.time))
    finally:
        bar.close()
        await sub.unsubscribe()
    return items, recorded


def render(report: Report) -> str:
    lines = [f"backtest of {report.policy}: {report.follow_ups} follow-ups to solved/closed "
             f"tickets, {report.changed} decisions would change",
             f"  reopens avoided: {report.reopens_avoided}   splits that would be made: "
             f"{report.splits_added}", "", "  changes (recorded -> candidate):"]
    lines += [f"    {k:<28} {v}" for k, v in sorted(report.transitions.items())] or ["    none"]
    for title, table in (("per queue", report.by_queue), ("per language", report.by_language)):
        lines += ["", f"  {title}:"] + [
            f"    {k:<28} follow-ups {v.get('follow_ups', 0):>6}   changed {v.get('changed', 0):>6}"
            for k, v in sorted(table.items())]
    for kind, examples in sorted(report.examples.items()):
        lines += ["", f"  examples of {kind}:"]
        for ex in examples:
            lines.append(f"    #{ex.ticket} {ex.message_id}: {ex.reply[:80]!r}")
            lines.append(f"      because {'; '.join(ex.reasons)[:160]}")
    return "\n".join(lines)


async def _run(args: argparse.Namespace, settings: Settings) -> Report:
    nc = await connect(settings.nats_url, "tidydesk-backtest")
    try:
        items, recorded = await collect(nc.jetstream(), settings.namespace,
                                        from_seq=args.from_seq, since=args.since,
                                        progress=sys.stderr.isatty() or args.progress)
    finally:
        await close(nc)
    return build_report(args.policy, items, recorded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidydesk backtest", description=__doc__)
    parser.add_argument("--policy", required=True, help="candidate policy name")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--since", type=lambda s: datetime.fromisoformat(s).replace(
        tzinfo=datetime.fromisoformat(s).tzinfo or UTC), help="only follow-ups from DATE on")
    window.add_argument("--from-seq", type=int, default=1, help="only from stream sequence N")
    parser.add_argument("--json", dest="json_file", help="also write the report as JSON")
    parser.add_argument("--progress", action="store_true", help="progress bar even off a TTY")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        get_policy(args.policy)
    except KeyError as exc:
        print(f"tidydesk backtest: {exc}", file=sys.stderr)
        return 2
    if not settings.nats_url:
        print("tidydesk backtest: set TIDYDESK_NATS_URL (the one `tidydesk up` prints)",
              file=sys.stderr)
        return 2
    report = asyncio.run(_run(args, settings))
    print(render(report))
    if args.json_file:
        with open(args.json_file, "wb") as out:
            out.write(msgspec.json.format(msgspec.json.encode(report)))
    return 0
