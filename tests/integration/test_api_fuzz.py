"""schemathesis against the served API and its own /openapi.json: no 5xx, no off-spec answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.store import KvIndex
from tidydesk.queue.api import build, runner
from tidydesk.queue.auth import TokenStore
from tidydesk.tickets.tokens import shared_secret

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
EXAMPLES = 60  # per operation and mode; the cap below bounds a slow machine


@pytest.fixture
async def served(stack: Stack) -> AsyncIterator[tuple[str, str]]:
    index = KvIndex(stack.js, stack.ns)
    tokens = TokenStore(stack.js, stack.ns)
    port = free_port()
    app = build(stack.pool, stack.store, stack.intake.raw, stack.intake, 1 << 20,
                await shared_secret(index), index, tokens=tokens,
                hosts=frozenset({f"127.0.0.1:{port}"}), body_timeout=5.0)
    server = runner(app)
    await server.setup()
    await web.TCPSite(server, "127.0.0.1", port).start()
    admin, _ = await tokens.create(("admin",), name="fuzz")
    yield f"http://127.0.0.1:{port}", admin
    await server.cleanup()


def fuzz(url: str, token: str) -> list[str]:
    """Every operation, valid and invalid generated requests; the failures found."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _runner(operation, mode, url, token)()
            except hypothesis.errors.Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing there to break
            except Exception as exc:  # a failing check: report it, go on with the rest
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def _runner(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode,
            url: str, token: str) -> Callable[[], None]:
    """A bounded Hypothesis test of one operation: no 5xx; valid requests get answers
    that match the document."""
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    checks = [not_a_server_error]
    if mode is schemathesis.GenerationMode.POSITIVE:
        checks.append(response_schema_conformance)
    headers = {"Authorization": f"Bearer {token}"}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=url, headers=headers, checks=checks, timeout=10)

    return run  # type: ignore[no-any-return]


async def test_schemathesis_finds_no_server_error_and_no_off_spec_response(
        stack: Stack, served: tuple[str, str]) -> None:
    for i in range(3):  # some real tickets, so ids and numbers 1..3 hit something
        await stack.intake.accept(mail(f"fz{i}@example.com", f"fuzz {i}"))
    await eventually(lambda: _count(stack, 3))
    url, token = served
    failures = await asyncio.wait_for(asyncio.to_thread(fuzz, url, token), 300)
    assert not failures, "\n\n".join(failures)


async def _count(stack: Stack, n: int) -> bool:
    return len(await stack.tickets()) >= n
