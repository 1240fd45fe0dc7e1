"""Authentication-Results (RFC 8601) from a trusted relay as evidence about the From address.

A stranger can write any Authentication-Results header into a mail, so only the topmost
one counts (the last hop prepends its own; RFC 8601 section 5 has it remove forged copies of
its authserv-id), and only when its authserv-id is one the deployment trusts
(TIDYDESK_TRUSTED_AUTHSERV). Parsing is the `authres` package's: it implements the whole
grammar (comments, quoted values, versions), which a small regex parser would get wrong on
the comments real relays write, e.g. `spf=pass (google.com: domain of … designates …)`.
"""

from __future__ import annotations

from collections.abc import Iterable

import authres  # type: ignore[import-untyped]  # no type hints (pure Python, RFC 8601)

PASS, FAIL = "pass", "fail"


def trusted_ids(setting: str) -> frozenset[str]:
    """TIDYDESK_TRUSTED_AUTHSERV as a set: comma-separated authserv-ids, empty = none."""
    return frozenset(a.strip().lower() for a in setting.split(",") if a.strip())


def _aligned(domain: str, sender_domain: str) -> bool:
    """Relaxed DMARC alignment: the same domain, or the From domain below it."""
    domain = domain.lower().lstrip("@").rpartition("@")[2]
    return bool(domain) and (sender_domain == domain or sender_domain.endswith("." + domain))


def sender_auth(headers: Iterable[str], sender: str, trusted: frozenset[str]) -> str | None:
    """"pass" when the topmost Authentication-Results, written by a trusted relay, says
    dmarc=pass (or dkim=pass for the From domain); "fail" when it says dmarc=fail (a
    spoofed From); None when there is no such header, it is not trusted, or says neither."""
    topmost = next(iter(headers), None)
    if topmost is None or not trusted:
        return None
    try:
        header = authres.AuthenticationResultsHeader.parse_value(" ".join(topmost.split()))
    except (authres.AuthResError, ValueError, IndexError):
        return None  # unreadable: no evidence either way
    if str(header.authserv_id).lower() not in trusted:
        return None
    domain = sender.rpartition("@")[2].lower()
    evidence: set[str] = set()
    for result in header.results:
        method, outcome = str(result.method).lower(), str(result.result).lower()
        props = {f"{p.type}.{p.name}".lower(): str(p.value) for p in result.properties}
        if method == "dmarc" and outcome == "fail":
            return FAIL
        from_ok = _aligned(props.get("header.from", domain), domain)
        if method == "dmarc" and outcome == "pass" and from_ok:
            evidence.add(PASS)
        if method == "dkim" and outcome == "pass" and _aligned(props.get("header.d", ""), domain):
            evidence.add(PASS)
    return PASS if evidence else None
