"""Which policy decides for which mailbox, and which one runs in shadow.

Kept in the `{ns}_config` key-value bucket, so `tidydesk policy …` changes take effect for
the next message without restarting anything; TIDYDESK_POLICY is the fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from tidydesk.common.settings import Settings
from tidydesk.common.store import close, connect
from tidydesk.common.topology import apply_topology
from tidydesk.policy.registry import get_policy

KEY = "policy"


class PolicyConfig(msgspec.Struct, frozen=True, kw_only=True):
    default: str = ""  # empty: TIDYDESK_POLICY
    mailboxes: dict[str, str] = {}  # support@acme.example -> policy name
    shadow: str | None = None  # a candidate run beside the active one, without effect

    def active_for(self, mailbox: str, fallback: str) -> str:
        local, _, domain = mailbox.lower().partition("@")
        plain = f"{local.split('+')[0]}@{domain}"
        return self.mailboxes.get(plain) or self.mailboxes.get(domain) or self.default or fallback

    def validate(self) -> PolicyConfig:
        """Raise UnknownPolicyError naming the known policies if a name is wrong."""
        for name in [self.default, self.shadow or "", *self.mailboxes.values()]:
            if name:
                get_policy(name)
        return self


async def load(js: JetStreamContext, ns: str) -> PolicyConfig:
    kv = await js.key_value(f"{ns}_config")
    try:
        entry = await kv.get(KEY)
    except KeyNotFoundError:
        return PolicyConfig()
    return msgspec.json.decode(entry.value or b"{}", type=PolicyConfig)


async def save(js: JetStreamContext, ns: str, config: PolicyConfig) -> None:
    """Replace the whole configuration."""
    kv = await js.key_value(f"{ns}_config")
    await kv.put(KEY, msgspec.json.encode(config.validate()))


async def change(js: JetStreamContext, ns: str,
                 edit: Callable[[PolicyConfig], PolicyConfig]) -> PolicyConfig:
    """Edit the configuration at the revision read: two operators at once lose no change."""
    kv = await js.key_value(f"{ns}_config")
    while True:
        try:
            entry = await kv.get(KEY)
            current = msgspec.json.decode(entry.value or b"{}", type=PolicyConfig)
            revision: int | None = entry.revision
        except KeyNotFoundError:
            current, revision = PolicyConfig(), None
        new = edit(current).validate()
        try:
            if revision is None:
                await kv.create(KEY, msgspec.json.encode(new))
            else:
                await kv.update(KEY, msgspec.json.encode(new), last=revision)
            return new
        except KeyWrongLastSequenceError:
            continue


async def _command(args: argparse.Namespace, settings: Settings) -> PolicyConfig:
    nc = await connect(settings.nats_url, "tidydesk-policy-cli")
    try:
        js = nc.jetstream()
        await apply_topology(js, settings.namespace)
        def edit(config: PolicyConfig) -> PolicyConfig:
            if args.action == "set" and args.mailbox:
                return msgspec.structs.replace(
                    config, mailboxes={**config.mailboxes, args.mailbox.lower(): args.name})
            if args.action == "set":
                return msgspec.structs.replace(config, default=args.name)
            return msgspec.structs.replace(
                config, shadow=None if args.name == "off" else args.name)

        if args.action == "show":
            return await load(js, settings.namespace)
        config = await change(js, settings.namespace, edit)
        return config
    finally:
        await close(nc)


def main(argv: list[str] | None = None) -> int:
    """`tidydesk policy show | set NAME [--mailbox M] | shadow NAME|off`."""
    parser = argparse.ArgumentParser(prog="tidydesk policy",
                                     description="show or change the policy per mailbox")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("show")
    p = sub.add_parser("set", help="active policy, for all mailboxes or one")
    p.add_argument("name")
    p.add_argument("--mailbox", help="support@acme.example, or a whole domain")
    p = sub.add_parser("shadow", help="run a candidate beside the active one (off to stop)")
    p.add_argument("name")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if not settings.nats_url:
        print("tidydesk policy: set TIDYDESK_NATS_URL (the one `tidydesk up` prints)",
              file=sys.stderr)
        return 2
    try:
        config = asyncio.run(_command(args, settings))
    except KeyError as exc:
        print(f"tidydesk policy: {exc}", file=sys.stderr)
        return 2
    print(f"default: {config.default or settings.policy}"
          f"{'' if config.default else ' (TIDYDESK_POLICY)'}")
    for mailbox, name in sorted(config.mailboxes.items()):
        print(f"{mailbox}: {name}")
    print(f"shadow: {config.shadow or 'off'}")
    return 0
