"""`tidydesk up` as processes on the test's real servers, a webhook endpoint, /metrics.

Test modules import the fixtures by their function names (`up_fixture`, `hooks_fixture`);
pytest knows them as `up` and `hooks`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import smtplib
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.e2e.test_stack import Up

Samples = list[tuple[str, dict[str, str], float]]


class Hooks:
    """A webhook endpoint on loopback that keeps every POST (headers, JSON body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, object]]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hooks.posts.append((dict(self.headers.items()), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.consumer = "webhook-" + hashlib.sha256(self.url.encode()).hexdigest()[:12]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="hooks")
def hooks_fixture() -> Iterator[Hooks]:
    endpoint = Hooks()
    yield endpoint
    endpoint.close()


@pytest.fixture(name="up")
async def up_fixture(tmp_path: Path, ns: str, nc: Client, pool: asyncpg.Pool, nats_url: str,
             database_url: str, hooks: Hooks) -> AsyncIterator[Up]:
    """`tidydesk up` on the test's servers and namespace, webhooks to `hooks`."""
    env = {**os.environ, "TIDYDESK_HOME": str(tmp_path / "home"), "TIDYDESK_NAMESPACE": ns,
           "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_DATABASE_URL": database_url,
           "TIDYDESK_SMTP_PORT": str(free_port()), "TIDYDESK_HTTP_PORT": str(free_port()),
           "TIDYDESK_HEALTH_PORT": "0", "TIDYDESK_LOG_FORMAT": "json",
           "TIDYDESK_WEBHOOK_URLS": hooks.url}
    stack = await asyncio.to_thread(Up, tmp_path, env)
    try:
        yield stack
    finally:
        assert await asyncio.to_thread(stack.stop) == 0, stack.log.read_text()[-3000:]


def health_urls(log: str) -> dict[str, list[str]]:
    """service -> base URLs of its instances' health servers (`threading-2` is one of
    threading's), from what `tidydesk up` printed."""
    found: dict[str, list[str]] = {}
    for service, url in re.findall(r"^\s+(?:Health)?\s+(\w+)(?:-\d+)?\s+(http://\S+)/healthz",
                                   log, re.M):
        found.setdefault(service, []).append(url)
    return found


def scrape(bases: list[str]) -> Samples:
    """The samples of every instance of a service, together (`value` sums over them)."""
    samples: Samples = []
    for base in bases:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        samples += [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
                    for s in family.samples]
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


def has(samples: Samples, name: str, **labels: str) -> bool:
    return any(n == name and labels.items() <= ls.items() for n, ls, _ in samples)


async def until(check: Callable[[], bool], within: float = 30.0) -> None:
    """Poll a blocking check (scrapes, API reads) until it holds."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.3)


def smtp(up: Up, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", int(up.env["TIDYDESK_SMTP_PORT"]), timeout=10) as client:
        client.sendmail("alice@example.com", ["support@acme.example"], raw)


async def ready_for_webhooks(up: Up, hooks: Hooks) -> dict[str, list[str]]:
    """The health URLs, once the webhook consumer runs (it starts at new events)."""
    urls = health_urls(up.log.read_text())
    await until(lambda: has(scrape(urls["notify"]), "tidydesk_consumer_pending",
                            consumer=hooks.consumer))
    return urls
