"""MIME parsing into message.received / message.rejected (pure)."""

from __future__ import annotations

from tidydesk.common.events import MessageReceived, MessageRejected
from tidydesk.ingest.parse import message_ids, parse

MB = "support@acme.example"  # the envelope recipient: without one a mail has no tenant


def test_plain_mail_fields_and_reply() -> None:
    raw = (b"From: =?UTF-8?B?6rmA66+87KeA?= <Minji@Example.COM>\r\nTo: support@acme.example\r\n"
           b"Subject: =?UTF-8?B?7ZmY67aIIOusuOydmA==?=\r\nMessage-ID: <abc@mail.example>\r\n"
           b"In-Reply-To: <p1@x>\r\nReferences: <p0@x> <p1@x>\r\n"
           b"Date: Tue, 03 Mar 2026 10:00:00 +0900\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
           "환불은 언제 되나요?\r\n\r\n"
           "2026년 3월 2일 (월) 오후 2:10, Shop <s@acme.example>님이 작성:\r\n"
           "> 주문이 취소되었습니다.\r\n".encode())
    event = parse(raw, mailbox="Support@acme.example")
    assert isinstance(event, MessageReceived)
    assert event.sender == "minji@example.com" and event.sender_name == "김민지"
    assert event.subject == "환불 문의" and event.message_id == "abc@mail.example"
    assert event.in_reply_to == ("p1@x",) and event.references == ("p0@x", "p1@x")
    assert event.reply == "환불은 언제 되나요?" and event.mailbox == "support@acme.example"
    assert event.auto is None and event.date is not None


def test_legacy_charsets_decode() -> None:
    for charset, codec, text in (("euc-kr", "cp949", "감사합니다"),
                                 ("iso-2022-jp", "iso-2022-jp", "ありがとう"),
                                 ("gb2312", "gb18030", "谢谢你"),
                                 ("big5", "big5", "謝謝你")):
        raw = (f"From: a@example.com\r\nContent-Type: text/plain; charset={charset}\r\n\r\n"
               .encode() + text.encode(codec))
        event = parse(raw, mailbox=MB)
        assert isinstance(event, MessageReceived) and event.text.strip() == text, charset


def test_missing_message_id_is_synthesised_from_the_content() -> None:
    raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody"
    first, second = parse(raw, mailbox=MB), parse(b"Received: by relay2\r\n" + raw, mailbox=MB)
    assert isinstance(first, MessageReceived) and isinstance(second, MessageReceived)
    assert first.message_id == second.message_id and first.message_id.endswith(".invalid")
    assert first.message_id == first.content_digest[:32] + "@tidydesk.invalid"
    assert "no Message-ID" in " ".join(first.notes)


def test_malformed_message_ids_are_synthesised_not_rejected() -> None:
    ids = set()
    for value in ("<>", "<<x@y>>", "<a b@c>", "x@y", "<no-at>", "<x@tidydesk.invalid>"):
        raw = f"From: a@example.com\r\nMessage-ID: {value}\r\nSubject: hi\r\n\r\nbody"
        event = parse(raw.encode(), mailbox=MB)
        assert isinstance(event, MessageReceived), value
        assert event.message_id.endswith("@tidydesk.invalid"), value
        assert "malformed Message-ID" in " ".join(event.notes), value
        ids.add(event.message_id)
    assert len(ids) == 6  # the header is part of the content digest
    good = parse(b"From: a@example.com\r\nMessage-ID: <x@y> (c)\r\n\r\nbody", mailbox=MB)
    assert isinstance(good, MessageReceived) and good.message_id == "x@y" and not good.notes


def test_content_digest_ignores_relay_headers_but_not_content() -> None:
    raw = (b"From: a@example.com\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <c1@x>\r\nSubject: hi\r\n\r\nbody\r\n")
    relayed = (b"Received: from mx2 by mx3\r\nDKIM-Signature: v=1; d=x; b=abc\r\n"
               b"Authentication-Results: mx3; dkim=pass\r\n" + raw)
    events = [parse(r, mailbox=MB) for r in (raw, relayed, raw.replace(b"body", b"other"))]
    assert all(isinstance(e, MessageReceived) for e in events)
    digests = [e.content_digest for e in events if isinstance(e, MessageReceived)]
    assert digests[0] == digests[1] != digests[2] and len(digests[0]) == 64


def test_a_mail_without_recipient_mailbox_is_rejected() -> None:
    raw = b"From: a@example.com\r\nTo: undisclosed-recipients:;\r\nSubject: hi\r\n\r\nbody"
    event = parse(raw)
    assert isinstance(event, MessageRejected) and event.reason == "no recipient mailbox"
    # the envelope recipient decides, not the To header
    given = parse(raw.replace(b"undisclosed-recipients:;", b"x@other.example"), mailbox=MB)
    assert isinstance(given, MessageReceived) and given.mailbox == MB


def test_auto_replies_and_bounces_are_flagged() -> None:
    base = "From: a@example.com\r\nTo: support@acme.example\r\nSubject: {s}\r\n{h}\r\nbody"
    assert parse(base.format(s="x", h="Auto-Submitted: auto-replied\r\n").encode()).auto
    assert parse(base.format(s="x", h="Precedence: bulk\r\n").encode()).auto
    assert parse(base.format(s="Out of Office: away", h="").encode()).auto
    assert parse(base.format(s="자동 응답: 휴가", h="").encode()).auto
    assert parse(base.format(s="Printer broken", h="").encode()).auto is None
    dsn = (b"From: MAILER-DAEMON@mx.example\r\nContent-Type: multipart/report; "
           b"report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nfailed\r\n--b--\r\n")
    assert parse(dsn, mailbox=MB).auto


def test_attachments_are_listed() -> None:
    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
           b"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=a.png\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n")
    event = parse(raw, mailbox=MB)
    assert isinstance(event, MessageReceived)
    (att,) = event.attachments
    assert (att.name, att.content_type, att.size) == ("a.png", "image/png", 5)


def test_unusable_mail_is_rejected_with_a_reason() -> None:
    assert isinstance(parse(b""), MessageRejected)
    rejected = parse(b"\x00\xff garbage without headers")
    assert isinstance(rejected, MessageRejected) and "sender" in rejected.reason
    # the envelope sender rescues a mail without From
    assert isinstance(parse(b"Subject: x\r\n\r\nbody", mailbox=MB, envelope_from="b@example.com"),
                      MessageReceived)


def test_reference_lists_are_bounded_and_deduplicated() -> None:
    header = " ".join(f"<id{i}@x>" for i in range(10_000)) + " <id9999@x>"
    ids = message_ids(header)
    assert len(ids) == 100 and ids[-1] == "id9999@x"
