"""Out-of-office detection from the text (examples written for this project)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tidydesk.common.events import Envelope, FollowupRecorded, MessageThreaded, TicketSolved
from tidydesk.ingest.autoreply import detect
from tidydesk.policy.app import AUTO_REASON, decide, decision_events
from tidydesk.tickets.ticket import Ticket

DATA = Path(__file__).resolve().parents[1] / "data" / "autoreply"

AUTO = {
    "en": "Thank you for your email. I am out of the office until Monday, 14 April, with "
          "limited access to email.",
    "de": "Vielen Dank für Ihre Nachricht. Ich bin bis 14.04. nicht im Büro. In dringenden "
          "Fällen wenden Sie sich bitte an support@acme.example.",
    "fr": "Bonjour, je suis absente jusqu'au 14 avril. Je vous répondrai dès mon retour.",
    "es": "Estaré fuera de la oficina hasta el 14 de abril con acceso limitado al correo.",
    "it": "Sono fuori ufficio fino al 14 aprile. Per urgenze scrivere a support@acme.example.",
    "nl": "Ik ben tot en met 14 april afwezig. Voor dringende zaken: support@acme.example.",
    "pt": "Estou fora do escritório até 14 de abril. Responderei quando voltar.",
    "ko": "현재 부재중입니다. 4월 14일에 복귀하여 확인하는 대로 회신드리겠습니다.",
    "ja": "4月14日まで不在にしております。戻り次第ご連絡いたします。",
    "zh": "我目前不在办公室，4月14日返回后会尽快回复您。",
}

HUMAN = [
    "I was out of office last week and now my printer fails — can you help?",
    "I am out of the office until Monday, but please make sure my order ships today.",
    "I am back in the office on Monday. The invoice is still wrong.",
    "Ich war bis gestern im Urlaub und jetzt funktioniert der Drucker nicht mehr.",
    "Estaré fuera de la oficina hasta el lunes, ¿pueden enviarme la factura antes?",
    "4月14日まで不在にしておりますが、注文した商品が届いていません。",
    "我目前不在办公室，但是订单还没到，请帮忙查一下。",
    "고객님 부재로 아파트 경비실에 보관했다고 합니다.",  # the courier's "absent" customer
    "I am out of the office.",  # an absence alone is not enough
    "Thanks for fixing it so quickly. Have a nice holiday!",
]


@pytest.mark.parametrize("lang", sorted(AUTO))
def test_out_of_office_in_each_language(lang: str) -> None:
    why = detect(AUTO[lang])
    assert why is not None and why.startswith("out-of-office text:")


@pytest.mark.parametrize("text", HUMAN)
def test_human_mail_is_not_auto(text: str) -> None:
    assert detect(text) is None


def test_subject_can_carry_the_absence() -> None:
    assert detect("Back on 14 April.", subject="I am on vacation") is not None
    assert detect("Back on 14 April.") is None


def test_long_mail_is_never_auto() -> None:
    assert detect(AUTO["en"] + "\n" + "Details of the order follow. " * 80) is None


def test_data_files() -> None:
    for name, want in (("own_positives", True), ("own_negatives", False)):
        for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            assert (detect(case["text"]) is not None) is want, case["id"]


def test_auto_followup_is_recorded_without_credit() -> None:
    at = datetime(2026, 4, 2, tzinfo=UTC)
    ticket = Ticket(ticket_id="t1")
    ticket.apply(Envelope(id="1", source="t", type="tidydesk.ticket.solved", subject="t1",
                          time=at, data=TicketSolved(ticket_id="t1", agent="kim")))
    m = MessageThreaded(ticket_id="t1", message_id="m2", method="in-reply-to",
                        reply=AUTO["en"], auto="out-of-office text")
    d = decide(ticket, m, at, "always-reopen")
    assert (d.verdict, d.policy, d.reasons[0]) == ("auto", "intake", AUTO_REASON)
    ((event, key),) = decision_events(ticket, m, d, "unused")
    assert isinstance(event, FollowupRecorded) and key == "decision:m2"
    assert not hasattr(event, "credited_agent")
