"""Streams, consumers and buckets of jetstream.json (beside this file), applied without surprises.

What is missing is created. What exists with other settings is left alone, because an
operator may have tuned it (max_bytes, compression, replicas), and reported as a
difference; `tidydesk streams apply --force` applies the file's settings over it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

log = structlog.get_logger()
TOPOLOGY = Path(__file__).with_name("jetstream.json")  # package data


@dataclass(frozen=True)
class Difference:
    """One setting of an existing stream or consumer that is not what the file says."""

    what: str  # "stream X" or "consumer X/Y"
    field: str
    current: object
    wanted: object


def fill_namespace(value: Any, ns: str) -> Any:
    """Put the namespace into a jetstream.json value: {ns} as is, {NS} upper-cased."""
    if isinstance(value, str):
        return value.replace("{ns}", ns).replace("{NS}", ns.upper())
    if isinstance(value, list):
        return [fill_namespace(v, ns) for v in value]
    return value


def _plain(value: object) -> object:
    value = getattr(value, "value", value)  # enums compare by their wire value
    return list(value) if isinstance(value, list | tuple) else value


def _differences(what: str, wanted: object, current: object, fields: list[str]
                 ) -> list[Difference]:
    return [Difference(what, f, _plain(getattr(current, f, None)), _plain(getattr(wanted, f)))
            for f in fields if _plain(getattr(current, f, None)) != _plain(getattr(wanted, f))]


async def apply_topology(js: JetStreamContext, ns: str, path: Path = TOPOLOGY, *,
                         replicas: int = 1, force: bool = False, check: bool = False
                         ) -> list[Difference]:
    """Create what is missing; return how existing streams/consumers differ from the file.

    `force` updates them to the file's settings; `check` changes nothing at all.
    """
    spec = json.loads(path.read_text())  # noqa: ASYNC240 - one small local file at start
    found: list[Difference] = []
    for raw in spec["streams"]:
        fields = {k: fill_namespace(v, ns) for k, v in raw.items()}
        fields.setdefault("num_replicas", replicas)
        cfg = api.StreamConfig.from_response(dict(fields))
        try:
            current = (await js.stream_info(cfg.name or "")).config
        except NotFoundError:
            if not check:
                await js.add_stream(cfg)
            continue
        diff = _differences(f"stream {cfg.name}", cfg, current, list(fields))
        if diff and force and not check:
            await js.update_stream(cfg)
        found += diff
    for raw in spec["consumers"]:
        fields = {k: fill_namespace(v, ns) for k, v in raw.items() if k != "stream"}
        stream = fill_namespace(raw["stream"], ns)
        ccfg = api.ConsumerConfig.from_response(dict(fields))
        try:
            ccurrent = (await js.consumer_info(stream, ccfg.durable_name or "")).config
        except NotFoundError:
            if not check:
                await js.add_consumer(stream, ccfg)
            continue
        diff = _differences(f"consumer {stream}/{ccfg.durable_name}", ccfg, ccurrent,
                            [f for f in fields if f != "deliver_policy"])  # fixed at creation
        if diff and force and not check:
            await js.add_consumer(stream, ccfg)  # the server updates the editable fields
        found += diff
    for raw in spec["key_value"]:
        fields = {k: fill_namespace(v, ns) for k, v in raw.items()}
        fields.setdefault("replicas", replicas)
        try:
            await js.key_value(fields["bucket"])
        except NotFoundError:
            if not check:
                await js.create_key_value(api.KeyValueConfig(**fields))
    for raw in spec["object_stores"]:
        fields = {k: fill_namespace(v, ns) for k, v in raw.items()}
        fields.setdefault("replicas", replicas)
        try:
            await js.object_store(fields["bucket"])
        except NotFoundError:
            if not check:
                await js.create_object_store(fields["bucket"], api.ObjectStoreConfig(**fields))
    for d in found if not force else []:
        log.warning("topology_differs", what=d.what, field=d.field, current=d.current,
                    wanted=d.wanted, hint="kept; `tidydesk streams apply --force` applies it")
    return found


def topology_streams(ns: str, path: Path = TOPOLOGY) -> list[str]:
    """Names of every stream the topology creates (buckets included)."""
    spec = json.loads(path.read_text())
    return ([fill_namespace(s["name"], ns) for s in spec["streams"]]
            + [f"KV_{fill_namespace(b['bucket'], ns)}" for b in spec["key_value"]]
            + [f"OBJ_{fill_namespace(b['bucket'], ns)}" for b in spec["object_stores"]])


def main(argv: list[str]) -> int:
    """`tidydesk streams apply [--check | --force]`."""
    from tidydesk.common import clinats  # imports store, which imports this module
    from tidydesk.common.settings import Settings

    parser = argparse.ArgumentParser(prog="tidydesk streams", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("apply", help="create what is missing; show what differs")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 on "
                      "differences")
    mode.add_argument("--force", action="store_true", help="apply the file over operators' "
                      "settings")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    args = parser.parse_args(argv)

    async def body(nc: Client, settings: Settings) -> int:
        diffs = await apply_topology(nc.jetstream(), settings.namespace,
                                     replicas=settings.replicas, force=args.force,
                                     check=args.check)
        report(diffs, args.force)
        return 1 if args.check and diffs else 0

    return clinats.run("tidydesk-streams", args.timeout, body)


def report(diffs: list[Difference], forced: bool) -> None:
    """What `tidydesk streams apply` prints."""
    for d in diffs:
        verb = "updated" if forced else "differs"
        print(f"{d.what}: {d.field} {verb}: {d.current!r} -> file {d.wanted!r}")
    if not diffs:
        print("topology matches services/common/jetstream.json")
    elif not forced:
        print("kept as they are; --force applies the file's settings")
