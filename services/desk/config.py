"""The helpdesk configuration: agents, teams with a weekly rota, and per mailbox the tag rules,
escalation, auto-close and kudos settings.

Kept in the `{ns}_config` bucket under `desk.config` (business hours live beside it under
`desk.hours`, see hours.py), changed with revision checks and read per event, so
`tidydesk agents|teams|tags|desk …` take effect without a restart. Every change is validated
whole before it is written: bad input changes nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from tidydesk.desk.hours import DAYS, parse_days

KEY = "desk.config"
DECISIONS = ("reopen", "acknowledge", "split")
ESCALATIONS = ("complaint", "reopened", "vip")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
S = TypeVar("S", bound=msgspec.Struct)


def duration(text: str) -> timedelta:
    """`"7d"`, `"36h"`, `"90m"`, `"2s"`, `"1.5w"` -> timedelta; ValueError otherwise."""
    match = _DURATION.match(text.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"duration {text!r} is not a positive number with a unit "
                         "s, m, h, d or w (e.g. 7d, 36h, 2s)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r}: use lower-case letters, digits, . _ - "
                         "(at most 64)")
    return name


class TagRule(msgspec.Struct, frozen=True, kw_only=True):
    """Tag `tag` when every condition given holds (words are matched case-blind)."""

    name: str
    tag: str
    contains: tuple[str, ...] = ()  # any of these in the subject or the text
    subject: str | None = None  # in the subject
    sender: str | None = None  # glob on the sender address, e.g. *@bigcorp.example
    language: str | None = None  # ko, ja, zh, en (see language.py)
    decision: str | None = None  # only on this policy decision: reopen | acknowledge | split

    def validate(self) -> TagRule:
        _name("rule", self.name)
        _name("tag", self.tag)
        if not (self.contains or self.subject or self.sender or self.language
                or self.decision):
            raise ValueError(f"rule {self.name!r} has no condition (give --contains, "
                             "--subject, --sender, --language or --decision)")
        if any(not w.strip() for w in self.contains) or self.subject == "":
            raise ValueError(f"rule {self.name!r}: an empty word matches everything")
        if self.decision is not None and self.decision not in DECISIONS:
            raise ValueError(f"rule {self.name!r}: decision {self.decision!r} is not one of "
                             f"{', '.join(DECISIONS)}")
        if self.language is not None and not re.fullmatch(r"[a-z]{2}", self.language):
            raise ValueError(f"rule {self.name!r}: language {self.language!r} is not a "
                             "two-letter code")
        return self

    def matches(self, subject: str, text: str, sender: str, language: str,
                decision: str | None) -> bool:
        """Whether the rule fires on a message (and, for decision rules, its decision)."""
        haystack = f"{subject}\n{text}".casefold()
        return ((decision or None) == self.decision
                and (not self.contains or any(w.casefold() in haystack for w in self.contains))
                and (self.subject is None or self.subject.casefold() in subject.casefold())
                and (self.sender is None or fnmatch.fnmatch(sender.lower(), self.sender.lower()))
                and (self.language is None or self.language == language))


class Agent(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    email: str


class Team(msgspec.Struct, frozen=True, kw_only=True):
    """A lead (who gets escalations) and a weekly rota: agent -> weekdays (0 = Monday)."""

    name: str
    lead: str
    rota: dict[str, tuple[int, ...]] = {}
    tz: str = ""  # empty: the mailbox's business-hours zone, else UTC
    mailboxes: tuple[str, ...] = ()  # new tickets of these are assigned from the rota

    def on_duty(self, at: datetime, fallback_tz: str) -> list[str]:
        """Agents whose rota includes `at`'s weekday in the team's zone, by name."""
        day = at.astimezone(ZoneInfo(self.tz or fallback_tz or "UTC")).weekday()
        return sorted(agent for agent, days in self.rota.items() if day in days)

    def describe_rota(self) -> str:
        return "; ".join(f"{a}={','.join(DAYS[d] for d in days)}"
                         for a, days in sorted(self.rota.items()))


def parse_rota(spec: str) -> dict[str, tuple[int, ...]]:
    """`"alice=mon-fri; bob=tue-sat; carol=wed-sun"` -> agent -> weekdays."""
    rota: dict[str, tuple[int, ...]] = {}
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        agent, eq, days = part.partition("=")
        if not eq or not days.strip():
            raise ValueError(f"rota entry {part!r} is not AGENT=DAYS (e.g. alice=mon-fri)")
        if agent.strip() in rota:
            raise ValueError(f"rota names {agent.strip()!r} twice")
        rota[agent.strip()] = tuple(sorted(set(parse_days(days.strip()))))
    if not rota:
        raise ValueError("the rota names nobody")
    return rota


class MailboxDesk(msgspec.Struct, frozen=True, kw_only=True):
    tag_rules: tuple[TagRule, ...] = ()
    auto_close: str = ""  # a duration after ticket.solved; empty = never
    notice_window: str = "24h"  # at most one out-of-hours notice per sender within it
    escalate: tuple[str, ...] = ()  # complaint | reopened | vip
    reopened_limit: int = 2  # `reopened` fires when a ticket was reopened this often
    vip: tuple[str, ...] = ()  # requester globs for `vip`
    kudos_forward: bool = False  # mail agent.thanked to the agent


class DeskConfig(msgspec.Struct, frozen=True, kw_only=True):
    agents: dict[str, Agent] = {}
    teams: dict[str, Team] = {}
    mailboxes: dict[str, MailboxDesk] = {}

    def validate(self) -> DeskConfig:
        """Raise ValueError naming the first thing wrong; return self when all is well."""
        for name, agent in self.agents.items():
            _name("agent", name)
            if "@" not in agent.email or " " in agent.email.strip():
                raise ValueError(f"agent {name!r}: {agent.email!r} is not an email address")
        for name, team in self.teams.items():
            _name("team", name)
            for member in (team.lead, *team.rota):
                if member not in self.agents:
                    raise ValueError(f"team {name!r}: unknown agent {member!r} (add it first "
                                     "with `tidydesk agents add`)")
            if team.tz:
                try:
                    ZoneInfo(team.tz)
                except (ZoneInfoNotFoundError, ValueError):
                    raise ValueError(f"team {name!r}: unknown time zone {team.tz!r}") from None
            for mailbox in team.mailboxes:
                other = self.team_for(mailbox)
                if other is not None and other.name != name:
                    raise ValueError(f"mailbox {mailbox!r} is already {other.name!r}'s")
        for mailbox, desk in self.mailboxes.items():
            names = [r.name for r in desk.tag_rules]
            if len(set(names)) != len(names):
                raise ValueError(f"{mailbox}: two tag rules have one name")
            for rule in desk.tag_rules:
                rule.validate()
            for value in filter(None, (desk.auto_close, desk.notice_window)):
                duration(value)
            for kind in desk.escalate:
                if kind not in ESCALATIONS:
                    raise ValueError(f"{mailbox}: escalation {kind!r} is not one of "
                                     f"{', '.join(ESCALATIONS)}")
            if desk.reopened_limit < 1:
                raise ValueError(f"{mailbox}: the reopened limit must be at least 1")
        return self

    def mailbox(self, mailbox: str) -> MailboxDesk:
        """Settings of a mailbox: its plain address (no +tag), else its domain, else none."""
        local, _, domain = mailbox.lower().partition("@")
        plain = f"{local.split('+')[0]}@{domain}"
        return self.mailboxes.get(plain) or self.mailboxes.get(domain) or MailboxDesk()

    def team_for(self, mailbox: str) -> Team | None:
        local, _, domain = mailbox.lower().partition("@")
        plain = f"{local.split('+')[0]}@{domain}"
        for wanted in (plain, domain):
            for team in self.teams.values():
                if wanted in team.mailboxes:
                    return team
        return None


async def _bucket(js: JetStreamContext, ns: str) -> KeyValue:
    return await js.key_value(f"{ns}_config")


async def load_struct(js: JetStreamContext, ns: str, key: str, kind: type[S]) -> S:
    """The struct stored under `key`, or an empty one."""
    try:
        entry = await (await _bucket(js, ns)).get(key)
    except (KeyNotFoundError, BucketNotFoundError):
        return kind()
    return msgspec.json.decode(entry.value or b"{}", type=kind)


async def change_struct(js: JetStreamContext, ns: str, key: str, kind: type[S],
                        edit: Callable[[S], S]) -> S:
    """Edit at the revision read (two operators at once lose no change); `edit` raises
    ValueError to refuse, and then nothing is written."""
    kv = await _bucket(js, ns)
    while True:
        try:
            entry = await kv.get(key)
            current = msgspec.json.decode(entry.value or b"{}", type=kind)
            revision: int | None = entry.revision
        except KeyNotFoundError:
            current, revision = kind(), None
        new = edit(current)
        try:
            if revision is None:
                await kv.create(key, msgspec.json.encode(new))
            else:
                await kv.update(key, msgspec.json.encode(new), last=revision)
            return new
        except KeyWrongLastSequenceError:
            continue


async def load(js: JetStreamContext, ns: str) -> DeskConfig:
    return await load_struct(js, ns, KEY, DeskConfig)


async def change(js: JetStreamContext, ns: str,
                 edit: Callable[[DeskConfig], DeskConfig]) -> DeskConfig:
    return await change_struct(js, ns, KEY, DeskConfig, lambda c: edit(c).validate())
