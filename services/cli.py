"""`tidydesk` command line: run the stack, feed it mail, look at the queue, replay, dry-run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import smtplib
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from email import message_from_bytes, policy
from email.utils import getaddresses
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from tidydesk.common import log as logsetup
from tidydesk.common.settings import SCALED, SERVICES, SETTINGS, Settings, redact

T = TypeVar("T")
STATE_FILE = "stack.json"  # in TIDYDESK_HOME while `tidydesk up` runs: its resolved URLs
CLIENT_TIMEOUT = 10.0  # seconds a command waits for a running stack (--timeout)


def _settings_help() -> str:
    lines = ["settings (environment variables):"]
    lines += [f"  {name:<28} {text} [default: {default or 'empty'}]"
              for name, (default, text) in SETTINGS.items()]
    return "\n".join(lines)


# --- tidydesk up ---------------------------------------------------------------------------

class Backoff:
    """Restart delays that double up to `cap`, and start over after `healthy` s of running."""

    def __init__(self, first: float = 0.5, cap: float = 10.0, healthy: float = 30.0) -> None:
        self.first, self.cap, self.healthy = first, cap, healthy
        self.delay = first

    def after(self, ran: float) -> float:
        """The delay before the next start, given how long the last run lasted."""
        if ran >= self.healthy:
            self.delay = self.first
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay


class Embedded(Protocol):
    """An embedded server the supervisor keeps running (tidydesk.common.embedded)."""

    name: str

    def start(self) -> str: ...
    def alive(self) -> bool: ...


def start_embedded(server: Embedded, home: Path,
                   sleep: Callable[[float], None] = time.sleep) -> str:
    """Start `server`; while the disk is full, say so and retry with backoff."""
    from tidydesk.common.embedded import out_of_space

    backoff = Backoff(first=1.0, cap=30.0)
    while True:
        try:
            return server.start()
        except Exception as exc:
            if not out_of_space(exc):
                raise
            delay = backoff.after(0)
            print(f"tidydesk: disk full: embedded {server.name} cannot start under {home} "
                  f"({exc}); free some space — retrying in {delay:.0f}s", file=sys.stderr,
                  flush=True)
            sleep(delay)


class Unit(msgspec.Struct, frozen=True):
    """One process `tidydesk up` runs: instance `instance` (from 0) of `service`."""

    label: str  # the service, or service-N (from 1) when it runs more than once
    service: str
    instance: int


def units(settings: Settings) -> list[Unit]:
    """Every process `tidydesk up` runs, in SERVICES order (TIDYDESK_WORKERS of SCALED)."""
    found = []
    for name in SERVICES:
        count = settings.instances(name)
        found += [Unit(name if count == 1 else f"{name}-{i + 1}", name, i) for i in range(count)]
    return found


def health_ports(settings: Settings) -> dict[str, int]:
    """Each process's health port by its label: TIDYDESK_HEALTH_PORT + the service's place
    (+ len(SERVICES) per instance after the first), or free ones for 0."""
    if settings.health_port:
        return {u.label: settings.health_port_of(u.service, u.instance) for u in units(settings)}
    found: dict[str, int] = {}
    with contextlib.ExitStack() as held:  # held open together: all different ports
        for unit in units(settings):
            s = held.enter_context(socket.socket())
            s.bind((settings.health_host, 0))
            found[unit.label] = int(s.getsockname()[1])
    return found


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def not_ready(urls: dict[str, str], wait: float = 2.0) -> dict[str, str]:
    """service -> why its /readyz is not 200 (empty: every service is ready)."""
    import aiohttp

    async def ask(http: aiohttp.ClientSession, url: str) -> str | None:
        try:
            async with http.get(f"{url}/readyz") as resp:
                if resp.status == 200:
                    return None
                failing = (await resp.json()).get("failing", {})
                return "; ".join(f"{k}: {v}" for k, v in failing.items()) or str(resp.status)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return f"no answer ({type(exc).__name__})"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as http:
        answers = await asyncio.gather(*(ask(http, u) for u in urls.values()))
    return {name: why for name, why in zip(urls, answers, strict=True) if why is not None}


async def _supervise(settings: Settings, env: dict[str, str], servers: list[Embedded],
                     health: dict[str, int]) -> None:
    """Run every service instance as its own process, keep them and the embedded servers
    running (restart with backoff, each on its own), say once when all are ready, stop
    everything on a signal."""
    from tidydesk.common.embedded import out_of_space

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    procs: dict[str, asyncio.subprocess.Process] = {}

    async def keep(unit: Unit) -> None:
        backoff, name = Backoff(), unit.label
        # the child computes base + its place: this gives it exactly health[name]
        child = {**env, "TIDYDESK_HEALTH_PORT": str(health[name] - SERVICES.index(unit.service))}
        if unit.instance:  # one IMAP poller is enough (intake would refuse the repeats)
            child["TIDYDESK_IMAP_URLS"] = ""
        while not stopping.is_set():
            started = loop.time()
            try:
                procs[name] = proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", f"tidydesk.{unit.service}", env=child,
                    start_new_session=True)
                code: object = await proc.wait()
            except OSError as exc:  # no memory, no space, too many processes…
                code = f"an error ({exc})"
            if stopping.is_set():
                return
            delay = backoff.after(loop.time() - started)
            print(f"tidydesk: {name} exited with {code}; restarting in {delay:.1f}s",
                  file=sys.stderr, flush=True)
            await _pause(stopping, delay)

    async def watch(server: Embedded) -> None:
        backoff, started = Backoff(), loop.time()
        while not stopping.is_set():
            await _pause(stopping, 0.5)
            if stopping.is_set() or server.alive():
                continue
            delay = backoff.after(loop.time() - started)
            print(f"tidydesk: embedded {server.name} died; restarting in {delay:.1f}s",
                  file=sys.stderr, flush=True)
            while True:
                await _pause(stopping, delay)
                if stopping.is_set():
                    return
                try:
                    await asyncio.to_thread(server.start)
                    break
                except Exception as exc:
                    delay = backoff.after(0)
                    hint = "disk full, free some space; " if out_of_space(exc) else ""
                    print(f"tidydesk: embedded {server.name} did not start ({exc}); {hint}"
                          f"retrying in {delay:.1f}s", file=sys.stderr, flush=True)
            print(f"tidydesk: embedded {server.name} restarted", file=sys.stderr, flush=True)
            started = loop.time()

    async def announce() -> None:
        urls = {n: f"http://{settings.health_host}:{p}" for n, p in health.items()}
        since, told = loop.time(), False
        while not stopping.is_set():
            failing = await not_ready(urls)
            if not failing:
                print(f"tidydesk: ready — mail to smtp://{settings.smtp_host}:"
                      f"{settings.smtp_port}, tickets at http://{settings.http_host}:"
                      f"{settings.http_port}/tickets", flush=True)
                return
            if not told and loop.time() - since > 30:
                told = True
                print("tidydesk: not ready after 30s: " + "; ".join(
                    f"{n} ({why})" for n, why in failing.items()), file=sys.stderr, flush=True)
            await _pause(stopping, 0.3)

    tasks = [asyncio.create_task(keep(u)) for u in units(settings)]
    tasks += [asyncio.create_task(watch(s)) for s in servers]
    tasks.append(asyncio.create_task(announce()))
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
    await asyncio.gather(*tasks, return_exceptions=True)


def cmd_up(args: argparse.Namespace) -> int:
    from tidydesk.common import health
    from tidydesk.common.embedded import EmbeddedError, EmbeddedNats, EmbeddedPostgres

    settings = Settings.from_env()
    workers = args.workers if args.workers is not None else settings.instances(SCALED[0])
    if workers < 1:
        print("tidydesk: --workers must be at least 1", file=sys.stderr)
        return 2
    settings = msgspec.structs.replace(settings, workers=workers)
    try:  # before anything starts: one clear line instead of crashing services
        health.check_ports(health.ports(settings, SERVICES, every=True))
    except health.PortInUse as exc:
        print(f"tidydesk: {exc}", file=sys.stderr)
        return 2
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TIDYDESK_WORKERS": str(workers)}  # the children share the SMTP port
    servers: list[Embedded] = []
    nats = pg = None
    try:
        if not settings.nats_url:
            nats = EmbeddedNats(home)
            env["TIDYDESK_NATS_URL"] = start_embedded(nats, home)
            servers.append(nats)
        if not settings.database_url:
            pg = EmbeddedPostgres(home)
            env["TIDYDESK_DATABASE_URL"] = start_embedded(pg, home)
            servers.append(pg)
    except EmbeddedError as exc:
        print(f"tidydesk: {exc}", file=sys.stderr)
        if nats:
            nats.stop()
        return 2
    ports = health_ports(settings)
    urls = {n: f"http://{settings.health_host}:{p}" for n, p in ports.items()}
    print(f"tidydesk {version('tidydesk')} — data in {home}")
    print(f"  SMTP      smtp://{settings.smtp_host}:{settings.smtp_port}")
    print(f"  HTTP API  http://{settings.http_host}:{settings.http_port}/tickets")
    print(f"  NATS      {env['TIDYDESK_NATS_URL']}{' (embedded)' if nats else ''}")
    print(f"  Postgres  {env['TIDYDESK_DATABASE_URL']}{' (embedded)' if pg else ''}")
    for i, (name, url) in enumerate(urls.items()):
        print(f"  {'Health' if i == 0 else '':<8}  {name:<12} {url}/healthz  {url}/readyz")
    print("  services  " + ", ".join(
        f"{n} x{settings.instances(n)}" if settings.instances(n) > 1 else n for n in SERVICES
    ) + " — Ctrl-C stops everything", flush=True)
    state = home / STATE_FILE
    with contextlib.suppress(OSError):  # only `tidydesk env` reads it
        state.write_text(json.dumps({
            "pid": os.getpid(), "smtp": f"smtp://{settings.smtp_host}:{settings.smtp_port}",
            "http": f"http://{settings.http_host}:{settings.http_port}",
            "nats": env["TIDYDESK_NATS_URL"], "postgres": env["TIDYDESK_DATABASE_URL"],
            "health": urls}))
    try:
        asyncio.run(_supervise(settings, env, servers, ports))
    finally:
        state.unlink(missing_ok=True)
        if pg:
            pg.stop()
        if nats:
            nats.stop()
    return 0


# --- clients of a running stack ------------------------------------------------------------

def bounded(seconds: float, fn: Callable[[], T]) -> T:
    """`fn()`, or TimeoutError once `seconds` have passed (the call runs in a daemon thread;
    give its sockets a longer timeout so that this deadline is the one that says so)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {seconds:g}s")
    if error:
        raise error[0]
    return result[0]


