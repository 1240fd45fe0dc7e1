"""The SMTP listener's fast MAIL FROM / RCPT TO path reader agrees with aiosmtpd's parser."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from tidydesk.ingest.smtp import _PLAIN_PATH, LongLineSMTP


def readers(limit: int = 0) -> tuple[SMTP, LongLineSMTP]:
    ours, theirs = LongLineSMTP.__new__(LongLineSMTP), SMTP.__new__(SMTP)
    ours.local_part_limit = theirs.local_part_limit = limit
    return theirs, ours


CASES = ["<a@b.com>", "<a@b.com> SIZE=10 BODY=8BITMIME", " <a.b+c@x-y.example>  SIZE=1",
         "<a@b.com>SIZE=1", "<a..b@c>", "<>", "a@b.com", '<"q"@b>', "<a@[1.2.3.4]>",
         "<a@b.com> (comment) X=1", "<a@b.com >", "<.a@b>", "<a@b.com> SIZE=1 ",
         "<a@b.com>\tX=1", "<ü@b.com>", "<a@b.com>> X", "<a@@b.com>", "<a@b..com>", ""]


@pytest.mark.parametrize("arg", CASES)
def test_fast_path_reads_as_aiosmtpd_does(arg: str) -> None:
    theirs, ours = readers()
    assert ours._getaddr(arg) == theirs._getaddr(arg)


def test_plain_paths_take_the_fast_path() -> None:
    assert _PLAIN_PATH.fullmatch("<kim.lee+x@mail.example.com> SIZE=2048")
    assert not _PLAIN_PATH.fullmatch('<"kim lee"@example.com>')
    assert not _PLAIN_PATH.fullmatch("<>")


def test_local_part_limit_still_applies() -> None:
    theirs, ours = readers(limit=4)
    assert ours._getaddr("<abcdef@b.com>") == theirs._getaddr("<abcdef@b.com>") == (None, None)
    assert ours._getaddr("<abcd@b.com>") == ("abcd@b.com", "")


def outcome(reader: SMTP, arg: str) -> object:
    """What reading `arg` gives, or the type of what it raised (aiosmtpd's parser raises
    IndexError on a lone '<': the fast path must not change that either)."""
    try:
        return reader._getaddr(arg)
    except Exception as exc:  # compared, not handled
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab.@<>-+ \t()\"\\=1_", max_size=24))
def test_any_line_reads_as_aiosmtpd_does(arg: str) -> None:
    theirs, ours = readers()
    assert outcome(ours, arg) == outcome(theirs, arg)
