"""Connectors: tidydesk's decisions replayed into an existing helpdesk as its own operations."""
