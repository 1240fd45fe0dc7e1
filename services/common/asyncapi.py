"""The AsyncAPI 3 document of tidydesk's events as they are on the wire (`tidydesk schema`).

Two NATS channels (intake and ticket subjects) and the webhook channel (HTTP POST, Standard
Webhooks headers). Every message is a CloudEvents 1.0 envelope in structured mode whose
`data` is one of the channel's event types; the event schemas come from the msgspec Structs.
"""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec

from tidydesk.common.events import EVENT_TYPES, Envelope

REF = "#/components/schemas/{name}"
INTAKE = ("MessageReceived", "MessageRejected")  # the events on {ns}.inbound.*
CONTENT_TYPE = "application/cloudevents+json"
NATS_BINDING = "0.1.0"
HTTP_BINDING = "0.3.0"


def _tag(cls: type) -> str:
    return str(msgspec.inspect.type_info(cls).tag)  # type: ignore[attr-defined]


def _envelope(base: dict[str, Any], names: list[str], title: str, subject: str
              ) -> dict[str, Any]:
    """The Envelope schema narrowed to `names`: `type` one of theirs, `data` one of them."""
    schema = copy.deepcopy(base)
    tags = {cls.__name__: _tag(cls) for cls in EVENT_TYPES}
    props = schema["properties"]
    props["id"]["description"] = ("Unique per event and stable across retries: also the "
                                  "Nats-Msg-Id and the webhook-id. Dedupe on it.")
    props["source"] = {"type": "string", "format": "uri-reference",
                       "description": "The namespace that produced the event.",
                       "examples": ["/tidydesk/tidydesk"]}
    props["type"] = {"type": "string", "enum": [f"tidydesk.{tags[n]}" for n in names],
                     "description": "tidydesk.<data.type>"}
    props["subject"]["description"] = subject
    props["time"] = {"type": "string", "format": "date-time"}
    props["data"] = {"oneOf": [{"$ref": REF.format(name=n)} for n in names],
                     "discriminator": "type"}  # AsyncAPI Schema: the property's name
    props["specversion"] = {"type": "string", "const": "1.0"}
    props["datacontenttype"] = {"type": "string", "const": "application/json"}
    schema["title"] = title
    schema["required"] = [*schema["required"], "specversion"]
    return schema


def _nats_headers(types: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "NATS message headers. Content-Type marks structured mode (CloudEvents "
                       "NATS binding): the envelope is the payload, so no other ce-* "
                       "attribute headers are sent.",
        "properties": {
            "Nats-Msg-Id": {"type": "string", "description": "The CloudEvent id: JetStream "
                            "drops a retried publish within the duplicate window."},
            "Content-Type": {"type": "string", "const": CONTENT_TYPE},
            "ce-type": {"type": "string", "enum": types, "description": "The CloudEvent "
                        "type, for filtering without decoding the payload."},
            "Nats-Expected-Last-Subject-Sequence": {
                "type": "string", "pattern": "^[0-9]+$",
                "description": "Optimistic concurrency of the append (checked by the server)."},
            "Nats-Expected-Last-Subject-Sequence-Subject": {"type": "string"},
        },
        "required": ["Nats-Msg-Id", "ce-type"],
    }


