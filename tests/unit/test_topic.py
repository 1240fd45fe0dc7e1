"""Marker-free new-topic detection (tidydesk.policy.topic) on hand-written pairs and on TIAGE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.split import is_held_out
from tidydesk.policy import topic
from tidydesk.policy.base import FollowUp, PastMessage, TicketView
from tidydesk.policy.content_aware import ContentAware

TOPICS = Path(__file__).resolve().parents[1] / "data" / "topics"
TIAGE = TOPICS / "tiage.jsonl"

# (ticket subject, customer's first message, same-matter follow-up, unrelated new question)
PAIRS = [
    (
        "Refund for the returned blender",
        "I sent the blender back last week, when do I get my refund?",
        "When will the blender refund reach my credit card?",
        "Can I add a second user to my subscription plan?",
    ),
    (
        "Lieferung verspätet",
        "Mein Paket mit dem Kinderwagen ist seit einer Woche unterwegs.",
        "Der Kinderwagen ist immer noch nicht da. Wo ist das Paket?",
        "Kann ich die Rechnungsadresse für mein Abonnement ändern?",
    ),
    (
        "청바지 환불 요청",
        "지난주에 반품한 청바지 환불 요청드립니다.",
        "청바지 환불은 언제 입금되나요?",
        "앱에서 비밀번호를 변경하려면 어떻게 해야 하나요?",
    ),
    (
        "配送遅延について",
        "注文した料理本がまだ届きません。",
        "料理本の配送状況はいかがでしょうか？",
        "会員登録のメールアドレスを変更できますか？",
    ),
    (
        "退款问题",
        "退货以后退款一直没有到账。",
        "退款什么时候能到账？",
        "会员积分可以兑换优惠券吗？",
    ),
]


def _ev(subject: str, first: str, reply: str) -> topic.TopicEvidence:
    return topic.compare(reply, topic.ticket_text(subject, [("customer", first)]))


@pytest.mark.parametrize(("subject", "first", "same", "new"), PAIRS)
def test_new_question_is_a_new_topic_and_same_matter_is_not(
    subject: str, first: str, same: str, new: str
) -> None:
    assert topic.is_new_topic(_ev(subject, first, new), 20.0), new
    assert not topic.is_new_topic(_ev(subject, first, same), 20.0), same
    assert not topic.is_new_topic(_ev(subject, first, same), 90.0), same


@pytest.mark.parametrize(
    "reply",
    ["It still doesn't work.", "Any update?", "아직도 안 돼요.", "まだですか？", "还是不行。"],
)
def test_short_replies_without_content_never_split(reply: str) -> None:
    for subject, first, *_ in PAIRS:
        assert not topic.is_new_topic(_ev(subject, first, reply), 120.0)


# The owners' reported misses, re-phrased: (subject, customer, agent, unrelated new request,
# same-matter follow-up). Plain questions sent right after the solve, no "by the way".
OWNER_CASES = [
    ("Card payment failed", "My card payment for the yearly plan was declined twice.",
     "Thanks for waiting. The bank had blocked it; we retried and the payment went through.",
     "Can you send me a tax invoice with our company VAT number on it?",
     "Will the two declined payment attempts be charged to my card?"),
    ("Cannot export report", "Exporting the monthly report to Excel gives an empty file.",
     "This was a bug in version 4.2; it is fixed in 4.3, please update.",
     "How do I add a second admin user to our workspace?",
     "After updating to 4.3 the Excel export of the report is still empty."),
    ("Refund for cancelled order", "I cancelled my order of the desk lamp, when is my refund?",
     "The refund for the desk lamp was issued today and reaches your card in 3-5 days.",
     "I moved last month. How can I change the billing address on my account?",
     "The lamp refund has not reached my card after five days."),
    ("결제 실패 문의", "연간 요금제 카드 결제가 두 번 거절되었습니다.",
     "카드사에서 차단했던 건으로, 다시 시도하여 결제가 완료되었습니다.",
     "회사 제출용으로 세금계산서를 발행받을 수 있나요? 사업자등록번호를 넣어야 해요.",
     "거절된 결제 두 건이 카드에서 빠져나가지는 않겠죠?"),
    ("보고서 내보내기 오류", "월간 보고서를 엑셀로 내보내면 빈 파일이 나옵니다.",
     "4.2 버전의 오류였고 4.3에서 수정되었습니다. 업데이트 부탁드립니다.",
     "관리자 계정을 하나 더 추가하려면 어떻게 해야 하나요?",
     "4.3으로 업데이트했는데 엑셀 보고서 파일이 여전히 비어 있습니다."),
    ("주문 취소 환불", "책상 스탠드 주문을 취소했는데 환불은 언제 되나요?",
     "오늘 환불 처리되었고 카드사에 따라 3-5일 걸립니다.",
     "이번에 이사를 해서 배송지 주소를 변경하고 싶은데 어디서 바꾸나요?",
     "스탠드 환불이 5일이 지났는데 아직 카드에 안 들어왔어요."),
]


def _owner_ticket(subject: str, first: str, answer: str, days: float | None) -> TicketView:
    return TicketView(subject=subject, status="solved", requester="", closed_days_ago=days,
                      messages=(PastMessage(author="customer", text=first),
                                PastMessage(author="agent", text=f"Hello,\n{answer}\nSupport")))


@pytest.mark.parametrize(("subject", "first", "answer", "new", "same"), OWNER_CASES)
@pytest.mark.parametrize("days", [1.0, 10.0, 60.0, None])
def test_unrelated_plain_question_splits_even_soon_after_close(
    subject: str, first: str, answer: str, new: str, same: str, days: float | None
) -> None:
    ticket = _owner_ticket(subject, first, answer, days)
    decide = ContentAware().decide
    split = decide(ticket, FollowUp(sender="", subject="", body=new, reply=new))
    assert split.verdict == "split", (new, split.reasons)
    kept = decide(ticket, FollowUp(sender="", subject="", body=same, reply=same))
    assert kept.verdict == "reopen", (same, kept.reasons)


def test_korean_endings_are_no_topic_words() -> None:
    for text in ("하나요 해야 합니다 할까요 되나요 있나요", "추가하려면 어떻게 해야 하나요"):
        assert not topic.units(text) & {"하나", "해야", "합니", "할까", "되나", "있나", "어떻"}
    assert topic.units("배송지를 변경하고 싶어요") == {"배송지", "변경"}  # whole nouns
    assert topic.units("ご確認ください。です。ます。") == set()


def test_a_marker_splits_soon_after_close() -> None:
    subject, first, _, new = PAIRS[0]
    assert topic.is_new_topic(_ev(subject, first, "Thanks! Separately: " + new), 3.0)


def test_reference_back_or_empty_ticket_never_splits() -> None:
    subject, first, _, new = PAIRS[0]
    assert not topic.is_new_topic(_ev(subject, first, "As you mentioned last time: " + new), 60.0)
    assert not topic.is_new_topic(topic.compare(new, ""), 60.0)


def test_a_reply_taking_up_the_agents_answer_is_no_new_topic() -> None:
    text = topic.ticket_text("", [
        ("customer", "I need a hotel in the north."),
        ("agent", "Acorn House and Kirkwood House are in the north. Which one would you like?"),
    ])
    picked = topic.compare("Can you book Kirkwood House for 3 nights?", text)
    assert picked.asked and picked.shared_last == 2.0  # "kirkw", "house" of the last message
    assert not topic.is_new_topic(picked, 2.0)
    new = topic.compare("Can you tell me if there are any cinemas in the west part of town?", text)
    assert new.new_referent and not new.shared_last
    assert topic.is_new_topic(new, 2.0)
    assert topic.compare("好，评分高吗？", text).answer  # "OK, is it rated well?" answers
    assert not topic.compare("Any update?", text).new_referent  # a chaser names no new thing


def test_giving_what_the_agent_asked_for_is_an_answer() -> None:
    text = topic.ticket_text("", [("customer", "I want to book a bus to Long Beach."),
                                  ("agent", "What day would you like to leave?")])
    assert topic.compare("I'd like to leave on the 8th and I need 2 tickets.", text).answered
    assert not topic.compare("Can you find me a hotel in Paris?", text).answered
    asked_where = topic.ticket_text("", [("agent", "Where would you like to go?")])
    assert topic.compare("I need to go to Sacramento.", asked_where).answered
    assert not topic.compare("I need to go to the hotel.", asked_where).answered


def test_a_follow_up_about_the_thing_discussed_is_no_new_topic() -> None:
    text = topic.ticket_text("", [
        ("customer", "I'm looking for a seafood restaurant in the centre."),
        ("agent", "The Fishbone Grill on Mill Road serves seafood in the centre."),
    ])
    attribute = topic.compare("Can you give me the postcode and the phone number?", text)
    booking = topic.compare("Please reserve a table for 6 people on Friday at 19:00.", text)
    other = topic.compare("Could you find me something cheaper instead?", text)
    assert attribute.definite_attribute and booking.booking and other.alternative
    for ev in (attribute, booking, other):
        assert not topic.is_new_topic(ev, 2.0), ev
    new = topic.compare("I need a train to London on Saturday morning.", text)
    assert not (new.definite_attribute or new.booking or new.alternative)
    assert topic.is_new_topic(new, 2.0)
    # a new matter brings its own thing: "my billing address" is no attribute of the ticket's
    assert not topic.compare("How do I change my billing address?", text).definite_attribute
    assert not topic.compare("Can I book a demo of the app?", text).booking  # no party size
    assert topic.compare("再帮我找一家便宜点的。", text).alternative  # "find me another, cheaper"


def test_the_bare_object_of_a_request_is_a_new_thing() -> None:
    text = topic.ticket_text("", [("customer", "I want to rent a car in Denver."),
                                  ("agent", "A compact car from Hertz costs $40 a day.")])
    for reply in ("Can you please book me bus tickets?", "I'm looking for attractions to visit."):
        ev = topic.compare(reply, text)
        assert ev.new_referent, reply
        assert topic.is_new_topic(ev, 2.0), reply
    for reply in ("Can you book it for Friday?", "I need three.", "Where do I get off?"):
        assert not topic.compare(reply, text).new_referent, reply


def _tiage_f1() -> float:
    policy, tp, fp, fn = ContentAware(), 0, 0, 0
    for line in TIAGE.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["set"] != "test":
            continue
        utts, bounds, start = row["utterances"], set(row["boundaries"]), 0
        for i in range(1, len(utts)):
            ticket = TicketView(
                subject="", status="solved", requester="", closed_days_ago=20.0,
                messages=tuple(PastMessage(author="customer", text=u) for u in utts[start:i]),
            )
            reply = FollowUp(sender="", subject="", body=utts[i], reply=utts[i])
            split, gold = policy.decide(ticket, reply).verdict == "split", i in bounds
            tp, fp, fn = tp + (split and gold), fp + (split and not gold), fn + (gold and not split)
            start = i if i in bounds else start
    return 2 * tp / (2 * tp + fp + fn)


def test_tiage_test_set_new_topic_f1() -> None:
    # measured 0.219 (eval/topics.py, 20 days after close): persona chit-chat drifts without a
    # new request, which the stitched-fitted score no longer calls new (0.451 before it)
    assert _tiage_f1() >= 0.19


def _stitched_held_out() -> tuple[float, float]:
    """(shift recall, continuation split rate) on the held-out stitched cases, 2 days after."""
    policy, cases, hit, false = ContentAware(), 0, 0, 0
    for path in sorted(TOPICS.glob("stitched_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            if not is_held_out(case["id"]):
                continue
            ticket = TicketView(
                subject="", status="solved", requester="", closed_days_ago=2.0,
                messages=tuple(PastMessage(author=m["from"], text=m["text"])
                               for m in case["ticket"]["messages"]),
            )
            verdict = {k: policy.decide(ticket, FollowUp(
                sender="", subject="", body=case[k]["text"], reply=case[k]["text"])).verdict
                for k in ("shift", "continuation")}
            cases += 1
            hit += verdict["shift"] == "split"
            false += verdict["continuation"] == "split"
    return hit / cases, false / cases


def test_stitched_held_out_shift_recall_and_continuation_split_rate() -> None:
    # measured 0.781 / 0.049 (eval/topic_shift.py, held-out part "all", 2 days after close)
    recall, continuation = _stitched_held_out()
    assert recall >= 0.75
    assert continuation <= 0.06
