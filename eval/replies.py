"""Reply-extraction evaluation: tidydesk vs. peer libraries.

Usage::

    python eval/replies.py [DATA_DIR] [--scenarios PATH] [--fail NAME]

DATA_DIR defaults to ``tests/data/replies`` (one folder per suite holding ``cases.jsonl`` and
``fixtures/``). Prints the pass rate per suite and per language for every extractor that
imports, then overall; then a CJK/multilingual check on the case-A inbound bodies of a
scenarios file (``/work/shared/data/scenarios/dev.jsonl`` by default, skipped if missing).
``--fail NAME`` lists the failing case ids of extractor NAME.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidydesk.ingest.extract import body_of, extract

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA = ROOT / "tests" / "data" / "replies"
DEFAULT_SCENARIOS = Path("/work/shared/data/scenarios/dev.jsonl")

Extractor = Callable[[str, str], str]


def norm(s: str) -> str:
    return " ".join(s.split())


def check(reply: str, expect: dict[str, Any]) -> bool:
    r = norm(reply)
    if "reply_equals" in expect and r != norm(expect["reply_equals"]):
        return False
    if any(norm(s) not in r for s in expect.get("reply_contains", [])):
        return False
    return not any(norm(s) in r for s in expect.get("reply_not_contains", []))


@dataclass
class Case:
    id: str
    suite: str
    lang: str
    content_type: str
    text: str
    expect: dict[str, Any] = field(default_factory=dict)


def load_cases(data: Path) -> list[Case]:
    out: list[Case] = []
    for cases_file in sorted(data.glob("*/cases.jsonl")):
        suite_dir = cases_file.parent
        for line in cases_file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            raw = (suite_dir / d["input_path"]).read_bytes()
            ctype = d["content_type"]
            if ctype == "message/rfc822":
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                text, ctype = body_of(msg)
            else:
                text = raw.decode("utf-8", errors="replace")
            out.append(Case(d["id"], d["suite"], d["lang"], ctype, text, d["expect"]))
    return out


# ---------------------------------------------------------------- extractors


def _tidydesk(text: str, ctype: str) -> str:
    return extract(text, ctype).reply


def _html_plain(text: str, ctype: str) -> str:
    """Peers that only take plain text get the HTML converted by our converter."""
    if ctype == "text/html":
        from tidydesk.ingest.extract import html_to_text

        return html_to_text(text)
    return text


def build_extractors() -> dict[str, Extractor]:
    ex: dict[str, Extractor] = {"tidydesk": _tidydesk}
    try:
        from mailparser_reply import EmailReplyParser as MPR

        langs = ["en", "de", "cs", "da", "es", "fr", "it", "ja", "ko", "nl", "pl", "sv", "zh"]
        mpr = MPR(languages=langs)

        def _mpr(text: str, ctype: str) -> str:
            return mpr.parse_reply(_html_plain(text, ctype)) or ""

        ex["mail-parser-reply"] = _mpr
    except Exception as e:  # pragma: no cover - optional peer
        print(f"# mail-parser-reply unavailable: {e}", file=sys.stderr)
    try:
        from email_reply_parser import EmailReplyParser as ERP

        def _erp(text: str, ctype: str) -> str:
            return str(ERP.parse_reply(_html_plain(text, ctype)))

        ex["email-reply-parser"] = _erp
    except Exception as e:  # pragma: no cover
        print(f"# email-reply-parser unavailable: {e}", file=sys.stderr)
    try:
        import quotequail

        def _qq(text: str, ctype: str) -> str:
            parts = quotequail.quote(_html_plain(text, ctype), quote_intro_line=True)
            return "\n".join(t for keep, t in parts if keep)

        ex["quotequail"] = _qq
    except Exception as e:  # pragma: no cover
        print(f"# quotequail unavailable: {e}", file=sys.stderr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import talon
            from talon import quotations

            talon.init()

        def _talon(text: str, ctype: str) -> str:
            if ctype == "text/html":
                from tidydesk.ingest.extract import html_to_text

                return html_to_text(str(quotations.extract_from_html(text)))
            return str(quotations.extract_from_plain(text))

        ex["talon"] = _talon
    except Exception as e:  # pragma: no cover
        print(f"# talon unavailable: {e}", file=sys.stderr)
    return ex


def run(ex: Extractor, case: Case) -> bool:
    try:
        return check(ex(case.text, case.content_type), case.expect)
    except Exception:
        return False


# ---------------------------------------------------------------- scenario check

_ADDR = re.compile(r"<[^<>\s]+@[^<>\s]+>")


def scenario_check(path: Path, extractors: dict[str, Extractor]) -> None:
    items = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    items = [d for d in items if d.get("case") == "A"]
    print(f"\nScenario check ({path.name}, {len(items)} case-A inbound bodies): fraction whose")
    print("reply is non-empty, a prefix of the body, and has no '>' line, no address-bearing")
    print("header line and no line of the quoted agent message")
    names = list(extractors)
    print(f"{'lang':6} {'n':>3} " + " ".join(f"{n:>18}" for n in names))
    by_lang: dict[str, list[dict[str, Any]]] = {}
    for d in items:
        by_lang.setdefault(d["lang"], []).append(d)
    tot = dict.fromkeys(names, 0)
    fails: dict[str, list[str]] = {n: [] for n in names}
    for lang in sorted(by_lang):
        row = []
        for n in names:
            ok = 0
            for d in by_lang[lang]:
                if _scenario_ok(d, extractors[n]):
                    ok += 1
                else:
                    fails[n].append(d["id"])
            tot[n] += ok
            row.append(f"{ok / len(by_lang[lang]):>18.0%}")
        print(f"{lang:6} {len(by_lang[lang]):>3} " + " ".join(row))
    print(f"{'all':6} {len(items):>3} " + " ".join(f"{tot[n] / len(items):>18.1%}" for n in names))
    if fails["tidydesk"]:
        print("tidydesk scenario failures:", ", ".join(fails["tidydesk"]))


def _scenario_ok(d: dict[str, Any], ex: Extractor) -> bool:
    body: str = d["inbound"]["text"]
    try:
        reply = ex(body, "text/plain")
    except Exception:
        return False
    r = norm(reply)
    if not r or not norm(body).startswith(r):
        return False
    agent = [m["text"] for m in d["ticket"]["messages"] if m["from"] == "agent"]
    agent_lines = {norm(x) for m in agent for x in m.splitlines() if len(norm(x)) >= 8}
    for line in reply.splitlines():
        s = line.strip()
        if s.startswith(">") or _ADDR.search(s) or norm(s) in agent_lines:
            return False
    return True


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS)
    ap.add_argument("--fail", default=None, help="list failing ids of this extractor")
    args = ap.parse_args(argv)

    cases = load_cases(args.data)
    extractors = build_extractors()
    names = list(extractors)
    results = {n: {c.id: run(extractors[n], c) for c in cases} for n in names}

    groups: list[tuple[str, list[Case]]] = []
    for suite in sorted({c.suite for c in cases}):
        sc = [c for c in cases if c.suite == suite]
        groups.append((suite, sc))
        for lang in sorted({c.lang for c in sc}):
            groups.append((f"  {lang}", [c for c in sc if c.lang == lang]))
    groups.append(("OVERALL", cases))

    w = max(len(g) for g, _ in groups) + 1
    print(f"{'group':{w}} {'n':>4} " + " ".join(f"{n:>18}" for n in names))
    for g, cs in groups:
        cells = []
        for n in names:
            ok = sum(results[n][c.id] for c in cs)
            cells.append(f"{ok:>4}/{len(cs):<4}{ok / len(cs):>9.1%}")
        print(f"{g:{w}} {len(cs):>4} " + " ".join(cells))

    if args.fail:
        print(f"\nfailing for {args.fail}:")
        for c in cases:
            if not results[args.fail][c.id]:
                print("  ", c.id, c.lang)
    if args.scenarios.exists():
        scenario_check(args.scenarios, extractors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
