"""SMTP listener (aiosmtpd) in front of Intake: recipient policy, STARTTLS, AUTH."""

from __future__ import annotations

import asyncio
import hmac
import re
import ssl
import warnings
from collections.abc import Mapping
from typing import Any

import structlog
from aiosmtpd.smtp import (
    DATA_SIZE_DEFAULT,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
)

from tidydesk.common.events import MessageRejected
from tidydesk.ingest.intake import Intake

log = structlog.get_logger()
STORE_TIMEOUT = 15.0  # seconds to get a mail into JetStream before answering 451


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list of non-empty, stripped items."""
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_users(value: str) -> dict[str, str]:
    """`user:password,user2:password2` -> {user: password}; the password may hold colons."""
    users: dict[str, str] = {}
    for item in split_list(value):
        user, sep, password = item.partition(":")
        if not sep or not user:
            raise ValueError(f"TIDYDESK_SMTP_AUTH: expected user:password, got {user!r}")
        users[user] = password
    return users


class Recipients:
    """Which RCPT TO addresses this listener takes: domains and/or full mailboxes.

    `support+anything@domain` is taken when `support@domain` is; an empty list takes all.
    """

    def __init__(self, accepted: str | list[str]) -> None:
        items = split_list(accepted) if isinstance(accepted, str) else accepted
        self.domains = {i.lower().lstrip("@") for i in items if "@" not in i.lstrip("@")}
        self.mailboxes = {i.lower() for i in items if "@" in i.lstrip("@")}

    def accepts(self, address: str) -> bool:
        if not self.domains and not self.mailboxes:
            return True
        local, at, domain = address.lower().rpartition("@")
        if not at or not local:
            return False
        base = local.split("+", 1)[0]
        return (domain in self.domains or f"{local}@{domain}" in self.mailboxes
                or f"{base}@{domain}" in self.mailboxes)


class Authenticator:
    """aiosmtpd authenticator over a fixed user table (PLAIN and LOGIN)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = {u.encode(): p.encode() for u, p in users.items()}

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            expected = self.users.get(auth_data.login)
            # compare even for unknown users, so timing does not tell which users exist
            ok = hmac.compare_digest(expected or b"\0" * 32, auth_data.password)
            if ok and expected is not None:
                return AuthResult(success=True)
        log.warning("smtp_auth_failed", peer=str(session.peer), mechanism=mechanism)
        return AuthResult(success=False, handled=False)


class IntakeHandler:
    """aiosmtpd handler: 250 only once the mail is stored and published."""

    def __init__(self, intake: Intake, recipients: Recipients | None = None) -> None:
        self.intake = intake
        self.recipients = recipients or Recipients([])

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self.recipients.accepts(address):
            log.info("smtp_recipient_refused", rcpt=address, peer=str(session.peer))
            return f"550 5.1.1 <{address}>: mailbox not served here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:  # every accepted recipient's mail is published before the 250
            results = await asyncio.wait_for(
                self.intake.deliver(raw, envelope.rcpt_tos,
                                    envelope_from=envelope.mail_from or ""),
                STORE_TIMEOUT,
            )
        except Exception as exc:  # NATS down or slow: let the sending server retry
            log.error("smtp_store_failed", error=str(exc) or type(exc).__name__)
            return "451 4.3.0 Mail not stored, please try again later"
        event = results[0][0]
        if isinstance(event, MessageRejected):
            return f"554 5.6.0 Rejected: {event.reason} (kept as {event.digest[:16]})"
        new = any(n for _, n in results)
        return f"250 2.0.0 Ok: {'queued' if new else 'already had'} {event.digest[:16]}"


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(  # <local@domain> and its parameters: (address, local part, rest)
    rf"[ \t]*<(({_ATEXT}(?:\.{_ATEXT})*)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>([^()\"\\]*)")


class LongLineSMTP(SMTP):
    """aiosmtpd's SMTP taking mail lines over 1,000 octets, as sent (RFC 5321 4.5.3.1.6
    lets a server accept them; aiosmtpd answers 500, and the sender bounces the mail).

    Command lines stay limited by `command_size_limit`.
    """

    def __init__(self, handler: Any, *, line_limit: int, **options: Any) -> None:
        self.line_length_limit = max(line_limit, SMTP.line_length_limit)
        super().__init__(handler, **options)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """MAIL FROM / RCPT TO path: a plain `<dot-atom@domain>` is read by one regex;
        anything else (quotes, comments, literals, the null path) by aiosmtpd's RFC 5322
        parser, which costs ~0.2 ms a call (a fifth of ingest's own CPU per mail)."""
        plain = _PLAIN_PATH.fullmatch(arg)
        if plain is None or (self.local_part_limit and len(plain[2]) > self.local_part_limit):
            return super()._getaddr(arg)
        return plain[1], plain[3].lstrip(" \t")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Server context for STARTTLS from PEM files (raises if they cannot be loaded)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key or None)
    return ctx


async def serve(intake: Intake, host: str, port: int, max_bytes: int, *,
                domains: str | list[str] = "", tls_cert: str = "", tls_key: str = "",
                auth: str | Mapping[str, str] = "", auth_insecure: bool = False,
                reuse_port: bool = False) -> asyncio.Server:
    """Start listening; the server runs on the caller's event loop.

    `domains`: accepted recipients (see `Recipients`). `tls_cert`/`tls_key`: offer STARTTLS.
    `auth`: `user:password,…` or a mapping; when given, AUTH is required before MAIL, and
    is only offered after STARTTLS unless `auth_insecure`. Settings map one to one:
    TIDYDESK_SMTP_DOMAINS, _TLS_CERT, _TLS_KEY, _AUTH, _AUTH_INSECURE. `reuse_port`: share the
    port with sibling instances (SO_REUSEPORT: the kernel spreads connections over them).
    """
    users = parse_users(auth) if isinstance(auth, str) else dict(auth)
    tls = tls_context(tls_cert, tls_key) if tls_cert else None
    if users and tls is None and not auth_insecure:
        raise ValueError("TIDYDESK_SMTP_AUTH needs TIDYDESK_SMTP_TLS_CERT/KEY (AUTH is never "
                         "offered in plain text) or TIDYDESK_SMTP_AUTH_INSECURE=true")
    handler = IntakeHandler(intake, Recipients(domains))
    options: dict[str, Any] = {
        "data_size_limit": max_bytes, "enable_SMTPUTF8": True, "decode_data": False,
        "ident": "tidydesk ESMTP", "hostname": host, "tls_context": tls,
        "auth_required": bool(users), "auth_require_tls": not auth_insecure,
        "authenticator": Authenticator(users) if users else None,
    }

    def factory() -> SMTP:
        with warnings.catch_warnings():
            # aiosmtpd warns on AUTH without TLS; that is exactly what auth_insecure chose
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            # a line may be as long as the whole mail: the size limit still applies
            return LongLineSMTP(handler, line_limit=(max_bytes or DATA_SIZE_DEFAULT) + 2,
                                **options)

    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host=host, port=port, reuse_port=reuse_port)
