"""Inbound provider webhooks on the real stack: each provider's own auth, its recipient as
the tenant mailbox, and a refusal (4xx, never 5xx) for forged, stale, replayed or malformed
deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.store import KvIndex
from tidydesk.queue.api import build
from tidydesk.queue.inbound import Providers
from tidydesk.tickets.tokens import shared_secret

POSTMARK_AUTH = "postmark:pm-secret"
SENDGRID_AUTH = "sendgrid:sg-secret"
MAILGUN_KEY = b"key-mailgun-test"
UNDISCLOSED = (b"From: Alice <alice@example.com>\r\nTo: undisclosed-recipients:;\r\n"
               b"Subject: Nobody\r\nMessage-ID: <nobody@example.com>\r\n\r\nHello\r\n")


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


@pytest.fixture
async def providers() -> Providers:
    return Providers(postmark_auth=frozenset({POSTMARK_AUTH}),
                     sendgrid_auth=frozenset({SENDGRID_AUTH}), mailgun_signing_key=MAILGUN_KEY)


@pytest.fixture
async def served(stack: Stack, providers: Providers) -> AsyncIterator[str]:
    """The API with provider credentials set, on a free loopback port."""
    index = KvIndex(stack.js, stack.ns)
    app = build(stack.pool, stack.store, stack.intake.raw, stack.intake, 1 << 20,
                await shared_secret(index), index, providers=providers)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _post(url: str, *, status: int, **kwargs: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, **kwargs) as r:
        body: dict[str, Any] = await r.json(content_type=None)
        assert r.status == status, body
        return body


async def _ticket_of(stack: Stack, subject: str) -> dict[str, object]:
    async def find() -> dict[str, object]:
        return next((t for t in await stack.tickets() if t["subject"] == subject), {})
    return await eventually(find)


# --- the tenant mailbox (issue 9): envelope recipient, never a guess ---

async def test_mime_without_any_mailbox_is_a_400_with_the_reason(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    problem = await _post(f"{api}/inbound/mime", status=400, data=UNDISCLOSED,
                          headers=api_headers)
    assert "no tenant mailbox" in problem["detail"]
    await _post(f"{api}/inbound/mime?mailbox=help@beta.example", status=202,
                data=UNDISCLOSED, headers=api_headers)
    assert (await _ticket_of(stack, "Nobody"))["mailbox"] == "help@beta.example"


# --- Postmark: Basic auth from the webhook URL, OriginalRecipient is the tenant ---

def _postmark(message_id: str, subject: str, recipient: str | None) -> dict[str, Any]:
    return {"FromFull": {"Email": "pm@example.com", "Name": "P M"},
            "To": "First <first@other.example>", "OriginalRecipient": recipient,
            "Subject": subject, "MessageID": message_id, "TextBody": "Hello from Postmark"}


async def test_postmark_basic_auth_and_original_recipient_decide_the_mailbox(
        stack: Stack, served: str) -> None:
    url = f"{served}/inbound/postmark"
    payload = _postmark("pm-a", "Via Postmark", "support@acme.example")
    result = await _post(url, status=202, json=payload, headers=_basic(POSTMARK_AUTH))
    assert result["message_id"] == "pm-a@inbound.postmarkapp.com"
    ticket = await _ticket_of(stack, "Via Postmark")
    assert ticket["mailbox"] == "support@acme.example"  # not the first To
    assert (await _post(url, status=200, json=payload, headers=_basic(POSTMARK_AUTH))
            )["duplicate"] is True


async def test_postmark_refuses_missing_or_wrong_credentials(served: str) -> None:
    url = f"{served}/inbound/postmark"
    payload = _postmark("pm-b", "Refused", "support@acme.example")
    async with aiohttp.ClientSession() as http, http.post(url, json=payload) as r:
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    problem = await _post(url, status=401, json=payload, headers=_basic("postmark:wrong"))
    assert "wrong user or password" in problem["detail"]
    await _post(url, status=401, json=payload, headers={"Authorization": "Basic %%%"})
    await _post(url, status=401, json=payload, headers={"Authorization": "Bearer tdk_nope"})
    await _post(url, status=400, data=b"{oops", headers=_basic(POSTMARK_AUTH))


async def test_postmark_without_any_recipient_is_a_400(served: str) -> None:
    payload = {**_postmark("pm-c", "Nowhere", None), "To": "undisclosed-recipients:;"}
    problem = await _post(f"{served}/inbound/postmark", status=400, json=payload,
                          headers=_basic(POSTMARK_AUTH))
    assert "no tenant mailbox" in problem["detail"]


async def test_postmark_with_a_bearer_intake_token_still_works(
        stack: Stack, api: str, api_headers: dict[str, str]) -> None:
    payload = _postmark("pm-d", "Bearer Postmark", "desk@beta.example")
    await _post(f"{api}/inbound/postmark", status=202, json=payload, headers=api_headers)
    assert (await _ticket_of(stack, "Bearer Postmark"))["mailbox"] == "desk@beta.example"


# --- Mailgun: HMAC-SHA256(signing key, timestamp + token), fresh, used once ---

def _mailgun(raw: bytes, recipient: str, *, token: str, timestamp: int | None = None,
             key: bytes = MAILGUN_KEY) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(key, (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"recipient": recipient, "sender": "alice@example.com", "timestamp": stamp,
            "token": token, "signature": signature, "body-mime": raw.decode()}


def _multipart(fields: dict[str, str]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("attachment-1", b"ignored", filename="a.bin")  # forces multipart
    return form


async def test_mailgun_signed_delivery_becomes_a_ticket_of_its_recipient(
        stack: Stack, served: str) -> None:
    url = f"{served}/inbound/mailgun/mime"
    raw = mail("mg1@example.com", "Via Mailgun", subject="Via Mailgun")
    fields = _mailgun(raw, "help@beta.example", token="t" * 50)
    await _post(url, status=202, data=_multipart(fields))
    assert (await _ticket_of(stack, "Via Mailgun"))["mailbox"] == "help@beta.example"
    # Mailgun retrying the same delivery is a duplicate, not a replay
    assert (await _post(url, status=200, data=fields))["duplicate"] is True  # urlencoded
    raw2 = mail("mg2@example.com", "Form encoded", subject="Form encoded")
    await _post(url, status=202, data=_mailgun(raw2, "help@beta.example", token="u" * 50))
    await _ticket_of(stack, "Form encoded")


async def test_mailgun_refuses_forged_stale_and_replayed_deliveries(served: str) -> None:
    url = f"{served}/inbound/mailgun/mime"
    raw = mail("mg3@example.com", "Forged", subject="Forged")
    forged = _mailgun(raw, "help@beta.example", token="v" * 50, key=b"not-the-key")
    assert "signature" in (await _post(url, status=403, data=forged))["detail"]
    stale = _mailgun(raw, "help@beta.example", token="w" * 50,
                     timestamp=int(time.time()) - 301)
    assert "stale" in (await _post(url, status=403, data=stale))["detail"]
    await _post(url, status=202, data=_mailgun(raw, "help@beta.example", token="x" * 50))
    other = mail("mg4@example.com", "Smuggled", subject="Smuggled")
    replay = {**_mailgun(raw, "help@beta.example", token="x" * 50), "body-mime": other.decode()}
    assert "replayed" in (await _post(url, status=403, data=replay))["detail"]
    moved = _mailgun(raw, "victim@other.example", token="x" * 50)  # same token and mail
    assert "replayed" in (await _post(url, status=403, data=moved))["detail"]
    unsigned_url = await _post(f"{url}?mailbox=victim@other.example", status=400,
                               data=_mailgun(raw, "help@beta.example", token="q" * 50))
    assert "unknown query parameter" in unsigned_url["detail"]
    unsigned = {k: v for k, v in replay.items() if k != "signature"}
    await _post(url, status=401, data=unsigned)
    no_mime = {k: v for k, v in _mailgun(raw, "h@beta.example", token="y" * 50).items()
               if k != "body-mime"}
    assert "/mime" in (await _post(url, status=400, data=no_mime))["detail"]
    await _post(url, status=400, data=b"%%%zz=&&", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    await _post(url, status=400, data=b"--x\r\nnot a form", headers={
        "Content-Type": "multipart/form-data; boundary=x"})
    await _post(url, status=400, data=b"{}", headers={"Content-Type": "application/json"})


async def test_mailgun_refuses_everything_without_a_signing_key(
        api: str, api_headers: dict[str, str]) -> None:
    raw = mail("mg5@example.com", "No key", subject="No key")
    problem = await _post(f"{api}/inbound/mailgun/mime", status=403, headers=api_headers,
                          data=_mailgun(raw, "help@beta.example", token="z" * 50))
    assert "TIDYDESK_MAILGUN_SIGNING_KEY" in problem["detail"]


# --- SendGrid Inbound Parse: Basic auth from the Parse URL, envelope.to is the tenant ---

def _sendgrid(raw: bytes, to: list[str]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in {"email": raw.decode(), "envelope": json.dumps(
            {"to": to, "from": "alice@example.com"}), "to": "First <first@other.example>",
            "charsets": '{"to":"UTF-8"}', "SPF": "pass"}.items():
        form.add_field(name, value)
    form.add_field("attachment1", b"ignored", filename="a.txt")
    return form


async def test_sendgrid_raw_parse_becomes_a_ticket_of_the_envelope_recipient(
        stack: Stack, served: str) -> None:
    raw = mail("sg1@example.com", "Via SendGrid", subject="Via SendGrid")
    await _post(f"{served}/inbound/sendgrid", status=202, headers=_basic(SENDGRID_AUTH),
                data=_sendgrid(raw, ["support@gamma.example"]))
    assert (await _ticket_of(stack, "Via SendGrid"))["mailbox"] == "support@gamma.example"


async def test_sendgrid_refuses_wrong_auth_and_malformed_posts(served: str) -> None:
    url = f"{served}/inbound/sendgrid"
    raw = mail("sg2@example.com", "Refused", subject="Refused")
    await _post(url, status=401, data=_sendgrid(raw, ["support@gamma.example"]))
    await _post(url, status=401, headers=_basic(POSTMARK_AUTH),  # another provider's
                data=_sendgrid(raw, ["support@gamma.example"]))
    form = aiohttp.FormData()
    form.add_field("text", "parsed mode, no raw mail")
    form.add_field("attachment1", b"x", filename="a.txt")
    problem = await _post(url, status=400, headers=_basic(SENDGRID_AUTH), data=form)
    assert "raw, full MIME" in problem["detail"]
    form = _sendgrid(raw, [])
    form.add_field("envelope", "{not json")  # a second envelope field: the first wins
    await _post(url, status=202, headers=_basic(SENDGRID_AUTH), data=form)
    bad_envelope = aiohttp.FormData()
    bad_envelope.add_field("email", raw.decode())
    bad_envelope.add_field("envelope", "{not json")
    bad_envelope.add_field("attachment1", b"x", filename="a.txt")
    problem = await _post(url, status=400, headers=_basic(SENDGRID_AUTH), data=bad_envelope)
    assert "envelope" in problem["detail"]


# --- Amazon SES via SNS: RSA signature with the certificate at SigningCertURL ---

class Signer:
    """A self-made SNS: an RSA key and certificate, and messages signed the way SNS signs."""

    CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(1)
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=1)).sign(self.key, hashes.SHA256()))
        self.pem = cert.public_bytes(serialization.Encoding.PEM)
        self.fetched: list[str] = []

    async def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.pem

    def sign(self, message: dict[str, str], version: str = "2") -> dict[str, str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        names = (("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
                 if message["Type"] == "Notification" else
                 ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                  "Type"))
        canonical = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.key.sign(canonical.encode(), padding.PKCS1v15(), algorithm)
        return {**message, "SignatureVersion": version, "SigningCertURL": self.CERT_URL,
                "Signature": base64.b64encode(signature).decode()}


TOPIC = "arn:aws:sns:eu-west-1:123456789012:tidydesk-inbound"


def _ses(raw: bytes, recipients: list[str], *, base64_content: bool = False,
         message_id: str = "sns-1") -> dict[str, str]:
    content = base64.b64encode(raw).decode() if base64_content else raw.decode()
    note = {"notificationType": "Received", "content": content,
            "mail": {"source": "alice@example.com", "destination": recipients},
            "receipt": {"recipients": recipients, "action": {
                "type": "SNS", "topicArn": TOPIC,
                "encoding": "BASE64" if base64_content else "UTF8"}}}
    return {"Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
            "Subject": "Amazon SES Email Receipt Notification", "Message": json.dumps(note),
            "Timestamp": "2026-12-03T12:00:00.000Z"}


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
async def ses(stack: Stack, signer: Signer) -> AsyncIterator[str]:
    index = KvIndex(stack.js, stack.ns)
    app = build(stack.pool, stack.store, stack.intake.raw, stack.intake, 1 << 20,
                await shared_secret(index), index, providers=Providers(
                    ses_topic_arns=frozenset({TOPIC}), fetch_cert=signer.fetch))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/inbound/ses"
    await runner.cleanup()


async def _sns(url: str, message: dict[str, str], status: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(
            url, data=json.dumps(message), headers={
                "Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": message.get("Type", "")}) as r:
        text = await r.text()
        assert r.status == status, text
        return json.loads(text) if text else {}


async def test_ses_notifications_signed_v1_and_v2_become_tickets(
        stack: Stack, ses: str, signer: Signer) -> None:
    raw = mail("ses1@example.com", "Via SES", subject="Via SES")
    await _sns(ses, signer.sign(_ses(raw, ["desk@delta.example"])), 202)
    assert (await _ticket_of(stack, "Via SES"))["mailbox"] == "desk@delta.example"
    raw = mail("ses2@example.com", "Via SES base64", subject="Via SES base64")
    message = _ses(raw, ["desk@delta.example"], base64_content=True, message_id="sns-2")
    await _sns(ses, signer.sign(message, version="1"), 202)
    await _ticket_of(stack, "Via SES base64")
    assert signer.fetched == [Signer.CERT_URL]  # fetched once, then cached


async def test_ses_refuses_wrong_signatures_foreign_topics_and_cert_urls(
        ses: str, signer: Signer) -> None:
    raw = mail("ses3@example.com", "Forged SES", subject="Forged SES")
    good = signer.sign(_ses(raw, ["desk@delta.example"]))
    tampered = {**good, "Message": good["Message"].replace("delta", "evil")}
    assert "signature" in (await _sns(ses, tampered, 403))["detail"]
    other = Signer()
    assert "signature" in (await _sns(ses, {**good, "Signature": other.sign(
        _ses(raw, ["desk@delta.example"]))["Signature"]}, 403))["detail"]
    for url in ("https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
                "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
                "https://evil.example/sns.eu-west-1.amazonaws.com/x.pem",
                "https://user@sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
                "https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-test.pem"):
        assert "SigningCertURL" in (await _sns(ses, {**good, "SigningCertURL": url}, 403)
                                    )["detail"]
    assert signer.fetched == [Signer.CERT_URL]  # no foreign URL was ever fetched
    foreign = {**good, "TopicArn": "arn:aws:sns:eu-west-1:999999999999:someone-else"}
    assert "TIDYDESK_SES_TOPIC_ARNS" in (await _sns(ses, foreign, 403))["detail"]
    assert "SignatureVersion" in (await _sns(ses, {**good, "SignatureVersion": "3"}, 403)
                                  )["detail"]
    assert "unknown query parameter" in (await _sns(f"{ses}?mailbox=victim@other.example",
                                                   good, 400))["detail"]


async def test_ses_malformed_messages_are_400s(ses: str, signer: Signer) -> None:
    async with aiohttp.ClientSession() as http, http.post(ses, data=b"{oops") as r:
        assert r.status == 400 and "SNS" in (await r.json(content_type=None))["detail"]
    await _sns(ses, {"Type": "Notification"}, 400)
    no_content = json.loads(_ses(b"x", ["desk@delta.example"])["Message"])
    del no_content["content"]
    message = {**_ses(b"x", ["desk@delta.example"]), "Message": json.dumps(no_content)}
    assert "no content" in (await _sns(ses, signer.sign(message), 400))["detail"]
    message = {**_ses(b"x", ["desk@delta.example"]), "Message": "not json"}
    assert "SES notification" in (await _sns(ses, signer.sign(message), 400))["detail"]


async def test_ses_subscription_confirmation_is_logged_not_fetched(
        ses: str, signer: Signer, capsys: pytest.CaptureFixture[str]) -> None:
    confirm = {"Type": "SubscriptionConfirmation", "MessageId": "c-1", "TopicArn": TOPIC,
               "Token": "tok", "Message": "You have chosen to subscribe…",
               "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
               "Timestamp": "2026-12-03T12:00:00.000Z"}
    await _sns(ses, signer.sign(confirm), 204)
    captured = capsys.readouterr()
    logged = captured.out + captured.err  # structlog writes to the stderr of the moment
    assert "sns_confirmation_needed" in logged and "ConfirmSubscription" in logged
    assert signer.fetched == [Signer.CERT_URL]  # the certificate only, not SubscribeURL


async def test_a_tenant_token_takes_provider_mail_of_its_tenant_only(
        stack: Stack, served: str) -> None:
    from tidydesk.queue.auth import TokenStore

    token, _ = await TokenStore(stack.js, stack.ns).create(("intake",), tenant="acme.example")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{served}/inbound/postmark"
    problem = await _post(url, status=403, headers=headers,
                          json=_postmark("pm-t1", "Other tenant", "desk@beta.example"))
    assert "@acme.example only" in problem["detail"]
    await _post(url, status=202, headers=headers,
                json=_postmark("pm-t2", "Own tenant", "support@acme.example"))
    raw = mail("sg-t3@example.com", "SendGrid other tenant", subject="SendGrid other tenant")
    await _post(f"{served}/inbound/sendgrid", status=403, headers=headers,
                data=_sendgrid(raw, ["support@acme.example", "desk@beta.example"]))
