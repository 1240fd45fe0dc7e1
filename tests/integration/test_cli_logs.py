"""CLI commands log to stderr, as JSON lines when stderr is not a terminal; stdout stays theirs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import asyncpg
from nats.aio.client import Client


async def test_replay_logs_json_lines_on_stderr(nc: Client, pool: asyncpg.Pool, ns: str,
                                                nats_url: str, database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDYDESK_LOG_")}
    env |= {"TIDYDESK_NAMESPACE": ns, "TIDYDESK_NATS_URL": nats_url,
            "TIDYDESK_DATABASE_URL": database_url}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tidydesk.cli", "replay"], env=env,
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [line for line in done.stdout.splitlines()
                                        if "rebuilt" in line], done.stdout
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert "migrations_applied" in {line["event"] for line in lines}, done.stderr
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)


async def test_a_bad_log_level_is_a_clear_error() -> None:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tidydesk.cli", "replay"],
        env={**os.environ, "TIDYDESK_LOG_LEVEL": "loud"}, capture_output=True, text=True,
        timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == ("tidydesk: TIDYDESK_LOG_LEVEL must be debug, info, warning or "
                           "error, got 'loud'\n")
