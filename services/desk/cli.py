"""`tidydesk hours|tags|agents|teams|desk …`: the helpdesk configuration, changed at run time.

Every change is validated whole and written at the revision read; a refused change prints
why and writes nothing (exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import msgspec
from nats.aio.client import Client

from tidydesk.common import clinats
from tidydesk.common.settings import Settings
from tidydesk.common.topology import apply_topology
from tidydesk.desk import config as desk
from tidydesk.desk import hours
from tidydesk.desk.config import DeskConfig, MailboxDesk, TagRule, Team, parse_rota

TIMEOUT = 10.0
Edit = Callable[[DeskConfig], DeskConfig]


def _mailbox(value: str) -> str:
    value = value.strip().lower()
    if not value or " " in value:
        raise argparse.ArgumentTypeError(f"{value!r} is not a mailbox or domain")
    return value


def _switch(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError("on or off")
    return value == "on"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tidydesk", description="helpdesk configuration")
    top.add_argument("--timeout", type=float, default=TIMEOUT, metavar="SECONDS")
    groups = top.add_subparsers(dest="group", required=True)

    g = groups.add_parser("hours", help="business hours per mailbox").add_subparsers(
        dest="action", required=True)
    p = g.add_parser("set", help="replace a mailbox's hours")
    p.add_argument("mailbox", type=_mailbox)
    p.add_argument("--tz", required=True, help="IANA zone, e.g. Asia/Seoul")
    p.add_argument("--weekly", required=True,
                   help='e.g. "mon,tue,wed,thu,fri 09:00-18:00; sat 10:00-14:00"')
    p.add_argument("--holiday", action="append", default=[], metavar="YYYY-MM-DD")
    for action in ("show", "clear"):
        g.add_parser(action).add_argument("mailbox", type=_mailbox)

    g = groups.add_parser("tags", help="tag rules per mailbox").add_subparsers(
        dest="action", required=True)
    p = g.add_parser("add-rule", help="add (or replace, by name) a tag rule")
    p.add_argument("mailbox", type=_mailbox)
    p.add_argument("tag")
    p.add_argument("--name", help="rule name (default: the tag)")
    p.add_argument("--contains", action="append", default=[], metavar="WORD",
                   help="in the subject or text (repeat: any of them)")
    p.add_argument("--subject", metavar="WORD", help="in the subject")
    p.add_argument("--sender", metavar="PATTERN", help="glob, e.g. *@bigcorp.example")
    p.add_argument("--language", metavar="XX", help="ko, ja, zh, en")
    p.add_argument("--decision", choices=desk.DECISIONS,
                   help="only on this policy decision about a follow-up")
    g.add_parser("list").add_argument("mailbox", type=_mailbox)
    p = g.add_parser("remove")
    p.add_argument("mailbox", type=_mailbox)
    p.add_argument("name")

    g = groups.add_parser("agents", help="agents").add_subparsers(dest="action", required=True)
    p = g.add_parser("add", help="add or change an agent")
    p.add_argument("name")
    p.add_argument("--email", required=True)
    g.add_parser("list")
    g.add_parser("remove").add_argument("name")

    g = groups.add_parser("teams", help="teams: lead, rota, mailboxes").add_subparsers(
        dest="action", required=True)
    p = g.add_parser("set", help="create or replace a team")
    p.add_argument("team")
    p.add_argument("--lead", required=True, help="agent who gets escalations")
    p.add_argument("--rota", required=True,
                   help='e.g. "alice=mon-fri; bob=tue-sat; carol=wed-sun"')
    p.add_argument("--tz", default="", help="zone of the rota (default: the mailbox's hours, "
                   "else UTC)")
    p.add_argument("--mailbox", action="append", default=[], type=_mailbox,
                   help="new tickets of this mailbox (or domain) go to the team's rota")
    g.add_parser("list")
    g.add_parser("remove").add_argument("team")

    g = groups.add_parser("desk", help="escalation, auto-close, kudos per mailbox"
                          ).add_subparsers(dest="action", required=True)
    p = g.add_parser("set", help="change some settings of a mailbox")
    p.add_argument("mailbox", type=_mailbox)
    p.add_argument("--auto-close", metavar="DURATION|off",
                   help="close solved tickets after this long (7d, 36h, 2s)")
    p.add_argument("--notice-window", metavar="DURATION",
                   help="at most one out-of-hours notice per sender within it (default 24h)")
    p.add_argument("--escalate", metavar="RULES|off", help="comma list of complaint, "
                   "reopened, vip")
    p.add_argument("--reopened-limit", type=int, metavar="N",
                   help="`reopened` fires at this many reopens (default 2)")
    p.add_argument("--vip", action="append", metavar="PATTERN",
                   help="VIP requester glob (repeat; replaces the list)")
    p.add_argument("--kudos-forward", type=_switch, metavar="on|off",
                   help="mail kudos to the thanked agent")
    g.add_parser("show").add_argument("mailbox", type=_mailbox, nargs="?")
    return top


def _with_mailbox(config: DeskConfig, mailbox: str, change: Callable[[MailboxDesk], MailboxDesk]
                  ) -> DeskConfig:
    current = config.mailboxes.get(mailbox, MailboxDesk())
    return msgspec.structs.replace(config, mailboxes={**config.mailboxes,
                                                      mailbox: change(current)})


def desk_edit(args: argparse.Namespace) -> Edit | None:
    """The change a `tags|agents|teams|desk` command asks for (None: it only reads)."""
    group, action = args.group, args.action
    if group == "tags" and action == "add-rule":
        rule = TagRule(name=args.name or args.tag, tag=args.tag, contains=tuple(args.contains),
                       subject=args.subject, sender=args.sender, language=args.language,
                       decision=args.decision).validate()
        return lambda c: _with_mailbox(c, args.mailbox, lambda d: msgspec.structs.replace(
            d, tag_rules=(*(r for r in d.tag_rules if r.name != rule.name), rule)))
    if group == "tags" and action == "remove":
        def remove_rule(c: DeskConfig) -> DeskConfig:
            rules = c.mailbox(args.mailbox).tag_rules
            if args.name not in {r.name for r in rules}:
                raise ValueError(f"{args.mailbox} has no tag rule {args.name!r}")
            return _with_mailbox(c, args.mailbox, lambda d: msgspec.structs.replace(
                d, tag_rules=tuple(r for r in d.tag_rules if r.name != args.name)))
        return remove_rule
    if group == "agents" and action == "add":
        agent = desk.Agent(name=args.name, email=args.email.strip())
        return lambda c: msgspec.structs.replace(c, agents={**c.agents, agent.name: agent})
    if group == "agents" and action == "remove":
        def remove_agent(c: DeskConfig) -> DeskConfig:
            if args.name not in c.agents:
                raise ValueError(f"unknown agent {args.name!r}")
            for team in c.teams.values():
                if args.name == team.lead or args.name in team.rota:
                    raise ValueError(f"agent {args.name!r} is in team {team.name!r}: change "
                                     "the team first")
            return msgspec.structs.replace(
                c, agents={k: v for k, v in c.agents.items() if k != args.name})
        return remove_agent
    if group == "teams" and action == "set":
        team = Team(name=args.team, lead=args.lead, rota=parse_rota(args.rota), tz=args.tz,
                    mailboxes=tuple(args.mailbox))
        return lambda c: msgspec.structs.replace(c, teams={**c.teams, team.name: team})
    if group == "teams" and action == "remove":
        def remove_team(c: DeskConfig) -> DeskConfig:
            if args.team not in c.teams:
                raise ValueError(f"unknown team {args.team!r}")
            return msgspec.structs.replace(
                c, teams={k: v for k, v in c.teams.items() if k != args.team})
        return remove_team
    if group == "desk" and action == "set":
        def settings(d: MailboxDesk) -> MailboxDesk:
            changes: dict[str, object] = {}
            if args.auto_close is not None:
                changes["auto_close"] = "" if args.auto_close == "off" else args.auto_close
            if args.notice_window is not None:
                changes["notice_window"] = args.notice_window
            if args.escalate is not None:
                changes["escalate"] = () if args.escalate == "off" else tuple(
                    r.strip() for r in args.escalate.split(",") if r.strip())
            if args.reopened_limit is not None:
                changes["reopened_limit"] = args.reopened_limit
            if args.vip is not None:
                changes["vip"] = tuple(args.vip)
            if args.kudos_forward is not None:
                changes["kudos_forward"] = args.kudos_forward
            return msgspec.structs.replace(d, **changes)
        return lambda c: _with_mailbox(c, args.mailbox, settings)
    return None


def show(args: argparse.Namespace, config: DeskConfig) -> list[str]:
    """What a read-only command prints."""
    if args.group == "tags":
        return [_rule_line(r) for r in config.mailbox(args.mailbox).tag_rules] or [
            f"{args.mailbox}: no tag rules"]
    if args.group == "agents":
        return [f"{a.name} <{a.email}>" for a in sorted(config.agents.values(),
                                                       key=lambda a: a.name)]
    if args.group == "teams":
        return [f"{t.name}: lead {t.lead}; rota {t.describe_rota()}; zone {t.tz or 'mailbox'};"
                f" mailboxes {', '.join(t.mailboxes) or '-'}"
                for t in sorted(config.teams.values(), key=lambda t: t.name)]
    boxes = [args.mailbox] if getattr(args, "mailbox", None) else sorted(config.mailboxes)
    return [f"{box}: " + msgspec.json.encode(config.mailbox(box)).decode() for box in boxes]


def _rule_line(r: TagRule) -> str:
    conditions = [f"contains {'|'.join(r.contains)}" if r.contains else "",
                  f"subject {r.subject}" if r.subject else "",
                  f"sender {r.sender}" if r.sender else "",
                  f"language {r.language}" if r.language else "",
                  f"decision {r.decision}" if r.decision else ""]
    return f"{r.name}: tag {r.tag} when " + " and ".join(c for c in conditions if c)


async def _hours(nc: Client, settings: Settings, args: argparse.Namespace) -> list[str]:
    js, ns = nc.jetstream(), settings.namespace
    if args.action == "show":
        found = hours.hours_for(await hours.load_config(js, ns), args.mailbox)
        if found is None:
            return [f"{args.mailbox}: no business hours (always open, no notices)"]
        return [f"{args.mailbox}: {found.tz}; {found.describe()}"
                + (f"; holidays {', '.join(found.holidays)}" if found.holidays else "")]
    new = hours.make_hours(args.tz, args.weekly, args.holiday) if args.action == "set" else None

    def edit(config: hours.HoursConfig) -> hours.HoursConfig:
        boxes = {k: v for k, v in config.mailboxes.items() if k != args.mailbox}
        return hours.HoursConfig(mailboxes=boxes if new is None else {**boxes,
                                                                      args.mailbox: new})

    await desk.change_struct(js, ns, hours.KEY, hours.HoursConfig, edit)
    if new is None:
        return [f"{args.mailbox}: business hours cleared"]
    return [f"{args.mailbox}: {new.tz}; {new.describe()}"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of `tidydesk hours|tags|agents|teams|desk` (argv starts with the group)."""
    args = parser().parse_args(argv)

    async def body(nc: Client, settings: Settings) -> int:
        js = nc.jetstream()
        await apply_topology(js, settings.namespace)
        if args.group == "hours":
            lines = await _hours(nc, settings, args)
        else:
            edit = desk_edit(args)
            if edit is None:
                config = await desk.load(js, settings.namespace)
            else:
                config = await desk.change(js, settings.namespace, edit)
            lines = show(args, config)
        for line in lines:
            print(line)
        return 0

    return clinats.run("tidydesk-desk-cli", args.timeout, body, bad_input=2)
