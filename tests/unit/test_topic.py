"""Marker-free new-topic detection (services.policy.topic) on hand-written pairs and on TIAGE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.policy import topic
from services.policy.base import FollowUp, PastMessage, TicketView
from services.policy.content_aware import ContentAware

TIAGE = Path(__file__).resolve().parents[1] / "data" / "topics" / "tiage.jsonl"

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


def test_soon_after_close_content_alone_does_not_split_but_a_marker_does() -> None:
    subject, first, _, new = PAIRS[0]
    assert not topic.is_new_topic(_ev(subject, first, new), 3.0)
    assert topic.is_new_topic(_ev(subject, first, "Thanks! Separately: " + new), 3.0)
    assert not topic.is_new_topic(_ev(subject, first, new), None)


def test_reference_back_or_empty_ticket_never_splits() -> None:
    subject, first, _, new = PAIRS[0]
    assert not topic.is_new_topic(_ev(subject, first, "As you mentioned last time: " + new), 60.0)
    assert not topic.is_new_topic(topic.compare(new, ""), 60.0)


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
    # measured 0.451 (eval/topics.py, 20 days after close); the previous rule scored 0.271
    assert _tiage_f1() >= 0.43
