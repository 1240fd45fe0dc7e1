"""Offline contract: `tidydesk classify [--policy NAME] --jsonl` (stdin -> stdout, one line each).

The one module that composes ingest (reply extraction), threading and policy, as a service's
composition root does; the services themselves never import each other.

Input lines have the shape of `tests/data/scenarios/dev.jsonl` (`id`, `case`, `ticket`,
`inbound`), or only `{"id", "text"}`: a reply (full body) to a solved ticket whose content is
unknown. Output, in input order::

    {"id": str, "decision": "acknowledge"|"reopen"|"split"|"thread"|"new",
     "confidence": float, "reasons": [str], "policy": str}

Case "B" (fresh mail beside an open ticket) is answered by `tidydesk.threading.similarity.match`
with `thread` / `new`, and `policy` names that engine. A malformed line yields
`{"id": ..., "error": "..."}`; the run never stops on one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from tidydesk.ingest.extract import reply_text
from tidydesk.policy.base import FollowUp, PastMessage, Policy, TicketView
from tidydesk.policy.registry import DEFAULT_POLICY, POLICIES, get_policy
from tidydesk.threading import similarity

_AUTO_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|abwesenheit|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|自動返信|自動応答|自动回复|자동\s?응답|"
    r"부재\s?중|delivery status notification|undeliver|mail delivery)",
    re.IGNORECASE,
)


Match = Callable[[TicketView, str, str, str], tuple[bool, float, list[str]]]


def _threading_match() -> Match | None:
    return similarity.match


def _ticket(raw: dict[str, Any]) -> TicketView:
    messages = tuple(
        PastMessage(author="agent" if m.get("from") == "agent" else "customer", text=m["text"])
        for m in raw.get("messages") or ()
    )
    days = raw.get("closed_days_ago")
    return TicketView(
        subject=str(raw.get("subject") or ""),
        status=str(raw.get("status") or "solved"),
        requester=str(raw.get("requester") or ""),
        messages=messages,
        closed_days_ago=float(days) if days is not None else None,
    )


def _follow_up(inbound: dict[str, Any]) -> FollowUp:
    body = inbound["text"]
    if not isinstance(body, str):
        raise TypeError("inbound.text must be a string")
    subject = str(inbound.get("subject") or "")
    return FollowUp(
        sender=str(inbound.get("from") or ""),
        subject=subject,
        body=body,
        reply=reply_text(body),
        auto=bool(inbound.get("auto")) or bool(_AUTO_SUBJECT.match(subject.strip())),
    )


def classify_item(item: dict[str, Any], policy: Policy, match: Match | None) -> dict[str, Any]:
    """One output object for one parsed input object (raises on malformed input)."""
    if set(item) >= {"ticket", "inbound"}:
        ticket = _ticket(item["ticket"])
        message = _follow_up(item["inbound"])
        if item.get("case") == "B" or (item.get("case") is None and ticket.status == "open"):
            if match is None:
                return _out(item, "new", 0.5, ["threading engine unavailable"], "threading")
            same, conf, reasons = match(ticket, message.sender, message.subject, message.reply)
            verdict, confidence = ("thread", conf) if same else ("new", 1.0 - conf)
            return _out(item, verdict, confidence, list(reasons), "threading")
        decision = policy.decide(ticket, message)
        return _out(item, decision.verdict, decision.confidence, list(decision.reasons),
                    decision.policy)
    text = item["text"]
    if not isinstance(text, str):
        raise TypeError("text must be a string")
    unknown = TicketView(subject="", status="solved", requester="")
    decision = policy.decide(
        unknown, FollowUp(sender="", subject="", body=text, reply=reply_text(text))
    )
    verdict, reasons = decision.verdict, list(decision.reasons)
    if verdict == "split":  # no ticket to split from: the reply reopens it
        verdict, reasons = "reopen", [*reasons, "ticket unknown: reopen instead of split"]
    return _out(item, verdict, decision.confidence, reasons, decision.policy)


def _out(item: dict[str, Any], decision: str, confidence: float, reasons: list[str],
         policy: str) -> dict[str, Any]:
    return {
        "id": str(item["id"]),
        "decision": decision,
        "confidence": round(float(confidence), 4),
        "reasons": [str(r) for r in reasons],
        "policy": policy,
    }


def run(lines: Iterable[str], out: TextIO, policy: Policy) -> int:
    """Classify every non-blank line; returns the number of error lines written."""
    match = _threading_match()
    errors = 0
    for line in lines:
        if not line.strip():
            continue
        item: Any = None
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise TypeError("line is not a JSON object")
            if "id" not in item:
                raise KeyError("id")
            result = classify_item(item, policy, match)
        except Exception as exc:  # a bad line must never stop the run
            errors += 1
            ident = item.get("id") if isinstance(item, dict) else None
            kind = "missing field" if isinstance(exc, KeyError) else type(exc).__name__
            result = {"id": None if ident is None else str(ident), "error": f"{kind}: {exc}"}
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    out.flush()
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tidydesk classify",
        description="Classify follow-ups offline: JSON lines on stdin, one decision per line.",
    )
    parser.add_argument(
        "--policy", default=DEFAULT_POLICY, help=f"one of: {', '.join(sorted(POLICIES))}"
    )
    parser.add_argument("--jsonl", action="store_true", help="read and write JSON lines")
    args = parser.parse_args(argv)
    if not args.jsonl:
        parser.error("only --jsonl input is supported")
    try:
        policy = get_policy(args.policy)
    except KeyError as exc:
        print(f"tidydesk classify: {exc}", file=sys.stderr)
        return 2
    try:
        run(sys.stdin, sys.stdout, policy)
    except BrokenPipeError:  # reader went away (e.g. `| head`): stop quietly
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
