"""Mailboxes and their tenants."""

from __future__ import annotations


def tenant(mailbox: str) -> str:
    """Tenant of a mailbox: its domain (plus-addressing and case ignored)."""
    return mailbox.rpartition("@")[2].lower()
