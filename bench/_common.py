"""What the bench scripts share: servers, a namespace per run, a corpus, tables, percentiles.

Run the scripts from the repository root as modules (`python -m bench.intake`) so that both
`services` and `bench` import. Servers are the ones in TIDYDESK_NATS_URL /
TIDYDESK_DATABASE_URL when set, else an embedded nats-server -js and PostgreSQL started in a
temporary directory and removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path

from nats.js import JetStreamContext

from tidydesk.common import log as logsetup
from tidydesk.common.embedded import EmbeddedNats, EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def quiet_logs() -> None:
    """Services log every mail at info; a bench only wants errors (on stderr)."""
    logsetup.configure("json", "error")


def new_namespace() -> str:
    """A namespace of its own per run, like the tests' `ns` fixture."""
    return "b" + uuid.uuid4().hex[:10]


@dataclass
class Servers:
    """NATS and (optionally) PostgreSQL for one run; embedded ones live in `home`."""

    nats_url: str = ""
    database_url: str = ""
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    home: Path | None = None
    notes: list[str] = field(default_factory=list)

    def nats_pid(self) -> int | None:
        return self.nats.proc.pid if self.nats and self.nats.proc else None


@contextlib.contextmanager
def servers(*, postgres: bool = False) -> Iterator[Servers]:
    """Start what is not given by TIDYDESK_NATS_URL / TIDYDESK_DATABASE_URL; stop it after."""
    s = Servers()
    embedded_pg = postgres and not os.environ.get("TIDYDESK_DATABASE_URL")
    try:
        if embedded_pg or not os.environ.get("TIDYDESK_NATS_URL"):
            s.home = Path(tempfile.mkdtemp(prefix="tidydesk-bench-"))
        if os.environ.get("TIDYDESK_NATS_URL"):
            s.nats_url = os.environ["TIDYDESK_NATS_URL"]
            s.notes.append("NATS: TIDYDESK_NATS_URL")
        else:
            assert s.home is not None
            s.nats = EmbeddedNats(s.home)
            s.nats_url = s.nats.start()
            s.notes.append(f"NATS: embedded {s.nats_url}")
        if postgres:
            if os.environ.get("TIDYDESK_DATABASE_URL"):
                s.database_url = os.environ["TIDYDESK_DATABASE_URL"]
                s.notes.append("PostgreSQL: TIDYDESK_DATABASE_URL")
            else:
                assert s.home is not None
                s.postgres = EmbeddedPostgres(s.home)
                s.database_url = s.postgres.start()
                s.notes.append("PostgreSQL: embedded (Unix socket)")
        yield s
    finally:
        if s.nats:
            s.nats.stop()
        if s.postgres:
            s.postgres.stop()
        if s.home:
            shutil.rmtree(s.home, ignore_errors=True)


async def drop_namespace(js: JetStreamContext, ns: str) -> None:
    """Delete every stream, bucket and object store of `ns` (matters on a shared server):
    `<NS>_…` streams, `KV_<ns>_…` and `OBJ_<ns>_…`, whatever jetstream.json defines today."""
    prefixes = (f"{ns.upper()}_", f"KV_{ns}_", f"OBJ_{ns}_")
    names: list[str] = []
    with contextlib.suppress(Exception):
        while page := await js.streams_info(offset=len(names)):
            names.extend(str(i.config.name) for i in page)
    for name in names:
        if name.startswith(prefixes):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)


def stream_config(ns: str) -> dict[str, object]:
    """The event stream's config from services/common/jetstream.json, filled in for `ns`."""
    from tidydesk.common.topology import TOPOLOGY, fill_namespace

    raw = json.loads(TOPOLOGY.read_text())["streams"][0]
    return {k: fill_namespace(v, ns) for k, v in raw.items()}


# -- corpus -------------------------------------------------------------------------------

def _wrap(body: str, *, sender: str, subject: str, message_id: str | None = None,
          in_reply_to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@acme.example"
    msg["Subject"] = subject
    msg["Date"] = formatdate(1_774_000_000, localtime=False)
    msg["Message-ID"] = f"<{message_id}>" if message_id else make_msgid(domain="bench.example")
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


@dataclass(frozen=True)
class Sample:
    """One corpus item: a body and how to address it (raw when it already is a mail)."""

    body: str
    sender: str
    subject: str
    raw: bytes | None = None  # a fixture that already is a whole RFC 5322 mail

    def mail(self, message_id: str | None = None, in_reply_to: str | None = None) -> bytes:
        if self.raw is not None and message_id is None and in_reply_to is None:
            return self.raw
        return _wrap(self.body, sender=self.sender, subject=self.subject,
                     message_id=message_id, in_reply_to=in_reply_to)


_HEADER = re.compile(r"^[!-9;-~]+:|^[ \t]")


def _is_whole_mail(text: str) -> bool:
    """A header block (From: among them) up to the first blank line, then a body."""
    head, sep, _ = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    return bool(sep) and all(_HEADER.match(line) for line in lines) and any(
        line.lower().startswith("from:") for line in lines)


def corpus() -> tuple[list[Sample], dict[str, int]]:
    """Reply-parser fixtures (wrapped in headers unless they are whole mails) and the
    inbound texts of tests/data/scenarios/dev.jsonl; whatever of that exists."""
    samples: list[Sample] = []
    counts = {"fixtures (whole mails)": 0, "fixtures (bodies, wrapped)": 0, "dev.jsonl": 0}
    for path in sorted((DATA / "replies").glob("**/fixtures/*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        text = data.decode("utf-8", "replace")
        if _is_whole_mail(text):
            samples.append(Sample(text, "bench@example.com", path.stem, raw=data))
            counts["fixtures (whole mails)"] += 1
        else:
            samples.append(Sample(text, "Bench Customer <customer@example.com>",
                                  f"Re: {path.stem}"))
            counts["fixtures (bodies, wrapped)"] += 1
    dev = DATA / "scenarios" / "dev.jsonl"
    if dev.exists():
        for line in dev.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            inbound = json.loads(line)["inbound"]
            samples.append(Sample(inbound["text"], inbound["from"], inbound["subject"]))
            counts["dev.jsonl"] += 1
    if not samples:
        samples.append(Sample("Hello, my printer is broken.\n", "a@example.com", "Printer"))
    return samples, counts


# -- figures ------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # nan
        return "n/a"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A small Markdown table."""
    cells = [[str(c) for c in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    """One line saying where the figures come from."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores"
            f"{', ' + model if model else ''}, Python {platform.python_version()}")


class Deadline:
    """A time cap shared by the phases of one script."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def cap(self, seconds: float) -> float:
        """`seconds`, or less when the overall cap is nearer."""
        return min(seconds, self.left())

    def passed(self) -> bool:
        return time.monotonic() >= self.end