def unreachable(what: str, where: str, exc: BaseException, timeout: float) -> int:
    """Say why `what` at `where` did not answer; exit code 1."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError):
        print(f"tidydesk: {what} at {where} gave no answer within {timeout:g}s; is `tidydesk up` "
              "running and ready? (--timeout SECONDS waits longer)", file=sys.stderr)
    else:
        print(f"tidydesk: {what} not reachable at {where} ({reason}); is `tidydesk up` running?",
              file=sys.stderr)
    return 1


def cmd_send(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    raw = Path(args.file).read_bytes()
    msg = message_from_bytes(raw, policy=policy.default)
    sender = args.sender or next(
        (a for _, a in getaddresses([str(msg.get("From", ""))]) if a), "unknown@localhost")
    rcpts = args.to or [a for _, a in getaddresses([str(msg.get("To", ""))]) if a] or [
        "support@localhost"]

    def send() -> None:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=args.timeout + 1) as smtp:
            smtp.sendmail(sender, rcpts, raw)

    try:
        bounded(args.timeout, send)
    except smtplib.SMTPResponseException as exc:
        print(f"tidydesk: refused: {exc.smtp_code} {exc.smtp_error!r}", file=sys.stderr)
        return 1
    except (OSError, smtplib.SMTPException) as exc:
        return unreachable("SMTP listener", f"{settings.smtp_host}:{settings.smtp_port}", exc,
                           args.timeout)
    print(f"sent {args.file} to {', '.join(rcpts)}")
    return 0


def _api(path: str, timeout: float, body: bytes | None = None) -> Any:
    """JSON from the HTTP API (POST when `body` is given), within `timeout` seconds."""
    settings = Settings.from_env()
    url = f"http://{settings.http_host}:{settings.http_port}{path}"
    headers = {"Accept": "application/json"}
    if body:
        headers["Content-Type"] = "application/json"
    if settings.api_token:
        headers["Authorization"] = f"Bearer {settings.api_token}"
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET",
                                     headers=headers)

    def call() -> Any:
        with urllib.request.urlopen(request, timeout=timeout + 1) as resp:
            return json.loads(resp.read())

    return bounded(timeout, call)


def _api_refused(exc: urllib.error.HTTPError) -> int:
    """Print the API's problem detail (RFC 9457) with a hint for a missing token."""
    try:
        detail = json.loads(exc.read()).get("detail") or exc.reason
    except (OSError, ValueError):
        detail = exc.reason
    hint = (" (set TIDYDESK_API_TOKEN; mint one with `tidydesk tokens create --scope read "
            "--scope write`)") if exc.code in (401, 403) else ""
    print(f"tidydesk: HTTP API answered {exc.code}: {detail}{hint}", file=sys.stderr)
    return 1


