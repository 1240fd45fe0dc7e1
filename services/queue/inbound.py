"""Inbound-mail provider webhooks: each authenticated the way its provider documents.

Providers cannot send our bearer tokens, so on its route each provider's own scheme replaces
the token: Postmark and SendGrid put HTTP Basic credentials in the webhook URL, Mailgun signs
`timestamp + token` with HMAC-SHA256, Amazon SNS signs its messages with RSA and a certificate
on `sns.<region>.amazonaws.com`. Bad or missing credentials are 401/403, a malformed payload
is 400, and the tenant mailbox is the provider's envelope recipient (never the first To).

This module holds the checks and payload decoding; the routes are in tidydesk.queue.api.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import getaddresses
from urllib.parse import parse_qsl

import aiohttp
import msgspec
from aiohttp import web

from tidydesk.common.settings import Settings
from tidydesk.queue.problems import ProblemError

CertFetcher = Callable[[str], Awaitable[bytes]]
MAILGUN_MAX_AGE = 300  # s: an older Mailgun timestamp is refused as stale
SNS_CERT_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")


async def fetch_certificate(url: str) -> bytes:
    """GET an SNS signing certificate (only ever called with a URL `sns_cert_url` allowed)."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(
            url, allow_redirects=False) as r:
        if r.status != 200:
            raise ProblemError(403, f"SigningCertURL answered {r.status}")
        return await r.read()


@dataclass
class Providers:
    """Provider credentials (from TIDYDESK_* settings); an empty one refuses that provider."""

    postmark_auth: frozenset[str] = frozenset()  # "user:password" values
    sendgrid_auth: frozenset[str] = frozenset()
    mailgun_signing_key: bytes = b""
    ses_topic_arns: frozenset[str] = frozenset()
    fetch_cert: CertFetcher = fetch_certificate
    certificates: dict[str, bytes] = field(default_factory=dict)  # SigningCertURL -> PEM

    @classmethod
    def from_settings(cls, settings: Settings) -> Providers:
        return cls(postmark_auth=_pairs(settings.postmark_auth),
                   sendgrid_auth=_pairs(settings.sendgrid_auth),
                   mailgun_signing_key=settings.mailgun_signing_key.encode(),
                   ses_topic_arns=frozenset(_items(settings.ses_topic_arns)))


PROVIDERS = web.AppKey("providers", Providers)


def _items(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _pairs(value: str) -> frozenset[str]:
    pairs = _items(value)
    for pair in pairs:
        if ":" not in pair:
            raise ValueError("provider auth must be user:password pairs, comma-separated")
    return frozenset(pairs)


# --- HTTP Basic credentials (Postmark, SendGrid) ---

def basic_credentials(request: web.Request) -> str | None:
    """`user:password` of an `Authorization: Basic` header, None when there is none."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _basic_refused("malformed Basic credentials") from None


def check_basic(credentials: str, allowed: frozenset[str], setting: str) -> None:
    """403 unless `credentials` is one of `allowed` (compared in constant time)."""
    if not allowed:
        raise ProblemError(403, f"Basic auth for this provider is off: set {setting}")
    given = credentials.encode()
    if not any(hmac.compare_digest(given, a.encode()) for a in allowed):
        raise _basic_refused("wrong user or password")


def _basic_refused(detail: str) -> ProblemError:
    return ProblemError(401, detail, {"WWW-Authenticate": 'Basic realm="tidydesk inbound"'})


# --- the tenant mailbox ---

def missing_recipient(raw: bytes) -> bool:
    """Whether a mail has a header block but its To header names no address (e.g.
    `undisclosed-recipients:;`), so that without an envelope it has no tenant mailbox."""
    headers = BytesParser(policy=HTTP).parsebytes(raw, headersonly=True)
    if not headers.keys():
        return False  # not a mail at all: intake quarantines it with its reason
    values = [str(v) for v in headers.get_all("To") or []]
    return not any("@" in a for _, a in getaddresses(values))


# --- form bodies (SendGrid, Mailgun) ---

def form_fields(body: bytes, content_type: str) -> dict[str, bytes]:
    """The fields of a multipart/form-data or urlencoded body, as bytes; 400 when it is
    neither. File parts are skipped (attachments are in the raw MIME field already)."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True,
                              strict_parsing=bool(body), encoding="latin-1")
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProblemError(400, f"malformed form body: {exc}") from None
        return {k: v.encode("latin-1") for k, v in reversed(pairs)}  # first one wins
    if media != "multipart/form-data" or "boundary=" not in content_type:
        raise ProblemError(400, "the body must be multipart/form-data (or urlencoded)")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    form = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, bytes] = {}
    for part in form.iter_parts() if form.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            fields.setdefault(name, payload)
    if not fields:
        raise ProblemError(400, "malformed multipart/form-data body: no form fields")
    return fields