WEBHOOK_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Standard Webhooks headers (https://www.standardwebhooks.com). Verify with "
                   "any Standard Webhooks library and the subscription's whsec_ secret.",
    "properties": {
        "Content-Type": {"type": "string", "const": CONTENT_TYPE},
        "webhook-id": {"type": "string", "description": "The CloudEvent id; the same on "
                       "every retry and redelivery."},
        "webhook-timestamp": {"type": "string", "pattern": "^[0-9]+$",
                              "description": "Unix seconds of this attempt (signed)."},
        "webhook-signature": {"type": "string", "pattern": "^v1,[A-Za-z0-9+/=]+$",
                              "description": "v1,<base64 HMAC-SHA256 of id.timestamp.body>"},
    },
    "required": ["Content-Type", "webhook-id", "webhook-timestamp"],
}


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as a JSON-ready dict."""
    _, schemas = msgspec.json.schema_components((*EVENT_TYPES, Envelope), ref_template=REF)
    base = schemas.pop("Envelope")
    names = [cls.__name__ for cls in EVENT_TYPES]
    ticket_names = [n for n in names if n not in INTAKE]
    tags = {cls.__name__: f"tidydesk.{_tag(cls)}" for cls in EVENT_TYPES}
    schemas["TicketEnvelope"] = _envelope(base, ticket_names, "TicketEnvelope", "The ticket id.")
    schemas["InboundEnvelope"] = _envelope(base, list(INTAKE), "InboundEnvelope",
                                           "The intake key (digest of the Message-ID or bytes).")
    schemas["TicketHeaders"] = _nats_headers([tags[n] for n in ticket_names])
    schemas["InboundHeaders"] = _nats_headers([tags[n] for n in INTAKE])
    schemas["WebhookHeaders"] = WEBHOOK_HEADERS
    try:
        release = version("tidydesk")
    except PackageNotFoundError:  # running from a checkout that was never installed
        release = "0.0.0"

    def message(title: str, headers: str, payload: str, binding: dict[str, Any],
                summary: str) -> dict[str, Any]:
        return {"name": title, "title": title, "summary": summary, "contentType": CONTENT_TYPE,
                "headers": {"$ref": REF.format(name=headers)},
                "payload": {"$ref": REF.format(name=payload)}, "bindings": binding}

    nats_msg: dict[str, Any] = {"nats": {}}  # NATS message bindings define no fields
    messages = {
        "inboundEvent": message("inboundEvent", "InboundHeaders", "InboundEnvelope", nats_msg,
                                "A mail accepted or rejected by intake."),
        "ticketEvent": message("ticketEvent", "TicketHeaders", "TicketEnvelope", nats_msg,
                               "One event of a ticket, in the ticket's order."),
        "webhookDelivery": message(
            "webhookDelivery", "WebhookHeaders", "TicketEnvelope",
            {"http": {"bindingVersion": HTTP_BINDING}},
            "A ticket event POSTed to a subscribed endpoint."),
    }
    namespace = {"description": "TIDYDESK_NAMESPACE", "default": "tidydesk"}

    def channel(address: str | None, msg: str, server: str, description: str,
                parameters: dict[str, Any], binding: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": address, "description": description,
            "messages": {msg: {"$ref": f"#/components/messages/{msg}"}},
            "servers": [{"$ref": f"#/servers/{server}"}], "bindings": binding}
        if parameters:
            out["parameters"] = parameters
        return out

    channels = {
        "inbound": channel(
            "{namespace}.inbound.{key}", "inboundEvent", "nats",
            "Intake events, one subject per mail (published with expected sequence 0, so "
            "the same mail is recorded once, ever). Stream {NS}_EVENTS.",
            {"namespace": namespace, "key": {"description": "digest of the Message-ID"}},
            {"nats": {}}),
        "tickets": channel(
            "{namespace}.tickets.{ticketId}", "ticketEvent", "nats",
            "Ticket events, one subject per ticket, appended with optimistic concurrency. "
            "Stream {NS}_EVENTS.",
            {"namespace": namespace, "ticketId": {"description": "the ticket id"}},
            {"nats": {}}),
        "webhook": channel(
            None, "webhookDelivery", "integrator",
            "The URL of a subscription (`tidydesk webhooks add URL`): ticket events that "
            "match its event-type and mailbox filters.", {}, {"http": {}}),
    }

    def send(name: str, description: str, binding: dict[str, Any]) -> dict[str, Any]:
        msg = next(iter(channels[name]["messages"]))
        return {"action": "send", "channel": {"$ref": f"#/channels/{name}"},
                "messages": [{"$ref": f"#/channels/{name}/messages/{msg}"}],
                "description": description, "bindings": binding}

    nats_op = {"nats": {"bindingVersion": NATS_BINDING}}
    return {
        "asyncapi": "3.0.0",
        "id": "urn:tidydesk:events",
        "info": {
            "title": "tidydesk events", "version": release,
            "description": "CloudEvents 1.0 JSON envelopes (structured mode) on NATS "
                           "JetStream, and the same envelopes POSTed to webhook endpoints "
                           "signed as Standard Webhooks. Delivery is at least once: dedupe "
                           "on the CloudEvent id.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "nats": {"host": "{host}", "protocol": "nats",
                     "description": "NATS with JetStream (TIDYDESK_NATS_URL); read the "
                                    "stream {NS}_EVENTS with a durable consumer.",
                     "variables": {"host": {"default": "127.0.0.1:4222"}},
                     "bindings": {"nats": {}}},
            "integrator": {"host": "{host}", "protocol": "https",
                           "description": "Your endpoint, as subscribed.",
                           "variables": {"host": {"default": "hooks.example.com"}}},
        },
        "channels": channels,
        "operations": {
            "publishInboundEvent": send("inbound", "Intake records a mail.", nats_op),
            "publishTicketEvent": send("tickets", "A service appends a ticket event.",
                                       nats_op),
            "postWebhook": send(
                "webhook",
                "POST per matching event, in per-ticket order. 2xx acknowledges; 408, 429, "
                "5xx and network errors are retried with backoff, then parked (`tidydesk "
                "parked`); other 4xx are parked at once. Redeliver with `tidydesk webhooks "
                "redeliver`.",
                {"http": {"method": "POST", "bindingVersion": HTTP_BINDING}}),
        },
        "components": {"schemas": schemas, "messages": messages},
    }
