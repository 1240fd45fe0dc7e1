"""Intake parses a typical mail on the event loop and a big one in a worker thread."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tidydesk.ingest.intake import INLINE_PARSE, Intake


class Store:
    async def record_intake(self, event: object, key: str) -> bool:
        return True


class Raw:
    async def put(self, raw: bytes) -> str:
        return "digest"


def mail(body_bytes: int) -> bytes:
    return (b"From: ann@example.com\r\nTo: help@acme.example\r\nSubject: printer\r\n"
            b"Message-ID: <m@example.com>\r\n\r\n" + b"The printer jams. " * (body_bytes // 18))


@pytest.mark.parametrize(("size", "threaded"), [(2_000, False), (INLINE_PARSE * 2, True)])
def test_big_mail_is_parsed_off_the_loop(monkeypatch: pytest.MonkeyPatch, size: int,
                                         threaded: bool) -> None:
    calls: list[Any] = []
    real = asyncio.to_thread

    async def to_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    accepted = asyncio.run(Intake(Store(), Raw()).accept(mail(size)))  # type: ignore[arg-type]
    assert accepted[1] and getattr(accepted[0], "message_id", "") == "m@example.com"
    assert bool(calls) is threaded