def text(fields: dict[str, bytes], name: str) -> str:
    return fields.get(name, b"").decode("utf-8", "replace")


def raw_field(fields: dict[str, bytes], name: str, hint: str) -> bytes:
    value = fields.get(name, b"")
    if not value.strip():
        raise ProblemError(400, f"no {name!r} field: {hint}")
    return value


class SendgridForm(msgspec.Struct, frozen=True):
    """The Inbound Parse form fields tidydesk reads (raw mode); the others are ignored."""

    email: str  # the raw, full MIME message
    envelope: str = ""  # JSON: {"to": [...], "from": "..."}


class SendgridEnvelope(msgspec.Struct, frozen=True):
    to: list[str] = []


class MailgunForm(msgspec.Struct, frozen=True):
    """The fields of a Mailgun route's forward to a URL ending in /mime that tidydesk reads."""

    body_mime: str = msgspec.field(name="body-mime")
    recipient: str
    timestamp: str
    token: str
    signature: str


def sendgrid_mail(fields: dict[str, bytes]) -> tuple[bytes, list[str]]:
    """SendGrid Inbound Parse (raw mode): the raw mail and the envelope recipients."""
    raw = raw_field(fields, "email", "turn on 'POST the raw, full MIME message' in "
                    "SendGrid's Inbound Parse settings")
    try:
        envelope = msgspec.json.decode(fields.get("envelope") or b"{}", type=SendgridEnvelope)
    except msgspec.DecodeError as exc:
        raise ProblemError(400, f"malformed SendGrid envelope JSON: {exc}") from None
    return raw, [a for a in envelope.to if "@" in a]


# --- Mailgun ---

def check_mailgun(fields: dict[str, bytes], key: bytes, now: float | None = None) -> None:
    """403 unless signature == HMAC-SHA256(key, timestamp + token), timestamp within 5 min."""
    if not key:
        raise ProblemError(403, "Mailgun routes are off: set TIDYDESK_MAILGUN_SIGNING_KEY")
    timestamp, token = text(fields, "timestamp"), text(fields, "token")
    signature = text(fields, "signature")
    if not (timestamp.isdigit() and token and signature):
        raise ProblemError(401, "Mailgun timestamp, token and signature fields are required")
    expected = hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise ProblemError(403, "wrong Mailgun signature")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > MAILGUN_MAX_AGE:
        raise ProblemError(403, f"stale Mailgun timestamp ({age:.0f} s old; at most "
                           f"{MAILGUN_MAX_AGE} s)")


def mailgun_mail(fields: dict[str, bytes]) -> tuple[bytes, list[str]]:
    raw = raw_field(fields, "body-mime", "forward the Mailgun route to a URL ending in "
                    "/mime (/inbound/mailgun/mime), so the raw mail is posted")
    return raw, [a.strip() for a in text(fields, "recipient").split(",") if "@" in a]


def replay_claim(fields: dict[str, bytes], raw: bytes, recipients: list[str]
                 ) -> tuple[str, str]:
    """KV key and value of a delivery's token. Mailgun signs only timestamp + token, so the
    value binds the token to this mail and its recipients: a retry of the same delivery
    passes, the token reused with another mail or another recipient is refused."""
    bound = hashlib.sha256(raw + b"\0" + ",".join(recipients).lower().encode())
    return f"mailgun-token|{text(fields, 'token')}", bound.hexdigest()


# --- Amazon SES via SNS ---