def _api_where() -> str:
    settings = Settings.from_env()
    return f"http://{settings.http_host}:{settings.http_port}"


def cmd_queue(args: argparse.Namespace) -> int:
    try:
        tickets = _api(f"/tickets?status={args.status}", args.timeout)["tickets"]
    except urllib.error.HTTPError as exc:
        return _api_refused(exc)
    except OSError as exc:  # URLError and TimeoutError are OSErrors
        return unreachable("HTTP API", _api_where(), exc, args.timeout)
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


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= 2 * size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} s"


COUNT_NAMES = ("opened", "solved", "reopened", "acknowledged", "split", "merged")


def stats_text(stats: dict[str, Any]) -> str:
    """GET /stats as a person reads it."""
    def counts(c: dict[str, int]) -> str:
        return "  ".join(f"{name} {c[name]}" for name in COUNT_NAMES)

    rate = stats["reopen_rate"]
    lines = [f"{stats['since']} .. {stats['until']}  ({stats['mailbox'] or 'all mailboxes'})",
             counts(stats["totals"]) + "  reopen rate " +
             ("-" if rate is None else f"{rate:.0%}") + "  (thank-yous are not reopens)", ""]
    for title, times in (("first response", stats["first_response"]),
                         ("resolution", stats["resolution"])):
        wall, business = times["wall"], times["business"]
        line = (f"{title:<15} p50 {_seconds(wall['p50'])}, p90 {_seconds(wall['p90'])} wall")
        if business:
            line += (f"; p50 {_seconds(business['p50'])}, p90 {_seconds(business['p90'])}"
                     " business")
        lines.append(f"{line}  ({wall['count']} tickets)")
    for title, groups in (("by tag", stats["by_tag"]), ("by language", stats["by_language"])):
        lines += ["", f"{title}:"] + ([f"  {name:<16} {counts(c)}" for name, c in
                                       groups.items()] or ["  (none)"])
    lines += ["", "kudos: " + (", ".join(f"{a or '(no agent)'} {n}" for a, n in
                                         stats["kudos"].items()) or "none")]
    lines.append("rising tags: " + (", ".join(
        f"{r['tag']} {r['this_week']} (last week {r['last_week']})" for r in stats["rising"])
        or "none"))
    busy = [d for d in stats["per_day"] if any(d[n] for n in COUNT_NAMES)]
    lines += ["", "per day:"] + [f"  {d['day']}  {counts(d)}" for d in busy] if busy else []
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({k: v for k, v in (
        ("since", args.since), ("until", args.until), ("mailbox", args.mailbox)) if v})
    try:
        stats = _api("/stats" + (f"?{query}" if query else ""), args.timeout)
    except urllib.error.HTTPError as exc:
        return _api_refused(exc)
    except OSError as exc:
        return unreachable("HTTP API", _api_where(), exc, args.timeout)
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else stats_text(stats))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    body = json.dumps({"into": args.into, "agent": args.agent}).encode()
    try:
        print(_api(f"/tickets/{args.ticket}/merge", args.timeout, body))
    except urllib.error.HTTPError as exc:
        return _api_refused(exc)
    except OSError as exc:
        return unreachable("HTTP API", _api_where(), exc, args.timeout)
    return 0


