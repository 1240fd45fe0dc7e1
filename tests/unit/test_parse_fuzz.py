"""Broken mail thrown at `parse`: always an event (a rejection has a reason), never a raise.

About 10,700 generated messages in all (some examples check two): truncated and mutated
MIME, bad boundaries, invalid encodings and charsets, binary garbage, hostile header
values, 10,000 headers, deeply nested multiparts and huge lines. Every event must also fit
in one NATS message.
"""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidydesk.common.events import MessageReceived, MessageRejected, encode, envelope
from tidydesk.ingest.parse import parse

NATS_MAX_PAYLOAD = 1 << 20


def fuzz(examples: int) -> settings:
    """Example count per strategy; no deadline (2-core CI), no health-check noise."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=list(HealthCheck))

SEEDS = [
    b"From: Alice <alice@example.com>\r\nTo: support@acme.example\r\nSubject: Printer\r\n"
    b"Message-ID: <s1@example.com>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nIt is broken.\r\n\r\n"
    b"On Mon, 2 Mar 2026 at 09:00, Acme <s@acme.example> wrote:\r\n> old text\r\n",
    b"From: =?UTF-8?B?6rmA66+87KeA?= <minji@example.com>\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
    b"--alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 =\r\nsoft break\r\n"
    b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>caf\xc3\xa9</p>"
    b"<blockquote>old</blockquote>\r\n--alt--\r\n",
    b"From: bob@example.com\r\nIn-Reply-To: <p@x>\r\nReferences: <a@x> <p@x>\r\n"
    b"Content-Type: multipart/mixed; boundary=mix\r\n\r\npreamble\r\n--mix\r\n"
    b"Content-Type: text/plain\r\n\r\nsee attached\r\n--mix\r\n"
    b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n\r\n"
    + base64.encodebytes(b"%PDF-1.4 " * 20).replace(b"\n", b"\r\n")
    + b"--mix\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.example\r\nSubject: inner\r\n"
    b"\r\ninner body\r\n--mix--\r\nepilogue\r\n",
    b"From: mailer-daemon@mx.example\r\nAuto-Submitted: auto-replied\r\n"
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n"
    b"--r\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n--r\r\n"
    b"Content-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--r--\r\n",
]

HEADER_NAMES = ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Date",
                "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
                "MIME-Version", "Auto-Submitted", "Precedence", "List-Id", "Reply-To", "X-Junk"]
CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "euc-kr", "iso-2022-jp", "gb2312", "big5",
            "utf-16", "utf-7", "utf-32", "x-unknown", "", "\"", "utf-8\"; x", "cp1252",
            "unicode-1-1-utf-7", "a" * 300, "base64", "../../etc/passwd", "mac-roman"]
ENCODINGS = ["base64", "quoted-printable", "7bit", "8bit", "binary", "x-uuencode", "uuencode",
             "garbage", "", "base64; x=y", "BASE64", "quoted-printable\r\n\tfolded"]
TYPES = ["text/plain", "text/html", "multipart/mixed", "multipart/alternative",
         "message/rfc822", "application/octet-stream", "text/", "/", "", "multipart/",
         "image/png", "text/calendar", "multipart/report", "text/enriched"]
# A field value: printable junk plus the characters that steer header parsers.
VALUE = st.lists(st.sampled_from([*'"<>()@,;:\\[]=?. \t', "a", "é", "\x00", "\x7f", "=?", "?=",
                                  "\r\n ", "b?", "=?utf-8?b?", "x@y.example"]),
                 max_size=30).map("".join)


def check(raw: bytes, **kw: str) -> None:
    event = parse(raw, **kw)
    assert isinstance(event, MessageReceived | MessageRejected)
    if isinstance(event, MessageRejected):
        assert event.reason.strip()
    assert len(encode(envelope(event, subject="fuzz", key="fuzz"))) < NATS_MAX_PAYLOAD


@fuzz(1500)
@given(st.sampled_from(SEEDS), st.data())
def test_truncated_and_mutated(seed: bytes, data: st.DataObject) -> None:
    """Two messages per example: the mutated seed, and it truncated."""
    raw = bytearray(seed)
    for pos, byte in data.draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                        max_size=8)):
        raw[pos % len(raw)] = byte
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(raw)))
        raw[cut:cut] = data.draw(st.binary(max_size=40))
    mailbox = data.draw(st.sampled_from(["", "support+t1@acme.example"]))
    check(bytes(raw), mailbox=mailbox)
    check(bytes(raw[: data.draw(st.integers(0, len(raw)))]), mailbox=mailbox)


@st.composite
def multipart(draw: st.DrawFn) -> tuple[bytes, bytes]:
    declared = draw(st.sampled_from(["b", "", "\"q b\"", "x" * 200, "=?b?=", "--", "\"\"",
                                     "b\r\n", "a;b", "ünï"]))
    used = draw(st.sampled_from([declared.strip('"'), "b", "other", "", "b b", "-"]))
    ctype = draw(st.sampled_from(["multipart/mixed", "multipart/alternative", "multipart/",
                                  "multipart/digest", "multipart/related"]))
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        head = (f"Content-Type: {draw(st.sampled_from(TYPES))}; "
                f"charset={draw(st.sampled_from(CHARSETS))}\r\n"
                f"Content-Transfer-Encoding: {draw(st.sampled_from(ENCODINGS))}\r\n")
        if draw(st.booleans()):
            head += f"Content-Disposition: attachment; filename={draw(VALUE)}\r\n"
        parts.append(head.encode("utf-8", "surrogatepass") + b"\r\n"
                     + draw(st.binary(max_size=200)))
    sep = f"\r\n--{used}\r\n".encode()
    body = draw(st.binary(max_size=30)) + sep + sep.join(parts)
    return (f"From: a@example.com\r\nContent-Type: {ctype}; boundary={declared}\r\n\r\n"
            .encode() + body), f"\r\n--{used}--\r\n".encode()


@fuzz(1200)
@given(multipart())
def test_bad_boundaries_and_parts(mime: tuple[bytes, bytes]) -> None:
    """Two messages per example: without and with a closing boundary."""
    check(mime[0])
    check(mime[0] + mime[1])


@fuzz(2000)
@given(st.sampled_from(CHARSETS), st.sampled_from(ENCODINGS), st.sampled_from(TYPES),
       st.binary(max_size=300), st.sampled_from(CHARSETS), st.sampled_from(["B", "Q", "X", ""]),
       st.binary(max_size=40))
def test_invalid_encodings_and_charsets(charset: str, cte: str, ctype: str, body: bytes,
                                        word_charset: str, word_kind: str, word: bytes) -> None:
    payload = base64.b64encode(word) if word_kind == "B" else word
    encoded = f"=?{word_charset}?{word_kind}?".encode() + payload + b"?="
    raw = (b"From: " + encoded + b" <a@example.com>\r\nSubject: " + encoded + b" tail\r\n"
           + f"Content-Type: {ctype}; charset={charset}\r\n"
             f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body)
    check(raw)


@fuzz(2000)
@given(st.binary(max_size=2000))
def test_binary_garbage(raw: bytes) -> None:
    check(raw, envelope_from="bounce@example.com")


@fuzz(1200)
@given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), VALUE), max_size=12),
       st.binary(max_size=100))
def test_hostile_header_values(headers: list[tuple[str, str]], body: bytes) -> None:
    head = "".join(f"{n}: {v}\r\n" for n, v in headers)
    check(head.encode("utf-8", "surrogatepass") + b"\r\n" + body)


@fuzz(30)
@given(st.integers(1000, 10_000), st.sampled_from(HEADER_NAMES), VALUE)
def test_ten_thousand_headers(count: int, name: str, value: str) -> None:
    line = f"{name}: {value} x@y.example\r\n".encode("utf-8", "surrogatepass")
    check(b"From: a@example.com\r\n" + line * count + b"\r\nbody")


@fuzz(20)
@given(st.integers(1, 600), st.booleans())
def test_deeply_nested_multiparts(depth: int, closed: bool) -> None:
    body = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
                    for i in range(depth))
    body += b"--b%d\r\nContent-Type: text/plain\r\n\r\nhello\r\n" % depth
    if closed:
        body += b"".join(b"--b%d--\r\n" % i for i in range(depth, -1, -1))
    check(b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + body)


@fuzz(30)
@given(st.sampled_from(["From: ", "To: a@x, ", "Subject: ", "Message-ID: <", "References: ",
                        "Content-Type: text/plain; ", "X-Long: ", "", "body"]),
       st.sampled_from(['"a', "<", "(", "a", "=?utf-8?q?a?= ", "<a@b> ", "\xff", "x=y; "]),
       st.integers(100_000, 2_000_000))
def test_huge_lines(where: str, unit: str, size: int) -> None:
    blob = (unit * (size // len(unit))).encode("utf-8", "surrogateescape")
    if where == "body":
        raw = b"From: a@example.com\r\nContent-Type: text/plain\r\n\r\n" + blob
    else:
        raw = b"From: b@example.com\r\n" + where.encode() + blob + b"\r\n\r\nbody"
    check(raw)
