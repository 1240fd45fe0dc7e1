"""`tidydesk` command line: run the stack, feed it mail, look at the queue, replay, dry-run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import smtplib
import sys
import urllib.error
import urllib.request
from email import message_from_bytes, policy
from email.utils import getaddresses
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec

from services.common.settings import SETTINGS, Settings

SERVICES = ("ingest", "threading", "policy", "notify", "queue")


def _settings_help() -> str:
    lines = ["settings (environment variables):"]
    lines += [f"  {name:<28} {text} [default: {default or 'empty'}]"
              for name, (default, text) in SETTINGS.items()]
    return "\n".join(lines)


# --- tidydesk up ---------------------------------------------------------------------------

async def _supervise(settings: Settings, env: dict[str, str]) -> None:
    """Run every service as its own process; restart one that dies; stop all on a signal."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    procs: dict[str, asyncio.subprocess.Process] = {}

    async def keep(name: str) -> None:
        delay = 0.5
        while not stopping.is_set():
            procs[name] = proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{name}", env=env, start_new_session=True
            )
            code = await proc.wait()
            if stopping.is_set():
                return
            print(f"tidydesk: {name} exited with {code}; restarting in {delay:.1f}s",
                  file=sys.stderr)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    tasks = [asyncio.create_task(keep(n)) for n in SERVICES]
    await stopping.wait()
    print("tidydesk: stopping…", file=sys.stderr)
    for proc in procs.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
    for t in tasks:
        t.cancel()


def cmd_up(args: argparse.Namespace) -> int:
    from services.common.embedded import EmbeddedError, EmbeddedNats, EmbeddedPostgres

    settings = Settings.from_env()
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    nats = pg = None
    try:
        if not settings.nats_url:
            nats = EmbeddedNats(home)
            env["TIDYDESK_NATS_URL"] = nats.start()
        if not settings.database_url:
            pg = EmbeddedPostgres(home)
            env["TIDYDESK_DATABASE_URL"] = pg.start()
    except EmbeddedError as exc:
        print(f"tidydesk: {exc}", file=sys.stderr)
        if nats:
            nats.stop()
        return 2
    print(f"tidydesk {version('tidydesk')} — data in {home}")
    print(f"  SMTP      smtp://{settings.smtp_host}:{settings.smtp_port}")
    print(f"  HTTP API  http://{settings.http_host}:{settings.http_port}/tickets")
    print(f"  NATS      {env['TIDYDESK_NATS_URL']}{' (embedded)' if nats else ''}")
    print(f"  Postgres  {env['TIDYDESK_DATABASE_URL']}{' (embedded)' if pg else ''}")
    print("  services  " + ", ".join(SERVICES) + " — Ctrl-C stops everything", flush=True)
    try:
        asyncio.run(_supervise(settings, env))
    finally:
        if pg:
            pg.stop()
        if nats:
            nats.stop()
    return 0


# --- clients of a running stack ------------------------------------------------------------

