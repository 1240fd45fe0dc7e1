"""The shared text layer: per-language data files, script detection, Korean morphology."""

from __future__ import annotations

import pytest

from tidydesk.policy import ack, topic
from tidydesk.policy.base import FollowUp, PastMessage, TicketView
from tidydesk.policy.content_aware import ContentAware
from tidydesk.text import lexicon
from tidydesk.text.morph import korean_content
from tidydesk.text.normalise import fold, normalize, strip_accents
from tidydesk.text.script import language, language_code


@pytest.mark.parametrize("code", lexicon.CODES)
def test_every_language_file_decodes_into_its_struct(code: str) -> None:
    lang = lexicon.language(code)
    assert lang.code == code and lang.name
    assert lang.markers.ref and lang.markers.new


def test_ack_tables_decode_with_the_same_categories_per_script() -> None:
    tables = lexicon.ack_tables()
    for table in (tables.protected, tables.signals, tables.ack):
        assert table.latin and table.cjk
    assert "thanks" in tables.ack.latin and "thanks" in tables.ack.cjk
    assert {"the", "und", "pour"} <= tables.filler


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("감사합니다", "ko"),
        ("ありがとうございました", "ja"),
        ("谢谢你们", "zh"),
        ("注文番号", "zh"),  # kanji alone cannot be told from Chinese
        ("Thanks, works now", "latin"),
        ("Merci, ça marche", "latin"),
        ("Спасибо, всё работает", "other"),
        ("ขอบคุณครับ", "other"),
        ("12345 !!", ""),
        ("", ""),
    ],
)
def test_language_from_script(text: str, expected: str) -> None:
    assert language(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My invoice was charged twice, can you check it?", "en"),
        ("Meine Rechnung wurde doppelt abgebucht, können Sie das prüfen?", "de"),
        ("Ma facture a été débitée deux fois, pouvez-vous vérifier ?", "fr"),
        ("Mi factura se cobró dos veces, ¿pueden revisarlo?", "es"),
        ("Invoice 4471", "en"),  # no function word: the default
        ("결제가 두 번 됐어요", "ko"),
        ("請求が二重です", "ja"),
        ("发票重复扣款", "zh"),
        ("Счёт списан дважды", ""),  # a script no lexicon covers: unknown, not "en"
        ("", ""),
    ],
)
def test_language_code(text: str, expected: str) -> None:
    assert language_code(text) == expected


def test_normalisation_variants() -> None:
    assert fold("Ünïcode’s ＡＢＣ") == "unicode's abc"
    assert normalize("Straße – “Ja”") == 'straße - "ja"'
    assert strip_accents("Straße") == "Strasse"


@pytest.mark.parametrize(
    ("text", "nouns"),
    [
        ("세금계산서 발행은 어떻게 해야 하나요?", ["세금", "계산서", "발행"]),
        ("두 번째 관리자 계정을 추가하려면 어떻게 하나요?", ["관리자", "계정", "추가"]),
        ("배송지 주소를 변경하고 싶어요", ["배송지", "주소", "변경"]),
        ("해야 하나요? 받아야 할까요? 되나요?", []),
        ("\0환불\0", ["환불"]),  # a NUL must not end the analysis
        ("", []),
    ],
)
def test_korean_content_words_are_nouns_never_endings(text: str, nouns: list[str]) -> None:
    assert korean_content(text) == nouns


PAYMENT = TicketView(
    subject="결제 오류 문의",
    status="solved",
    requester="김민수 <minsu@example.kr>",
    closed_days_ago=3.0,
    messages=(
        PastMessage(author="customer", text="카드 결제가 두 번 됐어요. 한 건은 취소해야 하나요? "
                    "환불은 언제 받아야 하나요?"),
        PastMessage(author="agent", text="안녕하세요 고객님.\n중복 결제 한 건을 취소해 드렸습니다. "
                    "환불은 3~5일 안에 카드사로 들어갑니다.\n감사합니다."),
    ),
)


@pytest.mark.parametrize(
    "reply", ["세금계산서 발행은 어떻게 해야 하나요?", "세금계산서는 어떻게 받아야 하나요?"]
)
def test_verb_endings_are_no_topic_words_shared_with_the_ticket(reply: str) -> None:
    """Issue 10: a tax-invoice question on a payment ticket reopened it because it "shares topic
    words with the ticket: 하나, 해야" - verb endings, present in nearly every Korean mail."""
    text = topic.ticket_text(PAYMENT.subject, [(m.author, m.text) for m in PAYMENT.messages])
    ev = topic.compare(reply, text)
    assert ev.shared == ()
    assert ev.novelty == 1.0
    decision = ContentAware().decide(
        PAYMENT, FollowUp(sender=PAYMENT.requester, subject="Re: 결제 오류 문의", body=reply,
                          reply=reply),
    )
    assert not any("shares topic words" in r for r in decision.reasons), decision.reasons


def test_a_real_shared_noun_still_counts() -> None:
    text = topic.ticket_text(PAYMENT.subject, [(m.author, m.text) for m in PAYMENT.messages])
    ev = topic.compare("환불이 아직 안 들어왔어요", text)
    assert ev.shared == ("환불",)


def test_mail_vocabulary_decodes_for_extraction() -> None:
    mail = lexicon.mail()
    assert set(mail.header_fields) == {"from", "sent", "to", "cc", "subject"}
    assert {"from", "보낸 사람", "差出人", "发件人"} <= set(mail.header_fields["from"])
    assert "감사합니다" in mail.closings


@pytest.mark.parametrize("reply", ["Спасибо!", "ขอบคุณครับ", "شكرا جزيلا"])
def test_a_script_the_lexicons_do_not_cover_reopens_and_says_so(reply: str) -> None:
    found = ack.detect(reply)
    assert not found.is_ack
    assert found.reasons == ("script not covered by the lexicons: reopen",)
