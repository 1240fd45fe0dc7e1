"""Per-process /healthz (the event loop answers), /readyz (dependencies), /metrics
(Prometheus, tidydesk.common.metrics), and port checks.

`runtime.main` serves both for every service and checks NATS, JetStream, PostgreSQL (for
services that use it) and the SMTP or HTTP listener (ingest, queue); a service adds checks
with `register(name, check)`, where `check` returns None when fine or the reason it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

import asyncpg
import nats
from aiohttp import web
from nats.aio.client import Client
from nats.js import JetStreamContext

from tidydesk.common import metrics
from tidydesk.common.embedded import port_in_use
from tidydesk.common.settings import Settings
from tidydesk.common.store import servers

Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT = 2.0  # seconds per check; a check that takes longer counts as failing
POSTGRES_SERVICES = frozenset({"queue"})
# what a service listens on besides its health port: TIDYDESK_{SMTP,HTTP}_{HOST,PORT}
LISTENS = {"ingest": "smtp", "queue": "http"}
_checks: dict[str, Check] = {}


def register(name: str, check: Check) -> None:
    """Add (or replace) readiness check `name`."""
    _checks[name] = check


def waiting(reason: str) -> Check:
    """A check that fails with `reason`: register it first, the real check once started."""
    async def check() -> str | None:
        return reason

    return check


def consumer(js: JetStreamContext, ns: str, durable: str) -> Check:
    """Ready while the durable consumer `durable` answers through this process's JetStream."""
    async def check() -> str | None:
        await js.consumer_info(f"{ns.upper()}_EVENTS", durable, timeout=CHECK_TIMEOUT)
        return None

    return check


async def _run(check: Check) -> str | None:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g}s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".rstrip(": ")


async def readiness() -> dict[str, str | None]:
    """Every registered check's result (None = fine), run concurrently."""
    names = list(_checks)
    results = await asyncio.gather(*(_run(_checks[n]) for n in names))
    return dict(zip(names, results, strict=True))


class Probe:
    """A NATS connection of its own that the default checks use (never blocks start-up)."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.nc: Client | None = None
        self.task = asyncio.create_task(self._connect()) if url else None

    async def _connect(self) -> None:
        async def quiet(*_: object) -> None:
            pass  # the service's own connection logs NATS trouble

        while self.nc is None:
            with contextlib.suppress(Exception):
                self.nc = await nats.connect(
                    servers(self.url), name=self.name, max_reconnect_attempts=-1,
                    reconnect_time_wait=1, connect_timeout=2, allow_reconnect=True, error_cb=quiet,
                    disconnected_cb=quiet, reconnected_cb=quiet, closed_cb=quiet)
            if self.nc is None:
                await asyncio.sleep(1)

    async def nats(self) -> str | None:
        if not self.url:
            return "TIDYDESK_NATS_URL is not set"
        if self.nc is None:
            return f"cannot connect to {self.url} yet"
        return None if self.nc.is_connected else f"disconnected from {self.url}, reconnecting"

    async def jetstream(self) -> str | None:
        if self.nc is None or not self.nc.is_connected:
            return "needs NATS"
        await self.nc.jetstream(timeout=CHECK_TIMEOUT).account_info()
        return None

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()


def postgres(dsn: str) -> Check:
    """Ready while PostgreSQL at `dsn` answers a query (a fresh connection each time)."""
    async def check() -> str | None:
        if not dsn:
            return "TIDYDESK_DATABASE_URL is not set"
        conn = await asyncpg.connect(dsn, timeout=CHECK_TIMEOUT)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
        return None

    return check


def listening(host: str, port: int) -> Check:
    """Ready while something accepts connections on `host:port` (the service's listener)."""
    async def check() -> str | None:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            return f"nothing listens on {host}:{port} yet"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    return check


def serving(server: asyncio.AbstractServer) -> Check:
    """Ready while this process's own `server` accepts (a port shared with its siblings
    answers a connection even before this one listens)."""
    async def check() -> str | None:
        return None if server.is_serving() else "not listening yet"

    return check


def app(service: str) -> web.Application:
    """/healthz: 200 whenever the loop runs; /readyz: 200, or 503 naming failing checks;
    /metrics: the process's Prometheus metrics."""
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": service, "pid": os.getpid()})

    async def readyz(request: web.Request) -> web.Response:
        results = await readiness()
        failing = {n: r for n, r in results.items() if r is not None}
        body = {"status": "not ready" if failing else "ready", "service": service,
                "checks": {n: r or "ok" for n, r in results.items()}, "failing": failing}
        return web.json_response(body, status=503 if failing else 200)

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    application.router.add_get("/metrics", scrape)
    return application


class Server:
    """The health endpoints of one service process plus its default checks."""

    def __init__(self, runner: web.AppRunner, probe: Probe, port: int) -> None:
        self.runner, self.probe, self.port = runner, probe, port

    @classmethod
    async def start(cls, settings: Settings, service: str) -> Server:
        probe = Probe(settings.nats_url, f"tidydesk-{service}-health")
        register("nats", probe.nats)
        register("jetstream", probe.jetstream)
        if service in POSTGRES_SERVICES:
            register("postgres", postgres(settings.database_url))
        if service in LISTENS and settings.shares_listener(service):  # it registers serving()
            register(LISTENS[service], waiting("not listening yet"))
        elif service in LISTENS:  # the listener the service exists for
            register(LISTENS[service], listening(*_listener(settings, service)))
        runner = web.AppRunner(app(service), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.health_host, settings.health_port_of(service))
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            await probe.close()
            raise
        return cls(runner, probe, int(runner.addresses[0][1]))

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.probe.close()


# --- ports ---------------------------------------------------------------------------------

class PortInUse(Exception):
    """A port a setting names is taken; the message says which setting to change."""


def ports(settings: Settings, services: tuple[str, ...], *, every: bool = False
          ) -> list[tuple[str, str, int]]:
    """(what, host, port) of every listening port `services` need, `what` naming the setting.

    One process's (`every` False) leave out a listener its sibling instances share: they
    hold it. `every`: those of all the instances `tidydesk up` runs, before any starts."""
    found: list[tuple[str, str, int]] = []
    for service in services:
        if service in LISTENS and (every or not settings.shares_listener(service)):
            host, port = _listener(settings, service)
            found.append((f"TIDYDESK_{LISTENS[service].upper()}_PORT={port}", host, port))
    for service in services:
        count = settings.instances(service) if every else 1
        for instance in range(count):
            port = settings.health_port_of(service, instance)
            if port:
                offset = port - settings.health_port
                what = f"TIDYDESK_HEALTH_PORT={settings.health_port}"
                if offset:
                    what += f" (+{offset} = {port}, {service}"
                    what += f" instance {instance + 1})" if count > 1 else ")"
                found.append((what, settings.health_host, port))
    return found


def _listener(settings: Settings, service: str) -> tuple[str, int]:
    kind = LISTENS[service]
    return str(getattr(settings, f"{kind}_host")), int(getattr(settings, f"{kind}_port"))


def check_ports(wanted: list[tuple[str, str, int]]) -> None:
    """Raise PortInUse for the first of `wanted` that is taken."""
    for what, host, port in wanted:
        if port_in_use(host, port):
            setting = what.partition("=")[0]
            raise PortInUse(f"{what} is in use (another tidydesk?); set {setting} to a free "
                            "port")
