"""What every service process shares: start-up, shutdown on signals, durable consumers."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from tidydesk.common import log as logsetup
from tidydesk.common import metrics, parking, trace
from tidydesk.common.events import Envelope, decode
from tidydesk.common.settings import Settings
from tidydesk.common.store import connect
from tidydesk.common.topology import apply_topology

log = structlog.get_logger()
Handler = Callable[[int, Envelope], Awaitable[None]]
Lane = Callable[[Msg, Envelope], tuple[str, ...]]  # events sharing a key: in stream order
Decoded = Envelope | msgspec.MsgspecError  # an undecodable event is parked, not retried
Run = Callable[[Msg, Decoded], Awaitable[None]]
HANDLER_TIMEOUT = 120.0  # seconds; a hung handler counts as a failed attempt
LAG_EVERY = 5.0  # seconds between refreshes of a consumer's lag gauges
_APPENDED_AFTER: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "appended_after", default=None)


def appended_after() -> int | None:
    """Inside a handler: the subject sequence the delivered event was appended after (the
    expected-sequence header `append` writes), None when it carries none. With it a
    consumer can extend its cached ticket without reading it (`JetStreamEventStore
    .delivered`)."""
    return _APPENDED_AFTER.get()


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
            await apply_topology(js, settings.namespace, replicas=settings.replicas)
            return nc, js
        except Exception as exc:  # JetStream not ready yet (cluster electing, restarting)
            log.warning("jetstream_not_ready", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(1)


async def consume(js: JetStreamContext, ns: str, durable: str, handler: Handler,
                  batch: int = 32, concurrency: int = 1, lane: Lane | None = None) -> None:
    """Run `handler` for every message of a durable pull consumer; ack only after success.

    Up to `concurrency` handlers run at once: events that share a key of `lane` (default:
    the subject, i.e. one ticket) are handled one after another in stream order.
    At most `batch` x `concurrency` fetched events wait or run at a time (1: one batch, one
    event after another). A failing event is retried as the consumer config says
    (`max_deliver`, `backoff`), then parked (see tidydesk.common.parking) so that the events
    after it go on. Retries that an operator asks for with `tidydesk parked retry` run here too.
    """
    stream = f"{ns.upper()}_EVENTS"
    info = await js.consumer_info(stream, durable)
    policy = Retries(info.config.max_deliver or -1, tuple(info.config.backoff or ()))
    sub = await js.pull_subscribe_bind(durable, stream=stream)
    async def exhausted(msg: Msg) -> None:
        await _park_exhausted(js, ns, durable, msg)

    async def run(msg: Msg, env: Decoded) -> None:
        await _handle(js, ns, durable, handler, policy, msg, env)

    nc: Client = js._nc  # advisories are plain NATS messages
    advisories = await nc.subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}", cb=exhausted)
    retries = asyncio.create_task(parking.serve_retries(js, ns, durable, traced(handler)))
    lag = asyncio.create_task(_watch_lag(js, stream, durable))
    try:
        async with asyncio.TaskGroup() as group:
            lanes = Lanes(group, run, max(1, concurrency), lane or by_subject)
            async with _keepalive(lanes.held, policy.progress_every()):
                while True:
                    await lanes.room_for(batch)
                    try:
                        msgs = await sub.fetch(batch, timeout=5)
                    except (TimeoutError, NatsTimeout):
                        stop_if_cancelled()
                        continue
                    except Exception as exc:  # reconnecting, leader election: wait, fetch again
                        stop_if_cancelled()
                        log.warning("fetch_failed", consumer=durable,
                                    error=str(exc) or type(exc).__name__)
                        await asyncio.sleep(1)
                        continue
                    for msg in msgs:
                        lanes.put(msg)
    finally:
        lag.cancel()
        retries.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await retries
        with contextlib.suppress(Exception):
            await advisories.unsubscribe()


def by_subject(msg: Msg, env: Envelope) -> tuple[str, ...]:
    """The default lane: one subject, i.e. one ticket."""
    return (msg.subject,)


class Lanes:
    """Fetched events routed by their keys: an event runs once it is the oldest waiting one
    of each of its keys, so events sharing a key run one after another in the order they
    came (the oldest waiting event can always run: no deadlock); up to `width` at once."""

    def __init__(self, group: asyncio.TaskGroup, run: Run, width: int, key: Lane) -> None:
        self.group, self.run, self.width, self.key = group, run, width, key
        self.slots = asyncio.Semaphore(width)
        self.queues: dict[str, collections.deque[Waiting]] = {}
        self.held: dict[int, Msg] = {}  # fetched and not answered yet, for the keepalive
        self.changed = asyncio.Event()

    def put(self, msg: Msg) -> None:
        env: Decoded
        try:
            env = decode(msg.data)
        except msgspec.MsgspecError as exc:  # parked at once by _handle
            env = exc
        # one lane when width is 1: every event in fetch order, as before lanes existed
        keys = ("",) if self.width == 1 else (
            (msg.subject,) if isinstance(env, msgspec.MsgspecError) else self.key(msg, env))
        waiting = Waiting(msg, env, tuple(dict.fromkeys(keys)) or (msg.subject,))
        self.held[id(msg)] = msg
        for key in waiting.keys:
            self.queues.setdefault(key, collections.deque()).append(waiting)
        self._start_if_first(waiting)

    async def room_for(self, n: int) -> None:
        """Wait until `n` more events fit (width x n in all)."""
        while len(self.held) > (self.width - 1) * n:
            self.changed.clear()
            await self.changed.wait()

    def _start_if_first(self, waiting: Waiting) -> None:
        if all(self.queues[key][0] is waiting for key in waiting.keys):
            run = self._run(waiting)
            try:
                self.group.create_task(run)
            except RuntimeError:  # the consumer is stopping: the server redelivers it
                run.close()

    async def _run(self, waiting: Waiting) -> None:
        async with self.slots:
            await self.run(waiting.msg, waiting.env)
        del self.held[id(waiting.msg)]
        self.changed.set()
        for key in waiting.keys:
            queue = self.queues[key]
            queue.popleft()
            if queue:
                self._start_if_first(queue[0])
            else:
                del self.queues[key]


class Waiting(msgspec.Struct, frozen=True):
    """A fetched event in its lanes."""

    msg: Msg
    env: Decoded
    keys: tuple[str, ...]


class Retries(msgspec.Struct, frozen=True):
    """The retry budget of one consumer, as its JetStream config says."""

    max_deliver: int  # -1: forever
    backoff: tuple[float, ...]  # seconds before retry n; the last one repeats

    def exhausted(self, delivered: int) -> bool:
        return 0 < self.max_deliver <= delivered

    def progress_every(self) -> float:
        """How often a worker says it is still on its events: well inside the ack deadline
        (with a backoff, the server waits backoff[0] before redelivering)."""
        return min(2.0, max(0.05, (self.backoff[0] if self.backoff else 30.0) / 4))

    def delay(self, delivered: int) -> float:
        if not self.backoff:
            return min(30.0, 0.5 * 2.0**delivered)
        return float(self.backoff[min(delivered, len(self.backoff)) - 1])


async def _handle(js: JetStreamContext, ns: str, durable: str, handler: Handler,
                  policy: Retries, msg: Msg, env: Decoded) -> None:
    seq = msg.metadata.sequence.stream
    delivered = msg.metadata.num_delivered or 1
    if isinstance(env, msgspec.MsgspecError):  # redelivery cannot fix it: park at once
        await parking.park(js, ns, durable, seq, msg.data, f"undecodable event: {env}",
                           delivered)
        await msg.term()
        return
    kind = metrics.short(env.type)
    with structlog.contextvars.bound_contextvars(event_id=env.id, seq=seq), trace.continuing(
            env.traceparent):
        value = (msg.headers or {}).get("Nats-Expected-Last-Subject-Sequence", "")
        _APPENDED_AFTER.set(int(value) if value.isdigit() else None)
        try:
            await asyncio.wait_for(handler(seq, env), HANDLER_TIMEOUT)
        except parking.Later as later:
            log.info("handler_later", consumer=durable, attempt=delivered, why=str(later))
            await msg.nak(delay=policy.delay(delivered))
            return
        except Exception as exc:
            stop_if_cancelled()
            metrics.FAILED.labels(durable, kind).inc()
            log.exception("handler_failed", consumer=durable, attempt=delivered)
            if policy.exhausted(delivered) or isinstance(exc, parking.Permanent):
                await parking.park(js, ns, durable, seq, msg.data,
                                   f"{type(exc).__name__}: {exc}", delivered)
                await msg.term()
            else:
                await msg.nak(delay=policy.delay(delivered))
            return
    await msg.ack()
    metrics.HANDLED.labels(durable, kind).inc()


def traced(handler: Handler) -> Handler:
    """`handler` inside the trace of the event it handles (see tidydesk.common.trace)."""
    async def run(seq: int, env: Envelope) -> None:
        with trace.continuing(env.traceparent):
            await handler(seq, env)

    return run


async def _watch_lag(js: JetStreamContext, stream: str, durable: str) -> None:
    """Keep the consumer's lag gauges current (the server's count, read every LAG_EVERY s)."""
    while True:
        try:
            info = await js.consumer_info(stream, durable)
            metrics.PENDING.labels(durable).set(info.num_pending or 0)
            metrics.ACK_PENDING.labels(durable).set(info.num_ack_pending or 0)
        except Exception as exc:  # NATS away: the gauges keep their last value
            stop_if_cancelled()
            log.debug("lag_unknown", consumer=durable, error=str(exc) or type(exc).__name__)
        await asyncio.sleep(LAG_EVERY)


@contextlib.asynccontextmanager
async def _keepalive(msgs: dict[int, Msg], every: float = 2.0) -> AsyncIterator[None]:
    """Tell the server that fetched events are still being worked on or waiting in their lane
    (short ack deadlines)."""
    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            for msg in list(msgs.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


async def _park_exhausted(js: JetStreamContext, ns: str, durable: str, advisory: Msg) -> None:
    """The server stopped redelivering an event nobody answered for (a worker died on it)."""
    try:
        info = json.loads(advisory.data)
        seq, deliveries = int(info["stream_seq"]), int(info["deliveries"])
        data = (await js.get_msg(f"{ns.upper()}_EVENTS", seq=seq)).data
        await parking.park(js, ns, durable, seq, data, "max deliveries reached without an "
                           "answer (the worker died or hung on this event)", deliveries)
    except Exception:
        log.exception("advisory_unhandled", consumer=durable)


def main(name: str, body: Callable[[Settings], Awaitable[None]]) -> None:
    """Process entry point: check ports, serve /healthz and /readyz, run `body` until
    SIGINT/SIGTERM."""
    import sys

    from tidydesk.common import health

    try:
        settings = Settings.from_env()
        logsetup.configure(settings.log_format, settings.log_level)
        health.check_ports(health.ports(settings, (name,)))
    except (ValueError, health.PortInUse) as exc:
        print(f"tidydesk {name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    structlog.contextvars.bind_contextvars(service=name)

    async def run() -> None:
        probes = await health.Server.start(settings, name)
        task = asyncio.ensure_future(body(settings))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        log.info("service_started", health=f"http://{settings.health_host}:{probes.port}")
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await probes.close()
        log.info("service_stopped")

    with asyncio.Runner(loop_factory=loop_factory(settings.loop)) as runner:
        runner.run(run())


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop (libuv: less CPU per socket read and callback than the asyncio
    loop; `TIDYDESK_LOOP=asyncio python -m bench.e2e` measures the other) when asked
    for and installed, else asyncio's."""
    if name == "uvloop":
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.new_event_loop
    return None