class SnsMessage(msgspec.Struct, frozen=True):
    """An SNS HTTP(S) message (Notification, SubscriptionConfirmation, …)."""

    Type: str
    MessageId: str
    TopicArn: str
    Message: str
    Timestamp: str
    SignatureVersion: str
    Signature: str
    SigningCertURL: str
    Subject: str | None = None
    Token: str | None = None
    SubscribeURL: str | None = None


class _SesAction(msgspec.Struct, frozen=True):
    type: str = ""
    encoding: str = "UTF8"


class _SesReceipt(msgspec.Struct, frozen=True):
    recipients: list[str] = []
    action: _SesAction = _SesAction()


class SesNotification(msgspec.Struct, frozen=True):
    notificationType: str = ""
    receipt: _SesReceipt = _SesReceipt()
    content: str | None = None


_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                 "Token", "TopicArn", "Type"),
}
_SNS_FIELDS["UnsubscribeConfirmation"] = _SNS_FIELDS["SubscriptionConfirmation"]


def sns_message(body: bytes) -> SnsMessage:
    try:
        return msgspec.json.decode(body, type=SnsMessage)
    except msgspec.DecodeError as exc:
        raise ProblemError(400, f"malformed SNS message JSON: {exc}") from None


def sns_canonical(msg: SnsMessage) -> bytes:
    """The string SNS signs: `name\\nvalue\\n` for its fields in order, absent ones left out."""
    names = _SNS_FIELDS.get(msg.Type)
    if names is None:
        raise ProblemError(400, f"unknown SNS message Type {msg.Type[:40]!r}")
    values = {n: getattr(msg, n) for n in names}
    return "".join(f"{n}\n{v}\n" for n, v in values.items() if v is not None).encode()


def sns_cert_url(url: str) -> str:
    """`url` if it is an https URL on sns.<region>.amazonaws.com; 403 otherwise."""
    from yarl import URL

    parsed = URL(url)
    if (parsed.scheme != "https" or not parsed.host or parsed.user or parsed.password
            or parsed.explicit_port is not None or not SNS_CERT_HOST.fullmatch(parsed.host)
            or not parsed.path.endswith(".pem")):
        raise ProblemError(403, f"SigningCertURL {url[:120]!r} is not an https .pem URL on "
                           "sns.<region>.amazonaws.com")
    return url


async def check_sns(msg: SnsMessage, providers: Providers) -> None:
    """403 unless the topic is allowed and the RSA signature verifies against the SNS cert."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if msg.TopicArn not in providers.ses_topic_arns:
        raise ProblemError(403, f"SNS topic {msg.TopicArn[:200]!r} is not in "
                           "TIDYDESK_SES_TOPIC_ARNS")
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(msg.SignatureVersion)
    if algorithm is None:
        raise ProblemError(403, f"unknown SNS SignatureVersion {msg.SignatureVersion[:8]!r}")
    url = sns_cert_url(msg.SigningCertURL)
    pem = providers.certificates.get(url)
    if pem is None:
        pem = await providers.fetch_cert(url)
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
        signature = base64.b64decode(msg.Signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ProblemError(403, f"unusable SNS certificate or signature: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ProblemError(403, "the SNS certificate has no RSA key")
    providers.certificates[url] = pem
    try:
        key.verify(signature, sns_canonical(msg), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise ProblemError(403, "wrong SNS signature") from None


def ses_mail(msg: SnsMessage) -> tuple[bytes, list[str]]:
    """The raw mail and recipients of an SES receipt notification; 400 without content."""
    try:
        note = msgspec.json.decode(msg.Message, type=SesNotification)
    except msgspec.DecodeError as exc:
        raise ProblemError(400, f"malformed SES notification in Message: {exc}") from None
    if note.notificationType != "Received":
        raise ProblemError(400, f"SES notificationType {note.notificationType[:40]!r} "
                           "is not a received mail")
    if not note.content:
        raise ProblemError(400, "the SES notification has no content: use an SNS receipt "
                           "action (it includes the mail), not S3")
    if note.receipt.action.encoding.upper() == "BASE64":
        try:
            raw = base64.b64decode(note.content, validate=True)
        except binascii.Error as exc:
            raise ProblemError(400, f"SES content is not base64: {exc}") from None
    else:
        raw = note.content.encode("utf-8", "surrogateescape")
    return raw, [a for a in note.receipt.recipients if "@" in a]

