"""Prometheus metrics of one service process, served at /metrics by its health server.

One registry per process (prometheus_client's default, which also holds the process and
Python collectors); every name starts with `tidydesk_`. The README lists them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HANDLED = Counter("tidydesk_events_handled", "Events a consumer handled and acked.",
                  ("consumer", "type"))
FAILED = Counter("tidydesk_events_failed", "Handler attempts that failed (retried or parked).",
                 ("consumer", "type"))
PENDING = Gauge("tidydesk_consumer_pending",
                "Events of the stream not yet delivered to the consumer (num_pending).",
                ("consumer",))
ACK_PENDING = Gauge("tidydesk_consumer_ack_pending",
                    "Events delivered to the consumer and not yet acked (num_ack_pending).",
                    ("consumer",))
PARKED = Counter("tidydesk_events_parked", "Events a consumer gave up on and parked.",
                 ("consumer", "type"))
DECISIONS = Counter("tidydesk_policy_decisions", "Follow-up decisions taken by the policy "
                    "service.", ("policy", "outcome", "language"))
PROJECTION_LATENCY = Histogram(
    "tidydesk_projection_latency_seconds",
    "From an event's CloudEvents `time` to the commit of its projection.", ("type",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
INTAKE = Counter("tidydesk_intake_messages", "Mails intake recorded (one per tenant), by "
                 "outcome: accepted, duplicate, rejected.", ("outcome",))
WEBHOOKS = Counter("tidydesk_webhook_deliveries", "Webhook POSTs by endpoint (its consumer) "
                   "and outcome: delivered, rejected (4xx), failed (retried).",
                   ("endpoint", "outcome"))


def short(event_type: str) -> str:
    """The label of a CloudEvents type: `tidydesk.ticket.opened` -> `ticket.opened`."""
    return event_type.removeprefix("tidydesk.") or "unknown"


def projected(event_type: str, at: datetime, now: datetime | None = None) -> None:
    """An event written to the projection has committed."""
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    PROJECTION_LATENCY.labels(short(event_type)).observe(max(seconds, 0.0))


def exposition() -> tuple[bytes, str]:
    """The text exposition of the process's registry and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
