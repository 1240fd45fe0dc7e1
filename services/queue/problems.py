"""RFC 9457 problem details: every API error is `application/problem+json`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

import asyncpg
import msgspec
import nats.errors
import structlog
from aiohttp import web

log = structlog.get_logger()
PROBLEM_JSON = "application/problem+json"
# Backend outages (the only 503s): a lost socket, PostgreSQL or NATS not answering.
OUTAGES: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
    nats.errors.ConnectionClosedError, nats.errors.NoServersError,
    nats.errors.NoRespondersError, nats.errors.TimeoutError,
)


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An error response (RFC 9457); `type` is about:blank, so `title` is the status phrase."""

    type: str
    title: str
    status: int
    detail: str = ""
    digest: str | None = None  # extension: the raw mail of a rejected intake


class ProblemError(Exception):
    """Raised by handlers; the middleware answers it as a problem response."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None,
                 digest: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.digest = status, detail, digest
        self.headers = dict(headers or {})


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None,
            digest: str | None = None) -> web.Response:
    body = Problem(type="about:blank", title=HTTPStatus(status).phrase, status=status,
                   detail=detail, digest=digest)
    return web.Response(body=msgspec.json.encode(body), status=status, headers=headers,
                        content_type=PROBLEM_JSON)


@web.middleware
async def problems(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
    """Every failure becomes a problem; never a traceback, and 503 only for an outage."""
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem(exc.status, exc.detail, exc.headers, exc.digest)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        text = exc.text or ""
        detail = exc.reason if not text or text.startswith(f"{exc.status}:") else text
        return problem(exc.status, detail, headers)
    except OUTAGES as exc:
        log.error("api_backend_unavailable", path=request.path, error=str(exc) or repr(exc))
        return problem(503, "a backend (NATS or PostgreSQL) is unavailable; retry shortly",
                       {"Retry-After": "1"})
    except Exception:
        log.exception("api_failed", path=request.path)
        return problem(500, "internal error; see the service log")
