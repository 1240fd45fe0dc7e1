"""Shared key-value writes lose nothing when real processes race on the same key."""

from __future__ import annotations

import asyncio
import json
import sys

from nats.aio.client import Client

from tidydesk.common.store import KvIndex
from tidydesk.policy import config

WRITER = """
import asyncio, sys, msgspec
from tidydesk.common.store import KvIndex, connect
from tidydesk.policy import config

async def main(url, ns, who, n):
    nc = await connect(url, "cas-" + who)
    index = KvIndex(nc.jetstream(), ns)
    def add(value):
        return msgspec.json.encode([*msgspec.json.decode(value or "[]"), who + str(i)]).decode()
    for i in range(n):
        await index.update("q:shared", add)
        await config.change(nc.jetstream(), ns, lambda c: msgspec.structs.replace(
            c, mailboxes={**c.mailboxes, f"{who}{i}@acme.example": "always-reopen"}))
    await nc.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


async def test_two_processes_updating_one_key_lose_no_write(
        nc: Client, ns: str, nats_url: str) -> None:
    n = 40
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, nats_url, ns,
                                                  who, str(n)) for who in ("a", "b")]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 120)
    assert codes == [0, 0]
    values = json.loads(await KvIndex(nc.jetstream(), ns).get("q:shared") or "[]")
    assert sorted(values) == sorted(f"{w}{i}" for w in "ab" for i in range(n))
    mailboxes = (await config.load(nc.jetstream(), ns)).mailboxes
    assert len(mailboxes) == 2 * n