def cmd_send(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    raw = Path(args.file).read_bytes()
    msg = message_from_bytes(raw, policy=policy.default)
    sender = args.sender or next(
        (a for _, a in getaddresses([str(msg.get("From", ""))]) if a), "unknown@localhost")
    rcpts = args.to or [a for _, a in getaddresses([str(msg.get("To", ""))]) if a] or [
        "support@localhost"]
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            smtp.sendmail(sender, rcpts, raw)
    except smtplib.SMTPResponseException as exc:
        print(f"tidydesk: refused: {exc.smtp_code} {exc.smtp_error!r}", file=sys.stderr)
        return 1
    except (OSError, smtplib.SMTPException) as exc:
        print(f"tidydesk: cannot send to {settings.smtp_host}:{settings.smtp_port}: {exc}",
              file=sys.stderr)
        return 1
    print(f"sent {args.file} to {', '.join(rcpts)}")
    return 0


def _get(path: str) -> Any:
    settings = Settings.from_env()
    url = f"http://{settings.http_host}:{settings.http_port}{path}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def cmd_queue(args: argparse.Namespace) -> int:
    try:
        tickets = _get(f"/tickets?status={args.status}")["tickets"]
    except (OSError, urllib.error.URLError) as exc:
        print(f"tidydesk: API not reachable ({exc}); is `tidydesk up` running?", file=sys.stderr)
        return 1
    rows = [("#", "STATUS", "MSGS", "REQUESTER", "SUBJECT", "UPDATED")] + [
        (str(t["number"]), t["status"], str(t["message_count"]), t["requester"],
         t["subject"][:50], t["updated_at"][:19]) for t in tickets
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if not tickets:
        print(f"(no {args.status} tickets)")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    url = f"http://{settings.http_host}:{settings.http_port}/tickets/{args.ticket}/merge"
    body = json.dumps({"into": args.into, "agent": args.agent}).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            print(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        print(f"tidydesk: {json.loads(exc.read()).get('error', exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tidydesk: API not reachable ({exc}); is `tidydesk up` running?", file=sys.stderr)
        return 1
    return 0


# --- operations ----------------------------------------------------------------------------

async def _replay() -> tuple[int, int]:
    from services.common import db
    from services.common.store import connect
    from services.queue.projection import Projector

    settings = Settings.from_env()
    pool = await db.connect(settings.database_url, settings.namespace, attempts=5)
    await db.migrate(pool)
    nc = await connect(settings.nats_url, "tidydesk-replay")
    try:
        projector = Projector(nc.jetstream(), pool, settings.namespace)
        await projector.reset()
        seq = await projector.run(stop_at_end=True)
        count = int(await pool.fetchval("SELECT count(*) FROM tickets"))
        return seq, count
    finally:
        await nc.close()
        await pool.close()


def cmd_replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not settings.nats_url or not settings.database_url:
        print("tidydesk: replay needs TIDYDESK_NATS_URL and TIDYDESK_DATABASE_URL "
              "(the ones `tidydesk up` prints)", file=sys.stderr)
        return 2
    seq, count = asyncio.run(_replay())
    print(f"replayed stream sequences 1..{seq}: {count} tickets rebuilt")
    return 0


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3 document for every event, schemas generated from the Structs."""
    from services.common.events import EVENT_TYPES, Envelope

    _, schemas = msgspec.json.schema_components(
        (*EVENT_TYPES, Envelope), ref_template="#/components/schemas/{name}"
    )
    tags = {cls.__name__: str(msgspec.inspect.type_info(cls).tag)  # type: ignore[attr-defined]
            for cls in EVENT_TYPES}
    messages = {
        name: {"name": f"tidydesk.{tag}", "contentType": "application/cloudevents+json",
               "payload": {"$ref": f"#/components/schemas/{name}"}}
        for name, tag in tags.items()
    }
    intake = {"MessageReceived", "MessageRejected"}
    ref = {n: {"$ref": f"#/components/messages/{n}"} for n in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "tidydesk events", "version": version("tidydesk"),
                 "description": "CloudEvents 1.0 JSON envelopes on NATS JetStream; the event "
                                "type is also in the ce-type header."},
        "channels": {
            "inbound": {"address": "{namespace}.inbound.{key}",
                        "messages": {n: ref[n] for n in intake},
                        "parameters": {"namespace": {}, "key": {}}},
            "tickets": {"address": "{namespace}.tickets.{ticketId}",
                        "messages": {n: ref[n] for n in messages if n not in intake},
                        "parameters": {"namespace": {}, "ticketId": {}}},
        },
        "operations": {
            f"receive_{c}": {"action": "receive", "channel": {"$ref": f"#/channels/{c}"}}
            for c in ("inbound", "tickets")
        },
        "components": {"schemas": schemas, "messages": messages},
    }


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(asyncapi(), indent=2, ensure_ascii=False))
    return 0


def _delegate(module: str, argv: list[str]) -> int:
    from importlib import import_module

    result: int = import_module(module).main(argv)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tidydesk", description="Event-sourced email ticket engine.",
        epilog=_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="start NATS, PostgreSQL (embedded unless URLs set) and all "
                   "services in the foreground").set_defaults(fn=cmd_up)
    p = sub.add_parser("send", help="send a .eml file to the SMTP listener")
    p.add_argument("file")
    p.add_argument("--from", dest="sender", help="envelope sender (default: From header)")
    p.add_argument("--to", action="append", help="recipient (default: To header)")
    p.set_defaults(fn=cmd_send)
    p = sub.add_parser("queue", help="print tickets as a table (from the HTTP API)")
    p.add_argument("--status", default="open", help="open, solved, closed, a comma list, or all")
    p.set_defaults(fn=cmd_queue)
    p = sub.add_parser("merge", help="merge a ticket into another (by id or number)")
    p.add_argument("ticket")
    p.add_argument("into")
    p.add_argument("--agent", default="")
    p.set_defaults(fn=cmd_merge)
    sub.add_parser("replay", help="rebuild the PostgreSQL projections from stream sequence 1"
                   ).set_defaults(fn=cmd_replay)
    sub.add_parser("schema", help="print the AsyncAPI 3 document of every event"
                   ).set_defaults(fn=cmd_schema)
    for name, module, text in (
        ("extract", "services.ingest.extract_cli", "print the newly written text of a mail"),
        ("classify", "services.policy.classify", "dry-run policy decisions on JSON lines"),
        ("thread", "services.threading.offline", "thread an mbox offline (--mbox FILE)"),
        ("import", "services.ingest.imports", "import an mbox file or Maildir (resumable)"),
        ("policy", "services.policy.config", "show or set the policy per mailbox, shadow mode"),
        ("backtest", "services.policy.backtest", "replay follow-ups through a candidate policy"),
        ("parked", "services.common.parking", "events a consumer gave up on: list, show, retry, "
         "drop"),
    ):
        sub.add_parser(name, help=text, add_help=False).set_defaults(module=module)
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "module", None):
        try:
            return _delegate(args.module, rest)
        except BrokenPipeError:
            return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        code: int = args.fn(args)
    except BrokenPipeError:  # `tidydesk … | head`
        return 0
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError) as exc:
        print(f"tidydesk: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
