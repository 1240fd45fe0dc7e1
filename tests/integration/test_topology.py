"""Topology apply creates what is missing and never silently overwrites operators' settings."""

from __future__ import annotations

import asyncio
import os

import pytest
from nats.aio.client import Client

from tidydesk.common import topology


async def test_operator_settings_are_kept_and_reported(nc: Client, ns: str) -> None:
    js = nc.jetstream()
    stream = f"{ns.upper()}_EVENTS"
    assert await topology.apply_topology(js, ns) == []  # the fixture created it: no change
    cfg = (await js.stream_info(stream)).config
    cfg.max_bytes = 10**9  # an operator's limit
    await js.update_stream(cfg)
    ccfg = (await js.consumer_info(stream, "policy")).config
    ccfg.max_ack_pending = 50
    await js.add_consumer(stream, ccfg)

    diffs = await topology.apply_topology(js, ns)  # what every service does at start
    assert {(d.what, d.field, d.current, d.wanted) for d in diffs} == {
        (f"stream {stream}", "max_bytes", 10**9, -1),
        (f"consumer {stream}/policy", "max_ack_pending", 50, 1000)}
    assert (await js.stream_info(stream)).config.max_bytes == 10**9
    assert (await js.consumer_info(stream, "policy")).config.max_ack_pending == 50

    assert len(await topology.apply_topology(js, ns, force=True)) == 2
    assert (await js.stream_info(stream)).config.max_bytes == -1
    assert await topology.apply_topology(js, ns) == []


async def test_check_changes_nothing_and_the_cli_says_so(
        nc: Client, ns: str, nats_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    js = nc.jetstream()
    await js.delete_consumer(f"{ns.upper()}_EVENTS", "threading")
    cfg = (await js.stream_info(f"{ns.upper()}_EVENTS")).config
    cfg.max_msgs = 1000
    await js.update_stream(cfg)
    monkeypatch.setitem(os.environ, "TIDYDESK_NATS_URL", nats_url)
    monkeypatch.setitem(os.environ, "TIDYDESK_NAMESPACE", ns)
    code = await asyncio.to_thread(topology.main, ["apply", "--check"])
    assert code == 1 and "max_msgs differs: 1000 -> file -1" in capsys.readouterr().out
    with pytest.raises(Exception, match="not found"):
        await js.consumer_info(f"{ns.upper()}_EVENTS", "threading")  # --check created nothing
    assert await asyncio.to_thread(topology.main, ["apply"]) == 0
    await js.consumer_info(f"{ns.upper()}_EVENTS", "threading")  # missing: created
