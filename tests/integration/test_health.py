"""A service process answers /healthz and /readyz, and readiness follows NATS going away."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from nats.aio.client import Client

from tests.conftest import free_port
from tidydesk.common.embedded import EmbeddedNats

THREADING = 1  # place of threading in SERVICES: its health port is TIDYDESK_HEALTH_PORT + 1


@contextlib.asynccontextmanager
async def threading_service(nats_url: str, ns: str) -> AsyncIterator[str]:
    """`python -m tidydesk.threading` on a free health port; yields the health base URL."""
    port = free_port()
    env = {**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_NAMESPACE": ns,
           "TIDYDESK_HEALTH_PORT": str(port - THREADING), "TIDYDESK_LOG_LEVEL": "error"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tidydesk.threading",
                                                env=env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise


async def until(url: str, status: int, within: float = 20) -> dict[str, Any]:
    """Poll `url` until it answers `status`; its JSON body."""
    deadline = time.monotonic() + within
    last: object = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=4)) as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as resp:
                    last = body = await resp.json()
                    if resp.status == status:
                        assert isinstance(body, dict)
                        return body
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {within}s; last: {last}")


async def test_service_is_live_and_ready(nc: Client, nats_url: str, ns: str) -> None:
    async with threading_service(nats_url, ns) as base:
        live = await until(f"{base}/healthz", 200)
        assert live["service"] == "threading" and live["status"] == "ok"
        ready = await until(f"{base}/readyz", 200)
        assert ready["checks"] == {"nats": "ok", "jetstream": "ok", "consumer": "ok"}
        assert ready["failing"] == {}


async def test_readiness_follows_nats_down_and_back(tmp_path: Path, ns: str) -> None:
    server = EmbeddedNats(tmp_path)
    url = await asyncio.to_thread(server.start)
    try:
        async with threading_service(url, ns) as base:
            await until(f"{base}/readyz", 200)
            assert server.proc is not None
            server.proc.kill()
            server.proc.wait()
            down = await until(f"{base}/readyz", 503, within=10)
            assert down["status"] == "not ready" and "nats" in down["failing"]
            assert (await until(f"{base}/healthz", 200))["status"] == "ok"  # still live

            server = EmbeddedNats(tmp_path)  # a new `tidydesk up` would do the same
            assert await asyncio.to_thread(server.start) == url  # the same port again
            await until(f"{base}/readyz", 200, within=20)
    finally:
        server.stop()


def test_service_refuses_a_taken_health_port(ns: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {**os.environ, "TIDYDESK_NAMESPACE": ns,
               "TIDYDESK_HEALTH_PORT": str(port - THREADING)}
        done = subprocess.run([sys.executable, "-m", "tidydesk.threading"], env=env,
                              capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert (f"TIDYDESK_HEALTH_PORT={port - THREADING} (+1 = {port}, threading) is in use "
            "(another tidydesk?); set TIDYDESK_HEALTH_PORT to a free port") in done.stderr