def cmd_unmerge(args: argparse.Namespace) -> int:
    body = json.dumps({"agent": args.agent}).encode()
    try:
        print(_api(f"/tickets/{args.ticket}/unmerge", args.timeout, body))
    except urllib.error.HTTPError as exc:
        return _api_refused(exc)
    except OSError as exc:
        return unreachable("HTTP API", _api_where(), exc, args.timeout)
    return 0


def env_lines(environ: Mapping[str, str]) -> list[str]:
    """Every setting as NAME=value (secrets as ***) with whether it is set or the default;
    TIDYDESK_* variables that are no setting are flagged."""
    width = max(len(n) for n in SETTINGS) + 24
    lines = []
    for name, (default, _) in SETTINGS.items():
        value = environ.get(name, default)
        shown = redact(name, value)
        source = "set" if name in environ else "default"
        if shown != value:
            source += ", hidden"
        lines.append(f"{name}={shlex.quote(shown)}".ljust(width) + f"  # {source}")
    lines += [f"# {name}: not a tidydesk setting, ignored (typo?)"
              for name in sorted(environ) if name.startswith("TIDYDESK_") and name not in SETTINGS]
    return lines


def stack_lines(home: Path, timeout: float) -> list[str]:
    """The URLs of the `tidydesk up` running under `home`, with each service's readiness."""
    try:
        state = json.loads((home / STATE_FILE).read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return [f"# no running `tidydesk up` under {home}"]
    urls: dict[str, str] = state.get("health", {})
    try:
        failing = bounded(timeout, lambda: asyncio.run(not_ready(urls, min(timeout, 2.0))))
    except TimeoutError:
        failing = dict.fromkeys(urls, f"no answer within {timeout:g}s")
    lines = [f"# running stack (tidydesk up, pid {state['pid']}):",
             f"#   SMTP      {state.get('smtp', '?')}",
             f"#   HTTP API  {state.get('http', '?')}/tickets",
             f"#   NATS      {redact('TIDYDESK_NATS_URL', str(state.get('nats', '?')))}",
             f"#   Postgres  {redact('TIDYDESK_DATABASE_URL', str(state.get('postgres', '?')))}"]
    for name, url in urls.items():
        status = f"not ready: {failing[name]}" if name in failing else "ready"
        lines.append(f"#   {name:<11} {url}/readyz  {status}")
    return lines


def cmd_env(args: argparse.Namespace) -> int:
    for line in env_lines(os.environ):
        print(line)
    print("\n".join(stack_lines(Settings.from_env().home.resolve(), args.timeout)))
    return 0


# --- operations ----------------------------------------------------------------------------

REACH_SECONDS = 10.0  # replay gives up on an unreachable NATS or PostgreSQL after this


async def _replay(from_seq: int) -> str:
    import asyncpg
    from nats.js.errors import NotFoundError
    from tqdm import tqdm

    from tidydesk.common.store import connect
    from tidydesk.queue.projection import rebuild

    settings = Settings.from_env()
    ns, stream = settings.namespace, f"{settings.namespace.upper()}_EVENTS"
    try:
        async with asyncio.timeout(REACH_SECONDS):
            nc = await connect(settings.nats_url, "tidydesk-replay")
    except TimeoutError:
        raise OSError(f"NATS at {redact('TIDYDESK_NATS_URL', settings.nats_url)} did not "
                      f"answer within {REACH_SECONDS:g}s") from None
    try:
        try:
            async with asyncio.timeout(REACH_SECONDS):
                await (await asyncpg.connect(settings.database_url)).close()
        except (OSError, asyncpg.PostgresError) as exc:
            where = redact("TIDYDESK_DATABASE_URL", settings.database_url)
            raise OSError(f"PostgreSQL at {where} not reachable within {REACH_SECONDS:g}s: "
                          f"{exc or type(exc).__name__}") from None
        js = nc.jetstream()
        try:
            state = (await js.stream_info(stream)).state
        except NotFoundError:
            raise ValueError(f"no stream {stream}: nothing to replay "
                             "(is TIDYDESK_NAMESPACE right?)") from None
        first = max(from_seq, state.first_seq)
        started = time.monotonic()
        with tqdm(total=max(state.last_seq - first + 1, 0), unit="event", desc="replay",
                  file=sys.stderr, disable=None) as bar:  # None: a bar on a terminal only

            def progress(done: int) -> None:
                bar.total = max(bar.total or 0, done - first + 1)
                bar.update(done - first + 1 - bar.n)

            result = await rebuild(js, settings.database_url, ns, from_seq, progress)
        rate = (result.last - result.first + 1) / max(time.monotonic() - started, 1e-3)
        return (f"replayed stream sequences {result.first}..{result.last}: {result.tickets} "
                f"tickets rebuilt, {result.parked} parked; swapped in atomically "
                f"({rate:.0f} events/s)")
    finally:
        await nc.close()


def cmd_replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not settings.nats_url or not settings.database_url:
        print("tidydesk: replay needs TIDYDESK_NATS_URL and TIDYDESK_DATABASE_URL "
              "(the ones `tidydesk up` prints)", file=sys.stderr)
        return 2
    try:
        print(asyncio.run(_replay(args.from_seq)))
    except RuntimeError as exc:  # another replay of the namespace is running
        print(f"tidydesk: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from tidydesk.common.asyncapi import document

    print(json.dumps(document(), indent=2, ensure_ascii=False))
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
    parser.add_argument("--version", action="version", version=f"tidydesk {version('tidydesk')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "up", help="start NATS, PostgreSQL (embedded unless URLs set) and all services in "
        "the foreground", description="Start NATS and PostgreSQL (embedded unless their URLs "
        "are set) and every service as processes of their own, restarted with backoff each. "
        f"{', '.join(SCALED)} run WORKERS times on their shared durable consumers (the "
        "ingest instances share the SMTP port with SO_REUSEPORT); the others run once. "
        "Health ports: TIDYDESK_HEALTH_PORT + the service's place (" + ", ".join(
            f"{n} +{i}" for i, n in enumerate(SERVICES)) + f") + {len(SERVICES)} x instance "
        "(from 0), e.g. threading-2 at 8090 + 1 + 6 = 8097; each one's /healthz and "
        "/readyz are printed at start and by `tidydesk env`.")
    p.add_argument("--workers", type=int, metavar="N", help="instances of each of "
                   f"{', '.join(SCALED)} (default: TIDYDESK_WORKERS, else one per core: "
                   f"{os.cpu_count() or 1} here)")
    p.set_defaults(fn=cmd_up)
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument("--timeout", type=float, default=CLIENT_TIMEOUT, metavar="SECONDS",
                       help=f"give up on the running stack after this long "
                       f"(default {CLIENT_TIMEOUT:g})")
    sub.add_parser("env", parents=[waits], help="print the effective settings (secrets "
                   "hidden) and the URLs of a running stack").set_defaults(fn=cmd_env)
    p = sub.add_parser("send", parents=[waits], help="send a .eml file to the SMTP listener")
    p.add_argument("file")
    p.add_argument("--from", dest="sender", help="envelope sender (default: From header)")
    p.add_argument("--to", action="append", help="recipient (default: To header)")
    p.set_defaults(fn=cmd_send)
    p = sub.add_parser("queue", parents=[waits],
                       help="print tickets as a table (from the HTTP API)")
    p.add_argument("--status", default="open", help="open, solved, closed, a comma list, or all")
    p.set_defaults(fn=cmd_queue)
    p = sub.add_parser("stats", parents=[waits], help="counts, reopen rate, response and "
                       "resolution times, tags, languages, kudos (GET /stats)")
    p.add_argument("--since", help="first UTC day, YYYY-MM-DD (default: 29 days before until)")
    p.add_argument("--until", help="last UTC day, YYYY-MM-DD (default: today)")
    p.add_argument("--mailbox", help="only this mailbox")
    p.add_argument("--json", action="store_true", help="the JSON as the API answers it")
    p.set_defaults(fn=cmd_stats)
    p = sub.add_parser("merge", parents=[waits],
                       help="merge a ticket into another (by id or number)")
    p.add_argument("ticket")
    p.add_argument("into")
    p.add_argument("--agent", default="")
    p.set_defaults(fn=cmd_merge)
    p = sub.add_parser("unmerge", parents=[waits],
                       help="undo a merge: the ticket gets its own messages and status back")
    p.add_argument("ticket")
    p.add_argument("--agent", default="")
    p.set_defaults(fn=cmd_unmerge)
    p = sub.add_parser(
        "replay", help="rebuild the PostgreSQL projections beside the live ones, then swap",
        description="Project the event stream into a fresh schema beside the live one; once "
        "it has caught up, swap it in within one transaction, so the queue is never empty or "
        "half-built. A running queue service goes on from the new checkpoint. Poison events "
        "are parked (see `tidydesk parked`).")
    p.add_argument("--from-seq", type=int, default=1, metavar="N",
                   help="leave out the events before stream sequence N: the rebuilt queue "
                   "holds only what events N.. say (default 1: the whole stream)")
    p.set_defaults(fn=cmd_replay)
    sub.add_parser("schema", help="print the AsyncAPI 3 document of every event"
                   ).set_defaults(fn=cmd_schema)
    for name, module, text in (
        ("extract", "tidydesk.ingest.extract_cli", "print the newly written text of a mail"),
        ("classify", "tidydesk.classify", "dry-run policy decisions on JSON lines"),
        ("thread", "tidydesk.offline_thread", "thread an mbox offline (--mbox FILE)"),
        ("import", "tidydesk.ingest.imports", "import an mbox file or Maildir (resumable)"),
        ("policy", "tidydesk.policy.config", "show or set the policy per mailbox, shadow mode"),
        ("backtest", "tidydesk.policy.backtest", "replay follow-ups through a candidate policy"),
        ("tokens", "tidydesk.queue.tokens", "API tokens: create (printed once), list, revoke"),
        ("webhooks", "tidydesk.notify.cli", "webhook subscriptions: add, list, remove, "
         "redeliver"),
        ("streams", "tidydesk.common.topology", "create missing streams and consumers; "
         "--check shows what differs, --force applies the file"),
        ("parked", "tidydesk.common.parking", "events a consumer gave up on: list, show, retry, "
         "drop"),
        ("connector-rt", "tidydesk.connectors.rt", "mirror tickets into Request Tracker 5 "
         "over REST2 (TIDYDESK_RT_*)"),
    ):
        sub.add_parser(name, help=text, add_help=False).set_defaults(module=module)
    for name, text in (
        ("hours", "business hours per mailbox: set, show, clear"),
        ("tags", "tag rules per mailbox: add-rule, list, remove"),
        ("agents", "agents: add, list, remove"),
        ("teams", "teams with a lead, a weekly rota and mailboxes: set, list, remove"),
        ("desk", "escalation, auto-close, kudos per mailbox: set, show"),
    ):  # one module for the helpdesk configuration: it is told which command it runs
        sub.add_parser(name, help=text, add_help=False).set_defaults(
            module="tidydesk.desk.cli", prefix=[name])
    args, rest = parser.parse_known_args(argv)
    try:  # log lines of every command: stderr, JSON unless on a TTY
        logsetup.configure_from_env()
    except ValueError as exc:
        print(f"tidydesk: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "module", None):
        try:
            return _delegate(args.module, [*getattr(args, "prefix", []), *rest])
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
