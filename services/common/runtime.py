"""What every service process shares: start-up, shutdown on signals, durable consumers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from services.common import log as logsetup
from services.common.events import Envelope, decode
from services.common.settings import Settings
from services.common.store import apply_topology, connect

log = structlog.get_logger()
Handler = Callable[[int, Envelope], Awaitable[None]]


def stop_if_cancelled() -> None:
    """Re-raise a cancellation that a client library turned into a timeout."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def open_bus(settings: Settings, name: str) -> tuple[Client, JetStreamContext]:
    """Connect to NATS (retrying until it is there) and make sure the topology exists."""
    nc = await connect(settings.nats_url, name)
    js = nc.jetstream()
    while True:
        try:
            await apply_topology(js, settings.namespace)
            return nc, js
        except Exception as exc:  # JetStream not ready yet (cluster electing, restarting)
            log.warning("jetstream_not_ready", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(1)


async def consume(js: JetStreamContext, ns: str, durable: str, handler: Handler,
                  batch: int = 32) -> None:
    """Run `handler` for every message of a durable pull consumer; ack only after success."""
    stream = f"{ns.upper()}_EVENTS"
    sub = await js.pull_subscribe_bind(durable, stream=stream)
    while True:
        try:
            msgs = await sub.fetch(batch, timeout=5)
        except (TimeoutError, NatsTimeout):
            stop_if_cancelled()
            continue
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            try:
                env = decode(msg.data)
            except msgspec.MsgspecError as exc:
                log.error("event_undecodable", consumer=durable, seq=seq, error=str(exc))
                await msg.term()  # stays in the stream; redelivery cannot fix it
                continue
            with structlog.contextvars.bound_contextvars(event_id=env.id, seq=seq):
                try:
                    await handler(seq, env)
                except Exception:
                    delivered = msg.metadata.num_delivered or 1
                    log.exception("handler_failed", consumer=durable, attempt=delivered)
                    await msg.nak(delay=min(30.0, 0.5 * 2**delivered))
                    continue
            await msg.ack()


def main(name: str, body: Callable[[Settings], Awaitable[None]]) -> None:
    """Process entry point: configure logging, run `body` until SIGINT/SIGTERM."""
    settings = Settings.from_env()
    logsetup.configure(settings.log_format, settings.log_level)
    structlog.contextvars.bind_contextvars(service=name)

    async def run() -> None:
        task = asyncio.ensure_future(body(settings))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        log.info("service_started")
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("service_stopped")

    asyncio.run(run())
