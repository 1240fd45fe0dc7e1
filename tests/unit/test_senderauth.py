"""Authentication-Results parsing (pure): what counts as evidence about the From address."""

from __future__ import annotations

import pytest

from tidydesk.ingest.senderauth import sender_auth, trusted_ids

TRUSTED = trusted_ids("mx.acme.example, relay.acme.example")


@pytest.mark.parametrize(("header", "sender", "expected"), [
    ("mx.acme.example; dmarc=fail (p=reject) header.from=example.com", "a@example.com", "fail"),
    ("mx.acme.example; dmarc=pass header.from=example.com", "a@example.com", "pass"),
    ("mx.acme.example; dmarc=pass header.from=other.example", "a@example.com", None),
    ("mx.acme.example; dkim=pass header.d=example.com", "a@mail.example.com", "pass"),
    ("mx.acme.example; dkim=pass header.d=other.example", "a@example.com", None),
    ("mx.acme.example; dkim=pass header.d=example.com; dmarc=fail", "a@example.com", "fail"),
    ("mx.acme.example; spf=pass (mx.acme.example: domain of a@example.com designates "
     "192.0.2.1 as permitted sender) smtp.mailfrom=example.com", "a@example.com", None),
    ("evil.example; dmarc=pass header.from=example.com", "a@example.com", None),
    ("RELAY.acme.example 1; dmarc=fail", "a@example.com", "fail"),
    ("mx.acme.example; none", "a@example.com", None),
    ("garbage ;;; =", "a@example.com", None),
    ("", "a@example.com", None),
])
def test_the_topmost_header_of_a_trusted_relay_decides(header: str, sender: str,
                                                       expected: str | None) -> None:
    assert sender_auth([header], sender, TRUSTED) == expected


def test_no_header_or_no_trust_is_no_evidence() -> None:
    assert sender_auth([], "a@example.com", TRUSTED) is None
    assert sender_auth(["mx.acme.example; dmarc=fail"], "a@example.com", trusted_ids("")) is None
    # only the topmost header counts: a stranger writes the ones below it
    assert sender_auth(["mx.acme.example; dmarc=none", "mx.acme.example; dmarc=pass"],
                       "a@example.com", TRUSTED) is None
