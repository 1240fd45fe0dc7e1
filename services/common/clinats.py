"""What the CLI commands that talk to NATS share: one bounded connection, one-line errors."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.js.errors import APIError

from tidydesk.common.settings import Settings, redact
from tidydesk.common.store import servers


def run(name: str, timeout: float, body: Callable[[Client, Settings], Awaitable[int]], *,
        bad_input: int = 1) -> int:
    """Connect once (no reconnect loop), run `body`, all within `timeout` seconds; print one
    line saying what could not be reached instead of a traceback. ValueError from `body`
    means bad input: its message is printed and `bad_input` returned."""
    settings = Settings.from_env()
    if not settings.nats_url:
        print("tidydesk: set TIDYDESK_NATS_URL (the one `tidydesk up` prints)", file=sys.stderr)
        return 2
    where = redact("TIDYDESK_NATS_URL", settings.nats_url)
    errors: list[Exception] = []

    async def remember(exc: Exception) -> None:  # instead of nats-py's log lines
        errors.append(exc)

    async def go() -> int:
        nc = await nats.connect(servers(settings.nats_url), name=name,
                                connect_timeout=min(timeout, 5.0), allow_reconnect=False,
                                max_reconnect_attempts=1, reconnect_time_wait=0.2,
                                error_cb=remember)
        try:
            return await body(nc, settings)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    try:
        return asyncio.run(asyncio.wait_for(go(), timeout))
    except ValueError as exc:
        print(f"tidydesk: {exc}", file=sys.stderr)
        return bad_input
    except TimeoutError:
        print(f"tidydesk: no answer within {timeout:g}s from NATS at {where} "
              "(is the stack running? --timeout to wait longer)", file=sys.stderr)
        return 1
    except APIError as exc:
        print(f"tidydesk: NATS at {where} refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, nats.errors.Error) as exc:
        why = errors[-1] if errors else exc
        print(f"tidydesk: cannot reach NATS at {where}: {why or type(why).__name__}",
              file=sys.stderr)
        return 1
