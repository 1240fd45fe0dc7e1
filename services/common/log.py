"""structlog set-up: on stderr, JSON when not on a TTY, console for people."""

from __future__ import annotations

import logging
import os
import sys

import structlog

FORMATS = ("auto", "json", "console")


class _Stderr:
    """sys.stderr as it is at each write: a command run in-process (tests, embedding
    applications) may swap it after logging was configured, and cached loggers keep this."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "auto", level: str = "info") -> None:
    """Configure structlog once per process; ValueError names a bad format or level."""
    levels, fmt = logging.getLevelNamesMapping(), fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"TIDYDESK_LOG_FORMAT must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if level.upper() not in levels or level.upper() == "NOTSET":
        raise ValueError("TIDYDESK_LOG_LEVEL must be debug, info, warning or error, "
                         f"got {level!r}")
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(levels[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def configure_from_env() -> None:
    """`configure` from TIDYDESK_LOG_FORMAT and TIDYDESK_LOG_LEVEL (for CLI commands, which
    must not fail on settings they do not use)."""
    configure(os.environ.get("TIDYDESK_LOG_FORMAT") or "auto",
              os.environ.get("TIDYDESK_LOG_LEVEL") or "info")
