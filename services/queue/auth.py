"""API tokens: random bearer secrets with scopes and an optional tenant; only sha256 is kept.

Records live in the `{ns}_tokens` KV bucket, keyed by the token's sha256 (hex): the token
itself is printed once by `tidydesk tokens create` and stored nowhere.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from tidydesk.common.topology import TOPOLOGY, fill_namespace

SCOPES = ("read", "write", "intake", "admin")  # admin grants every other scope
PREFIX = "tdk_"
LIST_PREFIX = 12  # hex digits of the hash `tokens list` shows and `revoke` accepts


class Token(msgspec.Struct, frozen=True, kw_only=True):
    """A token's record; `tenant` "" = every mailbox domain."""

    hash: str
    name: str
    scopes: tuple[str, ...]
    created: datetime
    tenant: str = ""

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def sees(self, ticket_tenant: str) -> bool:
        """Whether a ticket (or mail) of mailbox domain `ticket_tenant` is visible."""
        return not self.tenant or self.tenant == ticket_tenant.lower()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def normal_tenant(tenant: str) -> str:
    """A tenant is a mailbox domain, compared in lower case; ValueError if it is none."""
    domain = tenant.strip().lower().removeprefix("@")
    if not domain or "@" in domain or any(c.isspace() or c in "/|\0" for c in domain):
        raise ValueError(f"not a mailbox domain: {tenant!r}")
    return domain


async def bucket(js: JetStreamContext, ns: str) -> KeyValue:
    """The tokens bucket, created as jetstream.json says if the stack never started with it."""
    try:
        return await js.key_value(f"{ns}_tokens")
    except BucketNotFoundError:
        spec = json.loads(TOPOLOGY.read_text())
        (raw,) = [b for b in spec["key_value"] if b["bucket"] == "{ns}_tokens"]
        return await js.create_key_value(api.KeyValueConfig(
            **{k: fill_namespace(v, ns) for k, v in raw.items()}))


class TokenStore:
    """Create, find, list and revoke tokens in the `{ns}_tokens` bucket."""

    def __init__(self, js: JetStreamContext, ns: str) -> None:
        self.js, self.ns = js, ns
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await bucket(self.js, self.ns)
        return self._kv

    async def create(self, scopes: tuple[str, ...], tenant: str = "", name: str = ""
                     ) -> tuple[str, Token]:
        """A new token (returned once) and its stored record."""
        unknown = set(scopes) - set(SCOPES)
        if not scopes or unknown:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got "
                             f"{', '.join(sorted(unknown)) or 'none'}")
        secret = PREFIX + secrets.token_urlsafe(32)
        record = Token(hash=digest(secret), name=name or f"token-{secrets.token_hex(3)}",
                       scopes=tuple(s for s in SCOPES if s in scopes),
                       tenant=normal_tenant(tenant) if tenant else "",
                       created=datetime.now(UTC))
        await (await self._bucket()).create(record.hash, msgspec.json.encode(record))
        return secret, record

    async def find(self, token: str) -> Token | None:
        """The record of a presented token, None if unknown or revoked."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        try:
            entry = await (await self._bucket()).get(digest(token))
        except KeyNotFoundError:  # also a deleted (revoked) key
            return None
        return msgspec.json.decode(entry.value, type=Token) if entry.value else None

    async def all(self) -> list[Token]:
        """Every live token, oldest first."""
        watcher = await (await self._bucket()).watchall(ignore_deletes=True)
        out: list[Token] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.value:
                    out.append(msgspec.json.decode(entry.value, type=Token))
                if entry.delta == 0:
                    break
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return sorted(out, key=lambda t: t.created)

    async def revoke(self, which: str) -> Token:
        """Delete the one token named `which` or whose hash starts with it; ValueError else."""
        tokens = await self.all()
        named = [t for t in tokens if t.name == which]
        if not named and len(which) >= 6:
            named = [t for t in tokens if t.hash.startswith(which.lower())]
        if len(named) != 1:
            raise ValueError(f"no token named or hashed {which!r}" if not named else
                             f"{which!r} matches {len(named)} tokens; give a longer hash prefix")
        await (await self._bucket()).delete(named[0].hash)
        return named[0]
