"""`tidydesk tokens create|list|revoke`: bearer tokens of the HTTP API (only hashes stored)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nats.aio.client import Client

from tidydesk.common import clinats
from tidydesk.common.settings import Settings
from tidydesk.queue.auth import LIST_PREFIX, SCOPES, TokenStore


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    head = ("NAME", "SCOPES", "TENANT", "CREATED", "HASH")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [head, *rows])


async def _run(tokens: TokenStore, args: argparse.Namespace) -> int:
    if args.action == "create":
        secret, token = await tokens.create(tuple(args.scope), args.tenant or "", args.name or "")
        print(f"created token {token.name}: scopes {','.join(token.scopes)}; tenant "
              f"{token.tenant or 'all'}; hash {token.hash[:LIST_PREFIX]}")
        print("token (shown once; send it as `Authorization: Bearer <token>`, or export "
              "TIDYDESK_API_TOKEN for the CLI):")
        print(secret)
        return 0
    if args.action == "list":
        found = await tokens.all()
        if not found:
            print("no API tokens (create one with `tidydesk tokens create --scope read`)")
            return 0
        print(_table([(t.name, ",".join(t.scopes), t.tenant or "all",
                       t.created.strftime("%Y-%m-%d %H:%M:%SZ"), t.hash[:LIST_PREFIX])
                      for t in found]))
        return 0
    gone = await tokens.revoke(args.which)
    print(f"revoked token {gone.name} ({gone.hash[:LIST_PREFIX]}); the API refuses it now")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tidydesk tokens",
                                description="Bearer tokens of the HTTP API: scopes "
                                + ", ".join(SCOPES) + " (admin = all), optionally one tenant.")
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                       help="give up on NATS after this long (default 10)")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", parents=[waits], help="mint a token; prints it once")
    create.add_argument("--scope", action="append", choices=SCOPES, required=True,
                        help="read, write, intake or admin (repeat for several)")
    create.add_argument("--tenant", metavar="DOMAIN",
                        help="only tickets and mail of mailboxes @DOMAIN (default: all)")
    create.add_argument("--name", help="a label for `tokens list` and `revoke`")
    sub.add_parser("list", parents=[waits], help="name, scopes, tenant, created, hash prefix")
    revoke = sub.add_parser("revoke", parents=[waits], help="delete a token by name or hash")
    revoke.add_argument("which", metavar="NAME|HASH_PREFIX")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)

    async def body(nc: Client, settings: Settings) -> int:
        return await _run(TokenStore(nc.jetstream(), settings.namespace), args)

    return clinats.run("tidydesk-tokens", args.timeout, body)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
