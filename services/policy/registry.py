"""Name -> policy lookup. Register a new policy by adding it to POLICIES; nothing else changes."""

from __future__ import annotations

from tidydesk.policy.always_reopen import AlwaysReopen
from tidydesk.policy.base import Policy
from tidydesk.policy.content_aware import ContentAware
from tidydesk.policy.time_window import TimeWindow

DEFAULT_POLICY = "content-aware"

POLICIES: dict[str, Policy] = {
    AlwaysReopen.name: AlwaysReopen(),
    TimeWindow.name: TimeWindow(),
    ContentAware.name: ContentAware(),
}


class UnknownPolicyError(KeyError):
    """Raised by get_policy for a name that is not registered."""

    def __str__(self) -> str:  # KeyError's default str() adds quotes around the message
        return str(self.args[0]) if self.args else ""


def get_policy(name: str) -> Policy:
    """Return the registered policy called `name` (e.g. "content-aware")."""
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise UnknownPolicyError(f"unknown policy {name!r}; known policies: {known}") from None
