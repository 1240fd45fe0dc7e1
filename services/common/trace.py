"""W3C trace context on events: one mail can be followed across services.

Intake starts a trace (`starting`), or continues the one a caller gave; a consumer handles an
event inside `continuing(env.traceparent)`; every envelope made meanwhile (`events.envelope`)
carries the same trace-id with a new span-id (`next_span`), as the `traceparent` CloudEvents
extension. The format is one line of hex, and nothing here records spans, so an
OpenTelemetry dependency would add an API without adding behaviour. The ids come from a
generator seeded from the OS once per process (and again in a forked child): they must be
unique, not secret, and one `os.urandom` call per event cost ~50 µs here (a tenth of
ingest's CPU per mail).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Iterator
from contextvars import ContextVar

import structlog

# version-traceid-parentid-flags; later versions may append fields after another "-"
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_current: ContextVar[str | None] = ContextVar("traceparent", default=None)


def parse(value: object) -> tuple[str, str, str] | None:
    """(trace-id, span-id, flags) of a valid traceparent, None for anything else."""
    found = _FORMAT.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"} or (
            set(span_id) == {"0"}):
        return None
    return trace_id, span_id, flags


_ids = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_ids.seed)


def _hex(bits: int) -> str:
    """A random non-zero id of `bits` bits as lower-case hex (all zeros is invalid)."""
    return f"{_ids.getrandbits(bits) or 1:0{bits // 4}x}"


def new() -> str:
    """The traceparent of a new trace (sampled: someone downstream may record it)."""
    return f"00-{_hex(128)}-{_hex(64)}-01"


def child(parent: object) -> str | None:
    """A span of `parent`'s trace with a new span-id; None when `parent` is not valid."""
    parsed = parse(parent)
    if parsed is None:
        return None
    trace_id, _, flags = parsed
    return f"00-{trace_id}-{_hex(64)}-{flags}"


def trace_id(traceparent: object) -> str | None:
    parsed = parse(traceparent)
    return parsed[0] if parsed else None


def current() -> str | None:
    """The traceparent of what this task is handling, if any."""
    return _current.get()


def next_span() -> str | None:
    """The traceparent of an event published now: a child of the current span, if any."""
    return child(_current.get())


@contextlib.contextmanager
def continuing(traceparent: object) -> Iterator[str | None]:
    """Handle something of trace `traceparent` (ignored when not valid): what is published
    inside is its child, and log lines carry its `trace_id`."""
    parsed = parse(traceparent)
    if parsed is None or not isinstance(traceparent, str):
        yield None
        return
    token = _current.set(traceparent)
    try:
        with structlog.contextvars.bound_contextvars(trace_id=parsed[0]):
            yield traceparent
    finally:
        _current.reset(token)


@contextlib.contextmanager
def starting(traceparent: object = None) -> Iterator[str | None]:
    """Intake: continue `traceparent` (a caller's), else the current trace, else a new one."""
    chosen = traceparent if parse(traceparent) else (_current.get() or new())
    with continuing(chosen) as active:
        yield active


def nats_headers(traceparent: object) -> dict[str, str]:
    """The CloudEvents NATS binding's header for the extension (none when absent)."""
    return {"ce-traceparent": traceparent} if isinstance(traceparent, str) else {}
