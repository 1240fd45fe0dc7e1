"""`tidydesk schema`: an AsyncAPI 3 document the official parser accepts, true to the wire."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tidydesk.common.asyncapi import document
from tidydesk.common.events import EVENT_TYPES, Envelope, TicketSolved, encode, envelope

ROOT = Path(__file__).resolve().parents[2]
# Reads the document on stdin, prints the parser's diagnostics as JSON.
CHECK = """
const { Parser } = require('@asyncapi/parser');
let text = '';
process.stdin.on('data', (chunk) => { text += chunk; });
process.stdin.on('end', async () => {
  const { diagnostics } = await new Parser().parse(text);
  console.log(JSON.stringify(diagnostics.map((d) => ({
    severity: d.severity, code: d.code, message: d.message, path: d.path }))));
});
"""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Node 20+ runs the AsyncAPI parser)")
    found = subprocess.run([node, "-e", "require.resolve('@asyncapi/parser')"], cwd=ROOT,
                           capture_output=True, timeout=60, check=False)
    if found.returncode != 0:
        pytest.skip("@asyncapi/parser is not installed: run `npm ci --ignore-scripts` in the "
                    "repository root")
    return node


def test_the_official_parser_finds_no_errors() -> None:
    node = _node()
    done = subprocess.run([node, "-e", CHECK], cwd=ROOT, input=json.dumps(document()),
                          capture_output=True, text=True, timeout=120, check=True)
    diagnostics: list[dict[str, Any]] = json.loads(done.stdout)
    errors = [d for d in diagnostics if d["severity"] == 0]  # 0 = error (spectral)
    assert errors == [], json.dumps(errors, indent=2)


def test_every_event_type_is_on_one_channel_and_the_envelope_is_complete() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    types = [f"tidydesk.{t.__struct_config__.tag}" for t in EVENT_TYPES]
    inbound = schemas["InboundEnvelope"]["properties"]["type"]["enum"]
    tickets = schemas["TicketEnvelope"]["properties"]["type"]["enum"]
    assert sorted(inbound + tickets) == sorted(types) and not set(inbound) & set(tickets)
    for name in ("InboundEnvelope", "TicketEnvelope"):
        props = schemas[name]["properties"]
        assert set(props) == set(Envelope.__struct_fields__)
        for ref in props["data"]["oneOf"]:
            assert ref["$ref"].rpartition("/")[2] in schemas
    on_the_wire = json.loads(encode(envelope(TicketSolved(ticket_id="t1"), "t1", "k")))
    assert set(on_the_wire) <= set(schemas["TicketEnvelope"]["properties"])
    assert on_the_wire["type"] in tickets


def test_webhook_channel_is_a_signed_http_post() -> None:
    doc = document()
    op = doc["operations"]["postWebhook"]
    assert op["action"] == "send" and op["bindings"]["http"]["method"] == "POST"
    headers = doc["components"]["schemas"]["WebhookHeaders"]["properties"]
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(headers)
    assert not [h for h in headers if h.lower().startswith("ce-")]
    message = doc["components"]["messages"]["webhookDelivery"]
    assert message["contentType"] == "application/cloudevents+json"
    assert doc["servers"]["nats"]["protocol"] == "nats"
