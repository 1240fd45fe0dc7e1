"""Request Tracker 5 over REST2: tidydesk's decisions as RT operations.

`python -m tidydesk.connectors.rt` runs it: a durable consumer `connector-rt` on the events
stream, the ticket id mapping in the KV bucket `{ns}_connector_rt`. Settings (environment):
TIDYDESK_RT_URL (RT's web root, e.g. http://rt.example.com), TIDYDESK_RT_QUEUE (default
General), TIDYDESK_RT_TOKEN (an RT auth token) or TIDYDESK_RT_USER + TIDYDESK_RT_PASSWORD,
TIDYDESK_RT_START (`new`: events from the first start on, the default; `all`: the whole
stream), plus the usual TIDYDESK_NATS_URL and TIDYDESK_NAMESPACE.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
import structlog
from nats.js import api

from tidydesk.common import log as logsetup
from tidydesk.common import parking
from tidydesk.common.runtime import consume, open_bus
from tidydesk.common.settings import Settings
from tidydesk.common.store import JetStreamEventStore, close
from tidydesk.connectors.port import Comment, Correspond, Create, SetStatus
from tidydesk.connectors.sync import Connector, KvLinks, ensure_consumer

log = structlog.get_logger()
NAME = "rt"
DURABLE = "connector-rt"
RETRYABLE_4XX = frozenset({408, 409, 429})


class RtSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    queue: str = "General"
    token: str = ""
    user: str = ""
    password: str = ""
    start: str = "new"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RtSettings:
        source = os.environ if env is None else env
        raw = {k[len("TIDYDESK_RT_"):].lower(): v for k, v in source.items()
               if k.startswith("TIDYDESK_RT_")}
        if not raw.get("url"):
            raise ValueError("TIDYDESK_RT_URL is not set (RT's web root, e.g. "
                             "http://rt.example.com)")
        if not raw.get("token") and not (raw.get("user") and raw.get("password")):
            raise ValueError("set TIDYDESK_RT_TOKEN, or TIDYDESK_RT_USER and "
                             "TIDYDESK_RT_PASSWORD")
        if raw.get("start", "new") not in ("new", "all"):
            raise ValueError(f"TIDYDESK_RT_START must be new or all, got {raw['start']!r}")
        known = set(cls.__struct_fields__)
        return msgspec.convert({k: v for k, v in raw.items() if k in known}, cls)

    def authorization(self) -> str:
        """The Authorization header: RT's token scheme, else HTTP basic."""
        if self.token:
            return f"token {self.token}"
        pair = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


class RtRefused(parking.Permanent):
    """RT refused the operation (4xx): sending it again cannot help."""


def ticket_sql(value: str) -> str:
    """A TicketSQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RequestTracker:
    """The Helpdesk port on RT5's REST2 API."""

    def __init__(self, http: aiohttp.ClientSession, settings: RtSettings) -> None:
        self.http, self.settings = http, settings
        self.base = settings.url.rstrip("/") + "/REST/2.0"
        self.headers = {"Authorization": settings.authorization()}

    async def call(self, method: str, path: str, body: Any = None,
                   params: Mapping[str, str] | None = None) -> Any:
        """One REST2 request; the decoded JSON answer."""
        async with self.http.request(method, self.base + path, json=body, params=params,
                                     headers=self.headers) as resp:
            text = await resp.text()
            if 400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX:
                raise RtRefused(f"RT {method} {path} answered {resp.status}: {text[:500]}")
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"RT {method} {path} answered {resp.status}: {text[:500]}")
            return msgspec.json.decode(text) if text else None

    async def check(self) -> None:
        """Fail at start, with RT's answer, when RT or the queue cannot be used as set."""
        await self.call("GET", f"/queue/{quote(self.settings.queue, safe='')}")

    async def create(self, op: Create, refers_to: str | None) -> str:
        body: dict[str, Any] = {"Queue": self.settings.queue, "Subject": op.subject,
                                "Requestor": op.requester, "Content": op.text or "(no text)",
                                "ContentType": "text/plain"}
        if refers_to:
            body["RefersTo"] = int(refers_to)
        answer = await self.call("POST", "/ticket", body)
        return str(answer["id"])

    async def find(self, op: Create, since: datetime) -> str | None:
        """A ticket an earlier attempt created: same queue, requester and subject, created
        since the attempt began (a minute of clock skew allowed). Times are compared here:
        TicketSQL reads dates in RT's own time zone."""
        query = (f"Queue = {ticket_sql(self.settings.queue)} AND Subject = "
                 f"{ticket_sql(op.subject)} AND Requestor.EmailAddress = "
                 f"{ticket_sql(op.requester)}")
        answer = await self.call("GET", "/tickets", params={
            "query": query, "orderby": "id", "order": "DESC", "per_page": "10",
            "fields": "Created"})
        for item in answer.get("items") or []:
            created = datetime.fromisoformat(str(item["Created"]).replace("Z", "+00:00"))
            if created >= since - timedelta(minutes=1):
                return str(item["id"])
        return None

    async def correspond(self, external: str, op: Correspond) -> None:
        await self.call("POST", f"/ticket/{external}/correspond", self._message(op))

    async def comment(self, external: str, op: Comment) -> None:
        await self.call("POST", f"/ticket/{external}/comment", self._message(op))

    async def set_status(self, external: str, op: SetStatus) -> None:
        await self.call("PUT", f"/ticket/{external}", {"Status": op.status})

    @staticmethod
    def _message(op: Correspond | Comment) -> dict[str, Any]:
        body: dict[str, Any] = {"Content": op.text or "(no text)", "ContentType": "text/plain"}
        if op.status is not None:
            body["Status"] = op.status
        return body


async def run(settings: Settings, rt: RtSettings) -> None:
    """Consume ticket events into RT until cancelled."""
    ns = settings.namespace
    nc, js = await open_bus(settings, "tidydesk-connector-rt")
    try:
        deliver = api.DeliverPolicy.ALL if rt.start == "all" else api.DeliverPolicy.NEW
        await ensure_consumer(js, ns, DURABLE, deliver)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            helpdesk = RequestTracker(http, rt)
            await helpdesk.check()
            connector = Connector(JetStreamEventStore(js, ns), helpdesk, KvLinks(js, ns, NAME))
            log.info("connector_started", rt=rt.url, queue=rt.queue, consumer=DURABLE)
            await consume(js, ns, DURABLE, connector.handle, batch=1)
    finally:
        await close(nc)


def main(argv: list[str] | None = None) -> int:
    """`tidydesk connector-rt` / `python -m tidydesk.connectors.rt`: run until SIGINT/SIGTERM."""
    import argparse

    argparse.ArgumentParser(
        prog="tidydesk connector-rt", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    settings = Settings.from_env()
    logsetup.configure(settings.log_format, settings.log_level)
    try:
        rt = RtSettings.from_env()
    except (ValueError, msgspec.ValidationError) as exc:
        print(f"tidydesk connector-rt: {exc}", file=sys.stderr)
        return 2

    async def body() -> None:
        task = asyncio.ensure_future(run(settings, rt))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(body())
    except (RtRefused, aiohttp.ClientError, OSError) as exc:
        print(f"tidydesk connector-rt: cannot use RT at {rt.url}, queue {rt.queue!r}: {exc}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
