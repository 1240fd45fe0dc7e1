"""Text is made safe once, at the edge: what `parse` returns holds only text that PostgreSQL
`text`/`jsonb`, JSON and every consumer accept, whatever bytes arrived."""

from __future__ import annotations

import base64
import re

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidydesk.common.events import MAX_EVENT_BYTES, Attachment, MessageReceived, MessageRejected
from tidydesk.ingest.parse import parse
from tidydesk.ingest.sanitize import Tally, clean, scrub, text_charset

# What no string of an intake event may hold: C0 but \t \n, DEL, C1, surrogates, U+FFFE/F.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def strings(value: object) -> list[str]:
    """Every string in a decoded JSON document (keys too)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def safe(event: MessageReceived | MessageRejected) -> MessageReceived | MessageRejected:
    """Assert the event encodes (no surrogates) and no string in it holds an unsafe char."""
    encoded = msgspec.json.encode(event)
    assert len(encoded) <= MAX_EVENT_BYTES
    for s in strings(msgspec.json.decode(encoded)):
        assert not UNSAFE.search(s), repr(s)
    return event


def received(raw: bytes) -> MessageReceived:
    event = safe(parse(raw))
    assert isinstance(event, MessageReceived), event
    return event


def mail(head: bytes, body: bytes = b"body") -> bytes:
    return (b"From: Alice <alice@example.com>\r\nTo: support@acme.example\r\n"
            b"Message-ID: <m1@example.com>\r\n" + head + b"\r\n" + body)


# --- clean ---------------------------------------------------------------------------------

def test_clean_removes_controls_and_keeps_tab_and_newline() -> None:
    assert clean("a\x00b\x01c\x1fd\x7fe\x85f\x9fg\th\ni") == "abcdefg\th\ni"
    assert clean("one\r\ntwo\rthree\x0cfour\x0bfive") == "one\ntwo\nthree\nfour\nfive"
    assert clean("x\ufffey\uffffz\U0010ffff") == "xyz"


def test_clean_replaces_lone_surrogates() -> None:
    assert clean("caf\udce9 \ud800x") == "caf\ufffd \ufffdx"
    assert clean(b"caf\xe9".decode("utf-8", "surrogateescape")) == "caf\ufffd"


@pytest.mark.parametrize("text", [
    "환불은 언제 되나요?", "ありがとうございます", "谢谢你的帮助", "שלום עולם", "مرحبا",
    "👩‍💻 ok 🇰🇷", "a\u200db\u200fc\u2028d\ufeff", "Grüße\tnaïve\n€", "\ufffd", "",
])
def test_clean_keeps_ordinary_unicode(text: str) -> None:
    assert clean(text) == text


def test_scrub_walks_every_string_field_and_says_what_it_did() -> None:
    event = MessageReceived(
        message_id="m\x00@x", digest="d", mailbox="s\x01@x", sender="a\x02@x",
        sender_name="A\x00", to=("t\x00@x",), cc=("c\x00@x",), subject="s\x00",
        in_reply_to=("i\x00@x",), references=("r\x00@x",), text="t\x00\ud800", reply="r\x00",
        auto="a\x00", notes=("n\x00",),
        attachments=(Attachment(name="n\x00", content_type="c\x00", size=1, sha256="h"),))
    tally = Tally()
    cleaned = scrub(event, tally)
    assert "\\u0000" not in msgspec.json.encode(cleaned).decode()
    assert cleaned.attachments[0].name == "n" and cleaned.text == "t\ufffd"
    assert tally.note() == ("removed 15 control characters; "
                            "replaced 1 invalid characters with U+FFFD")
    rejected = MessageRejected(digest="d", reason="r")
    tally = Tally()
    assert scrub(rejected, tally) is rejected and tally.note() == ""


# --- charsets ------------------------------------------------------------------------------

@pytest.mark.parametrize("charset", [
    "unicode_escape", "raw-unicode-escape", "utf-7", "UTF7", "unicode-1-1-utf-7", "base64",
    "rot13", "zlib", "hex", "uu", "quopri", "bz2", "idna", "punycode", "undefined", "a\x00b",
])
def test_dangerous_charsets_are_not_used(charset: str) -> None:
    assert text_charset(charset) is None


@pytest.mark.parametrize("charset", ["utf-8", "ISO-8859-1", "euc-kr", "ks_c_5601-1987",
                                     "shift_jis", "utf-16", "x-nonsense", "unknown-8bit"])
def test_real_or_unknown_charsets_pass_through(charset: str) -> None:
    assert text_charset(charset) == charset  # unknown ones: decode_bytes falls back itself


@pytest.mark.parametrize(("charset", "body", "text"), [
    ("unicode_escape", b"a\\x00b \\ud800 c", "a\\x00b \\ud800 c"),
    ("raw_unicode_escape", b"a\\u0000b", "a\\u0000b"),
    ("utf-7", b"+AAA- +2AA- +ADw-script", "+AAA- +2AA- +ADw-script"),
    ("base64", b"aGVsbG8=", "aGVsbG8="),
    ("rot13", b"uryyb", "uryyb"),
    ("zlib", b"x\x9c", "x\u0153"),
    ("hex", b"0041", "0041"),
    ("undefined", b"abc", "abc"),
    ("punycode", b"abc-", "abc-"),
    ("x-nonsense", "caf\u00e9".encode(), "caf\u00e9"),
    ("\"a\x00b\"", b"abc", "abc"),
])
def test_bodies_in_dangerous_charsets_decode_as_plain_bytes(charset: str, body: bytes,
                                                          text: str) -> None:
    event = received(mail(f"Content-Type: text/plain; charset={charset}\r\n".encode(), body))
    assert event.text == text


@pytest.mark.parametrize(("subject", "expected"), [
    (b"=?unicode_escape?Q?=5Cx41=5Cx00?=", "\\x41\\x00"),  # not "A\x00"
    (b"=?utf-7?Q?+ADw-script?=", "+ADw-script"),  # not "<script"
    (b"=?undefined?Q?abc?=", "abc"),
])
def test_encoded_words_in_dangerous_charsets_are_not_interpreted(subject: bytes,
                                                                 expected: str) -> None:
    assert received(mail(b"Subject: " + subject + b"\r\n")).subject == expected


def test_rfc2231_parameter_the_stdlib_cannot_decode_does_not_reject_the_mail() -> None:
    raw = mail(b"Content-Type: multipart/mixed; boundary=b\r\n",
               b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n"
               b"Content-Disposition: attachment; filename*=utf-16''%00\r\n\r\nd\r\n--b--\r\n")
    event = received(raw)
    assert event.text.strip() == "hello" and [a.name for a in event.attachments] == [""]


# --- NUL and friends, before and after decoding ---------------------------------------------

def test_nul_in_plain_body_is_removed_and_noted() -> None:
    event = received(mail(b"Content-Type: text/plain; charset=utf-8\r\n", b"hi\x00there\r\n"))
    assert event.text == "hithere\n" and event.reply == "hithere"
    assert "removed 1 control characters" in event.notes


@pytest.mark.parametrize(("head", "body", "field", "value"), [
    (b"Subject: =?utf-16be?B?AAA=?=\r\n", b"x", "subject", ""),
    (b"Subject: a=?utf-8?Q?=00=01?=b\r\n", b"x", "subject", "ab"),
    (b"Subject: caf\xff\x00\x01\r\n", b"x", "subject", "caf\ufffd"),
    (b"Content-Type: text/plain; charset=utf-16\r\n", "a\x00b".encode("utf-16"), "text", "ab"),
    (b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n",
     b"a=00b=0Dc=0D=0Ad", "text", "ab\nc\nd"),
    (b"Content-Type: text/plain; charset=latin-1\r\n", b"a\x85\x9fb\x7fc", "text", "abc"),
    (b"Content-Type: text/plain; charset=utf-8\r\n", b"a\xff\xed\xa0\x80b", "text",
     "a\u00ff\u00ed\u00a0\u20acb"),
    (b"Content-Type: text/html\r\n", b"<p>x\x00y\x01z</p>", "text", "xyz"),
])
def test_unsafe_characters_after_decoding_are_removed(head: bytes, body: bytes, field: str,
                                                      value: str) -> None:
    assert getattr(received(mail(head, body)), field) == value


def test_nul_in_addresses_names_and_ids() -> None:
    raw = (b"From: =?utf-8?B?" + base64.b64encode(b"Al\x00ice") + b"?= <alice@example.com>\r\n"
           b"To: support@acme.example, =?utf-8?Q?x=00?= <b\x01ob@example.com>\r\n"
           b"Message-ID: <m\x01d@example.com>\r\nIn-Reply-To: <p\x02@x>\r\n"
           b"References: <r\x03@x>\r\nSubject: Out of office\x00\r\n\r\nbody")
    event = received(raw)
    assert event.sender_name == "Alice" and event.message_id == "md@example.com"
    assert event.in_reply_to == ("p@x",) and event.references == ("r@x",)
    assert event.auto == "auto-reply subject 'Out of office'"


def test_attachment_names_and_types() -> None:
    raw = mail(b"Content-Type: multipart/mixed; boundary=b\r\n",
               b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\n"
               b"Content-Type: app/x\x01y\r\n"
               b"Content-Disposition: attachment; filename*=unicode_escape''%5Cx00%5Cud800\r\n"
               b"\r\ndata\r\n--b\r\nContent-Type: application/pdf\r\n"
               b"Content-Disposition: attachment; filename=\"a\x00b.pdf\"\r\n\r\npdf\r\n--b--\r\n")
    names = [a.name for a in received(raw).attachments]
    assert len(names) == 2 and names[1] == "ab.pdf"


def test_overlong_line_and_many_controls_still_fit_one_event() -> None:
    body = b"\x00\x01" * 300_000 + b"a" * 600_000 + b"\r\n" + b"\x1b[31m" * 50_000
    event = received(mail(b"Content-Type: text/plain\r\n", body))
    assert event.text.startswith("aaa")
    assert len(msgspec.json.encode(event)) <= MAX_EVENT_BYTES


def test_rejection_reason_is_clean() -> None:
    event = safe(parse(b"Subject: \x00\r\n\r\nno sender", mailbox="support\x00@acme.example"))
    assert isinstance(event, MessageRejected) and event.mailbox == "support@acme.example"


# --- properties ----------------------------------------------------------------------------

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
CHARSETS = ["utf-8", "utf-16", "utf-16be", "utf-32", "utf-7", "unicode_escape",
            "raw_unicode_escape", "base64", "rot13", "zlib", "hex", "idna", "punycode",
            "undefined", "x-nonsense", "latin-1", "cp1252", "euc-kr", "iso-2022-jp", "gb18030"]
HEADERS = ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References",
           "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Auto-Submitted"]
CONTROLS = st.binary(max_size=60).map(lambda b: bytes(x % 0x20 for x in b))
UNSAFE_BYTES = st.one_of(st.binary(max_size=60), CONTROLS,
                         st.sampled_from([b"\x00", b"=00", b"\\x00", b"\xed\xa0\x80", b"+AAA-",
                                          b"\xff\xfe\x00\x00", b"\xc2\x85", b"\r", b"\x1b"]))


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_give_safe_events(raw: bytes) -> None:
    safe(parse(raw, envelope_from="bounce@example.com"))


@st.composite
def hostile_mail(draw: st.DrawFn) -> bytes:
    head = b""
    for name in draw(st.lists(st.sampled_from(HEADERS), max_size=8)):
        value = b"".join(draw(st.lists(UNSAFE_BYTES, max_size=4)))
        if draw(st.booleans()):  # an encoded word in some charset
            word = b"".join(draw(st.lists(UNSAFE_BYTES, max_size=3)))
            value += (f" =?{draw(st.sampled_from(CHARSETS))}?B?".encode()
                      + base64.b64encode(word) + b"?=")
        head += name.encode() + b": " + value + b"\r\n"
    charset = draw(st.sampled_from(CHARSETS))
    cte = draw(st.sampled_from(["7bit", "8bit", "quoted-printable", "base64"]))
    ctype = draw(st.sampled_from(["text/plain", "text/html"]))
    body = b"".join(draw(st.lists(UNSAFE_BYTES, max_size=10)))
    if cte == "base64":
        body = base64.encodebytes(body)
    return (head + f"Content-Type: {ctype}; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body)


@FUZZ
@given(hostile_mail())
def test_hostile_headers_and_bodies_give_safe_events(raw: bytes) -> None:
    safe(parse(raw, mailbox="support@acme.example", envelope_from="a@example.com"))
