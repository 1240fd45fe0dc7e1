"""Settings, read once from TIDYDESK_* environment variables into a typed object."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec

# name -> (default, help). The single source for `tidydesk --help` and for Settings.
SETTINGS: dict[str, tuple[str, str]] = {
    "TIDYDESK_HOME": (".tidydesk", "where embedded NATS and PostgreSQL keep their data"),
    "TIDYDESK_NATS_URL": ("", "NATS server with JetStream; empty = start an embedded one"),
    "TIDYDESK_DATABASE_URL": ("", "PostgreSQL DSN; empty = start an embedded one"),
    "TIDYDESK_NAMESPACE": ("tidydesk", "prefix of streams, subjects, buckets and the SQL schema"),
    "TIDYDESK_SMTP_HOST": ("127.0.0.1", "SMTP listener address"),
    "TIDYDESK_SMTP_PORT": ("2525", "SMTP listener port"),
    "TIDYDESK_HTTP_HOST": ("127.0.0.1", "HTTP API address"),
    "TIDYDESK_HTTP_PORT": ("8080", "HTTP API port"),
    "TIDYDESK_MAX_MESSAGE_BYTES": ("26214400", "largest accepted mail (SMTP 552 / HTTP 413 above)"),
    "TIDYDESK_POLICY": ("content-aware", "fallback policy for follow-ups to solved/closed "
                        "tickets (see `tidydesk policy`)"),
    "TIDYDESK_WEBHOOK_URLS": ("", "comma-separated integrator endpoints for signed event webhooks"),
    "TIDYDESK_WEBHOOK_SECRET": ("", "Standard Webhooks key for TIDYDESK_WEBHOOK_URLS (whsec_…)"),
    "TIDYDESK_LOG_FORMAT": ("auto", "auto (console on a TTY, else JSON), json or console"),
    "TIDYDESK_LOG_LEVEL": ("info", "debug, info, warning or error"),
    "TIDYDESK_SUBJECT_NUMBER": (r"\[#(\d{1,12})\]", "regex finding a ticket number in a subject"),
    "TIDYDESK_THREAD_THRESHOLD": ("", "content-join confidence: 0.55 or 0.55,box@x=0.7"),
    "TIDYDESK_THREAD_SAME_DOMAIN": ("false", "also join open tickets of the sender's domain"),
    "TIDYDESK_SMTP_DOMAINS": ("", "accepted recipient domains/mailboxes, comma-separated; "
                              "empty = all (others get 550 at RCPT)"),
    "TIDYDESK_SMTP_TLS_CERT": ("", "PEM certificate chain for SMTP STARTTLS; empty = no TLS"),
    "TIDYDESK_SMTP_TLS_KEY": ("", "PEM private key for SMTP STARTTLS"),
    "TIDYDESK_SMTP_AUTH": ("", "user:password pairs, comma-separated; when set, AUTH is required"),
    "TIDYDESK_SMTP_AUTH_INSECURE": ("false", "true = offer AUTH without TLS (never on a network)"),
    "TIDYDESK_IMAP_URLS": ("", "mailboxes to poll, comma-separated imaps://user:pass@host:port/INBOX"),
    "TIDYDESK_IMAP_POLL_SECONDS": ("30", "IMAP poll interval when the server has no IDLE"),
    "TIDYDESK_SMTP_RELAY": ("", "host:port of the SMTP relay for agent replies; empty = not sent"),
    "TIDYDESK_REPLICAS": ("1", "JetStream replicas of streams and buckets created (3 on a "
                          "3-node cluster); existing ones are not changed"),
    "TIDYDESK_API_TOKEN": ("", "bearer token `tidydesk queue`/`merge` send to the HTTP API "
                           "(mint one with `tidydesk tokens create --scope read --scope write`)"),
    "TIDYDESK_ALLOWED_HOSTS": ("", "Host header values the HTTP API answers, comma-separated "
                               "(host or host:port, * = any); empty = the HTTP address, "
                               "localhost and 127.0.0.1 on TIDYDESK_HTTP_PORT"),
    "TIDYDESK_TRUSTED_AUTHSERV": ("", "authserv-ids whose Authentication-Results header "
                                  "(the topmost one) counts as evidence about From, "
                                  "comma-separated; empty = trust none"),
    "TIDYDESK_HEALTH_HOST": ("127.0.0.1", "address of every service's /healthz and /readyz"),
    "TIDYDESK_HEALTH_PORT": ("8090", "health port of ingest; threading, policy, notify, queue, "
                             "desk get the next ones (+1..+5), their instance i (from 0) "
                             "+6i more; 0 = free ports chosen at start"),
    "TIDYDESK_POSTMARK_AUTH": ("", "user:password pairs Postmark may send as Basic auth (put "
                               "them in its inbound webhook URL); empty = bearer token only"),
    "TIDYDESK_SENDGRID_AUTH": ("", "user:password pairs for SendGrid Inbound Parse Basic auth "
                               "(in the Parse URL); empty = bearer token only"),
    "TIDYDESK_MAILGUN_SIGNING_KEY": ("", "Mailgun webhook signing key; empty = "
                                     "/inbound/mailgun/mime refuses every delivery"),
    "TIDYDESK_SES_TOPIC_ARNS": ("", "SNS topic ARNs whose SES receipts /inbound/ses takes, "
                                "comma-separated; empty = none"),
    "TIDYDESK_CONSUMER_CONCURRENCY": ("8", "events a consumer handles at once, one ticket "
                                      "(threading: one requester) at a time; 1 = one by one"),
    "TIDYDESK_LOOP": ("uvloop", "event loop of the service processes: uvloop (libuv; the "
                      "asyncio loop where uvloop is not installed) or asyncio"),
    "TIDYDESK_WORKERS": ("0", "instances of ingest, threading and policy `tidydesk up` runs "
                         "(0 = one per core); above 1 the ingest instances share the SMTP "
                         "port (SO_REUSEPORT)"),
}
SERVICES = ("ingest", "threading", "policy", "notify", "queue", "desk")  # health port order too
# CPU-bound, on shared durable consumers: TIDYDESK_WORKERS instances each. The others run once:
# queue's projector is one writer (advisory lock), notify and desk are mostly waiting on I/O.
SCALED = ("ingest", "threading", "policy")
SECRETS = frozenset({"TIDYDESK_WEBHOOK_SECRET", "TIDYDESK_API_TOKEN",
                     "TIDYDESK_POSTMARK_AUTH", "TIDYDESK_SENDGRID_AUTH",
                     "TIDYDESK_MAILGUN_SIGNING_KEY"})
_URL_PASSWORD = re.compile(r"(//[^:/@\s]*:)[^@/\s]*@")
_QUERY_PASSWORD = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Typed view of the environment; build with `Settings.from_env()`."""

    home: Path
    nats_url: str
    database_url: str
    namespace: str
    smtp_host: str
    smtp_port: int
    http_host: str
    http_port: int
    max_message_bytes: int
    policy: str
    webhook_urls: tuple[str, ...]
    webhook_secret: str
    log_format: str
    log_level: str
    subject_number: str
    thread_threshold: str
    thread_same_domain: bool
    smtp_domains: str = ""
    smtp_tls_cert: str = ""
    smtp_tls_key: str = ""
    smtp_auth: str = ""
    smtp_auth_insecure: bool = False
    imap_urls: str = ""
    imap_poll_seconds: float = 30.0
    smtp_relay: str = ""
    health_host: str = "127.0.0.1"
    health_port: int = 8090
    replicas: int = 1
    api_token: str = ""
    allowed_hosts: str = ""
    trusted_authserv: str = ""
    postmark_auth: str = ""
    sendgrid_auth: str = ""
    mailgun_signing_key: str = ""
    ses_topic_arns: str = ""
    consumer_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 8
    workers: Annotated[int, msgspec.Meta(ge=0)] = 0
    loop: Literal["uvloop", "asyncio"] = "uvloop"

    def health_port_of(self, service: str, instance: int = 0) -> int:
        """The port of `service`'s health server: base + its place in SERVICES, + as many
        again per instance after the first; 0 = any."""
        if not self.health_port:
            return 0
        return self.health_port + SERVICES.index(service) + len(SERVICES) * instance

    def instances(self, service: str) -> int:
        """How many processes of `service` `tidydesk up` runs."""
        return (self.workers or os.cpu_count() or 1) if service in SCALED else 1

    def shares_listener(self, service: str) -> bool:
        """Whether instances of `service` listen on one port together (SO_REUSEPORT): only
        when TIDYDESK_WORKERS says more than one, as `tidydesk up` tells its children."""
        return service in SCALED and self.workers > 1

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read every TIDYDESK_* variable, falling back to its documented default."""
        source = os.environ if env is None else env
        raw = {k[len("TIDYDESK_") :].lower(): source.get(k, d) for k, (d, _) in SETTINGS.items()}
        if not raw["namespace"].isidentifier():
            raise ValueError(f"TIDYDESK_NAMESPACE must be an identifier, got {raw['namespace']!r}")
        hooks = tuple(u.strip() for u in raw.pop("webhook_urls").split(",") if u.strip())
        return msgspec.convert(
            {**raw, "webhook_urls": hooks}, cls, strict=False, dec_hook=_dec_path
        )


def redact(name: str, value: str) -> str:
    """`value` of setting `name` with passwords, tokens and keys replaced by ***."""
    if not value:
        return value
    if name in SECRETS:
        return "***"
    if name == "TIDYDESK_SMTP_AUTH":
        return ",".join(f"{p.partition(':')[0]}:***" for p in value.split(",") if p.strip())
    value = _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", value))
    if name == "TIDYDESK_NATS_URL":  # nats://TOKEN@host
        value = re.sub(r"//[^:/@\s]+@", "//***@", value)
    return value


def _dec_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(kind)
