"""MIME parsing into message.received / message.rejected (pure)."""

from __future__ import annotations

from services.common.events import MessageReceived, MessageRejected
from services.ingest.parse import message_ids, parse


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
        event = parse(raw)
        assert isinstance(event, MessageReceived) and event.text.strip() == text, charset


def test_missing_message_id_is_synthesised_from_bytes() -> None:
    raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody"
    first, second = parse(raw), parse(raw)
    assert isinstance(first, MessageReceived) and isinstance(second, MessageReceived)
    assert first.message_id == second.message_id and first.message_id.endswith(".invalid")
    assert "no Message-ID" in " ".join(first.notes)


def test_auto_replies_and_bounces_are_flagged() -> None:
    base = "From: a@example.com\r\nSubject: {s}\r\n{h}\r\nbody"
    assert parse(base.format(s="x", h="Auto-Submitted: auto-replied\r\n").encode()).auto
    assert parse(base.format(s="x", h="Precedence: bulk\r\n").encode()).auto
    assert parse(base.format(s="Out of Office: away", h="").encode()).auto
    assert parse(base.format(s="자동 응답: 휴가", h="").encode()).auto
    assert parse(base.format(s="Printer broken", h="").encode()).auto is None
    dsn = (b"From: MAILER-DAEMON@mx.example\r\nContent-Type: multipart/report; "
           b"report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nfailed\r\n--b--\r\n")
    assert parse(dsn).auto


def test_attachments_are_listed() -> None:
    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
           b"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=a.png\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n")
    event = parse(raw)
    assert isinstance(event, MessageReceived)
    (att,) = event.attachments
    assert (att.name, att.content_type, att.size) == ("a.png", "image/png", 5)


def test_unusable_mail_is_rejected_with_a_reason() -> None:
    assert isinstance(parse(b""), MessageRejected)
    rejected = parse(b"\x00\xff garbage without headers")
    assert isinstance(rejected, MessageRejected) and "sender" in rejected.reason
    # the envelope sender rescues a mail without From
    assert isinstance(parse(b"Subject: x\r\n\r\nbody", envelope_from="b@example.com"),
                      MessageReceived)


def test_reference_lists_are_bounded_and_deduplicated() -> None:
    header = " ".join(f"<id{i}@x>" for i in range(10_000)) + " <id9999@x>"
    ids = message_ids(header)
    assert len(ids) == 100 and ids[-1] == "id9999@x"
