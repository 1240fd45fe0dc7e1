"""A NATS or PostgreSQL that is down at start gets a log line and a retry, not a traceback."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from tests.conftest import free_port
from tidydesk.common import db
from tidydesk.common.store import close, connect


async def test_postgres_down_is_logged_and_retried() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with capture_logs() as logs, pytest.raises(OSError):
        await db.connect(dsn, "tdown", attempts=2)
    assert [e["event"] for e in logs] == ["postgres_unavailable"]


async def test_nats_down_is_retried_until_it_is_there(nats_url: str) -> None:
    port = free_port()
    with capture_logs() as logs:
        pending = asyncio.create_task(connect(f"nats://127.0.0.1:{port}", "late"))
        await asyncio.sleep(1.5)
        assert not pending.done()
        pending.cancel()
    # nats-py retries the first connect itself and reports each failure to our error_cb
    assert any(e["event"] in ("nats_error", "nats_unavailable") for e in logs)
    nc = await connect(nats_url, "there")  # and a reachable server connects at once
    assert nc.is_connected
    await close(nc)
