"""The end-to-end flow on a 3-node JetStream cluster with R3 streams, one node killed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client

from bench._cluster import Cluster
from tests.conftest import Stack, eventually, mail
from tidydesk.common.store import close, connect
from tidydesk.common.topology import apply_topology, topology_streams


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    await asyncio.to_thread(c.start)
    yield c
    await asyncio.to_thread(c.stop)


async def _ready(url: str, ns: str) -> Client:
    nc = await connect(url, "tidydesk-cluster-test")
    async def applied() -> bool:  # the cluster elects its meta leader first
        try:
            await apply_topology(nc.jetstream(), ns, replicas=3)
            return True
        except Exception:
            return False
    await eventually(applied, within=30)
    return nc


async def test_flow_survives_a_node_killed(cluster: Cluster, pool: asyncpg.Pool,
                                           ns: str) -> None:
    nc = await _ready(cluster.url, ns)
    js = nc.jetstream()
    for name in topology_streams(ns):
        assert (await js.stream_info(name)).config.num_replicas == 3, name
    stack = Stack(nc, pool, ns, policy="content-aware")
    tasks = await stack.tasks()
    try:
        for i in range(10):
            await stack.intake.accept(mail(f"r{i}@example.com", f"Printer {i} is broken",
                                           sender=f"c{i}@example.com", subject=f"Printer {i}"))
        await eventually(lambda: _count(pool, 10), within=30)
        await asyncio.to_thread(cluster.kill, 0)  # a stream leader may be on it
        for i in range(10, 20):
            async def accepted(i: int = i) -> bool:
                try:
                    await stack.intake.accept(mail(
                        f"r{i}@example.com", f"Scanner {i} jams", sender=f"c{i}@example.com",
                        subject=f"Scanner {i}"))
                    return True
                except Exception:  # a new leader is being elected: the sender retries
                    return False
            await eventually(accepted, within=30)
        await eventually(lambda: _count(pool, 20), within=60)
        await asyncio.to_thread(cluster.start_node, 0)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=15)
        await close(nc)


async def _count(pool: asyncpg.Pool, n: int) -> bool:
    try:
        return int(await pool.fetchval("SELECT count(*) FROM tickets")) == n
    except asyncpg.UndefinedTableError:
        return False
