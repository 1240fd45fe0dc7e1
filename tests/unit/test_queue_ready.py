"""The queue's readiness fails while its projector is behind and not moving."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from tidydesk.queue.app import progressing


class FakeProjector:  # pure logic: the checkpoint and the stream end are all the check reads
    def __init__(self) -> None:
        self.done, self.end, self.stream = 5, 10, "T_EVENTS"
        self.js = SimpleNamespace(stream_info=self.info)

    async def checkpoint(self) -> int:
        return self.done

    async def info(self, stream: str) -> Any:
        return SimpleNamespace(state=SimpleNamespace(last_seq=self.end))


async def test_stalled_projector_is_not_ready_and_recovers() -> None:
    p = FakeProjector()
    check = progressing(p, stalled_after=0.05)  # type: ignore[arg-type]
    assert await check() is None  # behind, but just seen moving
    await asyncio.sleep(0.1)
    assert "stalled at sequence 5 of 10" in (await check() or "")
    p.done = 7  # it moves again
    assert await check() is None
    p.done = p.end  # caught up: never stalled, however long nothing arrives
    await asyncio.sleep(0.1)
    assert await check() is None
