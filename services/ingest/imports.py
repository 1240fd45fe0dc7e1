"""`tidydesk import PATH`: an mbox file or a Maildir directory through Intake, resumably."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import mailbox
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from tqdm import tqdm

from tidydesk.common.events import MessageRejected
from tidydesk.ingest.intake import Intake

log = structlog.get_logger()
CHECKPOINT_EVERY = 2.0  # seconds between checkpoint writes; a replayed tail is only duplicates


@dataclass
class ImportReport:
    """What one run did; `skipped` were done by an earlier run (checkpoint)."""

    total: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0

    def summary(self) -> str:
        text = f"imported {self.imported}, duplicates {self.duplicates}, rejected {self.rejected}"
        return text + (f", skipped {self.skipped} done before" if self.skipped else "")


def checkpoint_file(home: Path, path: Path) -> Path:
    """`<home>/imports/<sha256 of the absolute path>.json`."""
    digest = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return home / "imports" / f"{digest}.json"


def open_source(path: Path) -> tuple[mailbox.Mailbox[Any], list[str]]:
    """The mailbox at `path` and its keys in a stable order (file order; Maildir by name)."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise ValueError(f"{path} is a directory but not a Maildir (no cur/ or new/)")
        box: mailbox.Mailbox[Any] = mailbox.Maildir(path, factory=None, create=False)
        return box, sorted(box.keys())  # unique names begin with the delivery time
    if not path.is_file():
        raise ValueError(f"{path}: no such mbox file or Maildir directory")
    mbox = mailbox.mbox(path, factory=None, create=False)
    return mbox, mbox.keys()  # (ints at run time, in file order)


async def import_path(intake: Intake, path: str | Path, *, progress: bool = True,
                      home: Path | None = None) -> ImportReport:
    """Feed every message of an mbox/Maildir to `intake`; returns the counts.

    With `home`, the count of finished messages (and a digest of the last one) is kept in
    `checkpoint_file(home, path)`, so a rerun skips them; without, intake's dedupe alone
    makes a rerun import nothing new.
    """
    path = Path(path)
    box, keys = await asyncio.to_thread(open_source, path)
    report = ImportReport(total=len(keys))
    state = checkpoint_file(home, path) if home is not None else None
    start = await asyncio.to_thread(_resume_at, box, keys, state)
    report.skipped = start
    saved, last = time.monotonic(), ""
    bar = tqdm(total=len(keys), initial=start, unit="msg", file=sys.stderr,
               disable=not progress, desc=path.name, dynamic_ncols=True)
    done = start
    try:
        for key in keys[start:]:
            raw = await asyncio.to_thread(_raw, box, key)
            event, new = await intake.accept(raw)
            if not new:
                report.duplicates += 1
            elif isinstance(event, MessageRejected):
                report.rejected += 1
            else:
                report.imported += 1
            done, last = done + 1, hashlib.sha256(raw).hexdigest()
            bar.update()
            if state is not None and time.monotonic() - saved > CHECKPOINT_EVERY:
                await asyncio.to_thread(_save, state, path, done, last)
                saved = time.monotonic()
    finally:  # also on failure: what was accepted stays done
        bar.close()
        if state is not None and done > start:
            await asyncio.to_thread(_save, state, path, done, last)
        box.close()
    log.info("import_finished", path=str(path), total=report.total, imported=report.imported,
             duplicates=report.duplicates, rejected=report.rejected, skipped=report.skipped)
    return report


def _raw(box: mailbox.Mailbox[Any], key: str) -> bytes:
    return box.get_bytes(key)


def _resume_at(box: mailbox.Mailbox[Any], keys: list[str], state: Path | None
               ) -> int:
    """Where the last run stopped, if the source still holds the same messages up to there."""
    if state is None or not state.exists():
        return 0
    try:
        saved = json.loads(state.read_text())
        done, last = int(saved["done"]), str(saved["last"])
    except (ValueError, KeyError, TypeError, OSError):
        return 0
    if not 0 < done <= len(keys):
        return 0
    if hashlib.sha256(_raw(box, keys[done - 1])).hexdigest() != last:
        log.warning("import_source_changed", state=str(state))
        return 0  # rewritten since: start over, intake refuses what it already has
    return done


def _save(state: Path, path: Path, done: int, last: str) -> None:
    state.parent.mkdir(parents=True, exist_ok=True)
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps({"path": str(path.resolve()), "done": done, "last": last}))
    os.replace(tmp, state)


async def _run(path: Path, progress: bool) -> ImportReport:
    from tidydesk.common.runtime import open_bus
    from tidydesk.common.settings import Settings
    from tidydesk.common.store import JetStreamEventStore, RawStore, close

    settings = Settings.from_env()
    nc, js = await open_bus(settings, "tidydesk-import")
    try:
        intake = Intake(JetStreamEventStore(js, settings.namespace),
                        RawStore(js, settings.namespace))
        return await import_path(intake, path, progress=progress, home=settings.home)
    finally:
        await close(nc)


def main(argv: list[str]) -> int:
    """`tidydesk import PATH [--no-progress]`."""
    from tidydesk.common import log as logsetup
    from tidydesk.common.settings import Settings

    parser = argparse.ArgumentParser(
        prog="tidydesk import",
        description="Import an mbox file or a Maildir directory into a running stack "
                    "(TIDYDESK_NATS_URL). Safe to rerun: it resumes, and mail already "
                    "there is recognised as a duplicate.")
    parser.add_argument("path", type=Path, help="mbox file or Maildir directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    if not args.path.exists():
        print(f"tidydesk import: {args.path}: no such mbox file or Maildir directory",
              file=sys.stderr)
        return 2
    settings = Settings.from_env()
    if not settings.nats_url:
        print("tidydesk import: needs TIDYDESK_NATS_URL (the one `tidydesk up` prints)",
              file=sys.stderr)
        return 2
    logsetup.configure(settings.log_format, "warning")  # one line per mail would bury the bar
    try:
        report = asyncio.run(_run(args.path, not args.no_progress))
    except (ValueError, OSError, mailbox.Error) as exc:
        print(f"tidydesk import: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
