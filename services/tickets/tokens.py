"""Reply tokens: the signed plus-address (support+t<ticket>.<sig>@acme.example) that lets a
customer's reply name its ticket, valid for one tenant domain."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from tidydesk.common.store import Index
from tidydesk.tickets.mailbox import tenant

_token = re.compile(r"^[^+@]+\+t([0-9a-f]{24})\.([0-9a-f]{12})@", re.IGNORECASE)


async def shared_secret(index: Index) -> bytes:
    """The reply-token key, created once for the whole deployment."""
    return bytes.fromhex(await index.claim("secret", secrets.token_hex(32)))


def reply_token(secret: bytes, ticket_id: str, domain: str) -> str:
    """Unguessable per-ticket token for the plus-address Reply-To, valid for one domain."""
    signed = f"{ticket_id}@{domain.lower()}".encode()
    return f"t{ticket_id}.{hmac.new(secret, signed, hashlib.sha256).hexdigest()[:12]}"


def reply_address(secret: bytes, ticket_id: str, mailbox: str) -> str:
    """support@acme.example -> support+t<ticket>.<sig>@acme.example."""
    local, _, domain = mailbox.partition("@")
    return f"{local.split('+')[0]}+{reply_token(secret, ticket_id, domain)}@{domain}"


def token_ticket(secret: bytes, mailbox: str) -> str | None:
    """The ticket named by a valid reply token in the recipient address, else None."""
    found = _token.match(mailbox)
    if not found or not secret:
        return None
    ticket_id = found.group(1).lower()
    expected = reply_token(secret, ticket_id, tenant(mailbox)).split(".")[1]
    return ticket_id if hmac.compare_digest(expected, found.group(2).lower()) else None
