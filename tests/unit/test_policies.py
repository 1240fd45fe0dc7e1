"""Follow-up policies: registry, behaviour of each policy, the classify CLI, SGD regression."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tidydesk import classify
from tidydesk.policy.ack import detect
from tidydesk.policy.always_reopen import AlwaysReopen
from tidydesk.policy.base import Decision, FollowUp, PastMessage, Policy, TicketView
from tidydesk.policy.content_aware import ContentAware
from tidydesk.policy.registry import DEFAULT_POLICY, POLICIES, get_policy
from tidydesk.policy.time_window import TimeWindow

DATA = Path(__file__).resolve().parents[1] / "data"


def fu(reply: str, *, sender: str = "", auto: bool = False) -> FollowUp:
    return FollowUp(sender=sender, subject="Re: your request", body=reply, reply=reply, auto=auto)


def tv(
    subject: str = "",
    *messages: tuple[str, str],
    days: float | None = 2.0,
) -> TicketView:
    return TicketView(
        subject=subject,
        status="solved",
        requester="Customer <c@example.org>",
        messages=tuple(PastMessage(author=a, text=t) for a, t in messages),  # type: ignore[arg-type]
        closed_days_ago=days,
    )


# ----------------------------------------------------------------------------- registry


def test_registry_lists_the_three_policies() -> None:
    assert {"always-reopen", "time-window", "content-aware"} <= set(POLICIES)
    assert DEFAULT_POLICY == "content-aware"
    for name, policy in POLICIES.items():
        assert get_policy(name) is policy
        assert policy.name == name and policy.version


def test_unknown_policy_names_the_known_ones() -> None:
    with pytest.raises(KeyError) as info:
        get_policy("reopen-never")
    message = str(info.value)
    assert "reopen-never" in message
    for name in POLICIES:
        assert name in message


class _Dummy:
    name = "dummy"
    version = "0"

    def decide(self, ticket: TicketView, message: FollowUp) -> Decision:
        return Decision(verdict="split", confidence=1.0, reasons=("dummy",), policy="dummy",
                        version="0")


def test_new_policy_needs_only_a_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing in tidydesk.ingest (or anywhere else) changes: one entry in POLICIES is enough,
    # and the offline CLI resolves it by name like any built-in policy.
    monkeypatch.setitem(POLICIES, "dummy", _Dummy())
    assert get_policy("dummy").decide(tv(), fu("hi")).verdict == "split"
    monkeypatch.setattr("sys.stdin", io.StringIO('{"id": "1", "text": "hello"}\n'))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert classify.main(["--policy", "dummy", "--jsonl"]) == 0
    assert json.loads(out.getvalue())["policy"] == "dummy"


# ----------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("policy", list(POLICIES.values()), ids=list(POLICIES))
def test_auto_replies_never_reopen(policy: Policy) -> None:
    for text in ("I am out of the office until Monday.", "Still broken!", ""):
        decision = policy.decide(tv(days=90), fu(text, auto=True))
        assert decision.verdict == "acknowledge"
        assert decision.reasons == ("auto-reply",)


def test_always_reopen_reopens_every_human_reply() -> None:
    for text in ("Thanks!", "ありがとう", "Unrelated: do you ship to Oslo?"):
        d = AlwaysReopen().decide(tv(days=200), fu(text))
        assert (d.verdict, d.policy, d.version) == ("reopen", "always-reopen", "1")


def test_time_window_splits_after_the_window() -> None:
    policy = TimeWindow()
    assert policy.decide(tv(days=3), fu("Thanks")).verdict == "reopen"
    late = policy.decide(tv(days=45), fu("Thanks"))
    assert late.verdict == "split" and "45 days" in late.reasons[0]
    assert policy.decide(tv(days=None), fu("?")).verdict == "reopen"  # unknown -> reopen
    assert TimeWindow(days=7).decide(tv(days=10), fu("x")).verdict == "split"
    with pytest.raises(ValueError):
        TimeWindow(days=-1)


# ----------------------------------------------------------------------------- acknowledgement

ACKS = [
    "Thank you so much, that fixed it!",
    "Works now. Cheers!",
    "Got the refund today, thanks a lot.",
    "Understood, thanks for letting me know.",
    "Never mind, I found the invoice in my account. Thanks anyway!",
    "That's a shame, but I understand. Thanks for checking.",
    "Perfect, thanks! No need to reply.",
    "🙏🙏",
    "Vielen Dank für die schnelle Hilfe!",
    "Alles klar, danke schön.",
    "Merci beaucoup, c'est réglé !",
    "Bien reçu, merci !",
    "Perfecto, ya funciona. Gracias.",
    "Recebi, obrigada!",
    "Grazie mille, tutto risolto!",
    "Dank je wel, het werkt weer!",
    "네 감사합니다~",
    "덕분에 잘 해결됐어요. 고맙습니다!",
    "환불 잘 받았습니다. 수고하세요~",
    "아 그렇군요. 아쉽지만 알겠습니다. 답변 감사합니다.",
    "承知いたしました。ありがとうございました。",
    "無事に届きました。ありがとうございました。",
    "ご丁寧にありがとうございます。今後ともよろしくお願いいたします。",
    "好的，谢谢！",
    "已经解决了，非常感谢！",
    "明白了，辛苦了！",
    "That 's all . Thank you !",  # tokenised contractions, as some clients and corpora write
    "No, I think that covers everything. Thanks so much!",
    "好的，谢谢，我没有其它问题了！",
    "清楚了，非常感谢你。",
    # structure, not listed phrases: a modal is no content, a need hanging on a closing is
    # part of it, a declined action with a deferral is a decline
    "Great, that should be fine, thank you.",
    "Thanks, I think that takes care of everything we needed for the launch.",
    "That covers everything I need, cheers!",
    "We don't want to upgrade the plan right now, thanks.",
    "十分感谢你的建议。",  # a degree adverb before the thanks that leads the clause
    "好的，价格很合理，谢谢。",  # a short subject with a positive predicate is a remark
    "我很满意，谢谢你们。",
    "太好了，你们解决了我的问题，谢谢！",
    "Thanks, we'll email you again if we need any more help.",  # contact on a need to come
    "I guess that seems to be everything, thanks.",  # hedges carry no content
    "No thanks. Good night.",
    "We're not ready to switch plans right now, thanks.",
    "I don't think we need anything else, thanks!",
    "Thanks, I'll book the follow-up later. That's all for now.",  # the customer's own action
    "That's everything but thanks for asking.",  # markers, then the thanked object
    "Thanks, but we're all set.",  # a contrast whose whole tail closes contrasts nothing
    "Thanks for looking into it though.",
    "친절한 안내 감사합니다",  # Korean and Japanese thank last: the noun phrase is the object
    "더 필요한 건 없어요. 감사합니다.",  # negated need: nothing more is needed
    "네 충분합니다. 감사합니다!",
    "예약은 나중에 할게요. 감사합니다.",  # a deferral
    "아니요 그게 전부입니다",
    "안내해 주셔서 감사합니다",  # '-주셔서' gives the reason for thanks, not a request
    "아니요, 더 이상 궁금한 건 없어요.",
    "調べていただいてありがとうございます。",  # '-ていただき' likewise
    "谢谢你帮我改好了。",  # a completed favour (了), not a request
    "いえ、特にありません。ありがとうございました。",
    "予約は結構です。ありがとうございました。",
    "それは良かったです。ありがとうございました。",
]

NOT_ACKS = [
    "Thanks, but it's still not working.",
    "Thanks! When will the refund arrive?",
    "Thank you. Could you also send me the receipt?",
    "Thanks. I was charged twice though.",
    "Thanks, I'd appreciate it if you could escalate this.",
    "Thank you in advance for checking.",
    "Sure, go ahead and refund it.",
    "Yes.",
    "No.",
    "Hello",
    "Danke, aber es funktioniert immer noch nicht.",
    "Merci de me rembourser rapidement.",
    "Gracias. ¿Cuándo llega el reembolso?",
    "Obrigado, mas ainda não recebi.",
    "Grazie, ma non funziona ancora.",
    "Bedankt, maar het werkt nog steeds niet.",
    "감사합니다. 근데 영수증은 어디서 받나요?",
    "답변 감사한데 여전히 결제가 안 돼요.",
    "교환해 주시면 감사하겠습니다.",
    "감사합니다. 다만 쿠폰이 적용되지 않았습니다.",
    "ありがとうございます。ただ、まだ届いていません。",
    "ご対応ありがとうございます。別件ですが、住所変更をしたいです。",
    "谢谢，但是还是不能登录。",
    "谢谢！另外我想问一下发票的事。",
    "Thanks 😡",
    "Italian would be nice thank you",  # a trailing thanks does not make an answer gratitude
    "Thanks, that's all. My new address is Baker Street and the parcel went to the old one.",
    "Thanks, that's all for now. I moved house last week and the courier keeps going there.",
    "太好了，那把这个酒店的地址给我一下。",
    "好的，收到，我要找个可以接待外宾的高档型酒店。",
    "That would be great, thanks.",  # 'would be' accepts an offer: it may start work
    "Monday would be best.",  # an answer, not the sign-off 'Best,'
    "I don't want to wait any longer, thanks.",  # no deferral: a complaint
    "I don't need the manual now, I need the charger that was missing.",
    "No, I don't.",  # a bare negated answer may deny receipt: reopen
    "谢谢，那家店的地址和营业时间。",  # the thanks ends at the comma: a request follows
    "The second option sounds good, thanks.",  # picks an offer
    "Thanks, I will ask if the courier can come on Monday.",  # an indirect question
    "If the refund is not there tomorrow I will call you, thanks.",
    "I will need you to book the room, thanks.",
    "That's all. Book the room for Friday.",
    "Thanks, but the label you sent is for the old address.",
    "Thanks though, the app logs me out every hour.",
    "주소 좀 알려주세요 감사합니다",
    "빠른 답변 감사하겠습니다",  # prospective '-겠-': 'I would appreciate', a request
    "教えてください。ありがとうございます。",
    "谢谢你帮我查一下价格。",
    "아니요 없어요.",  # a bare 'no, there is none' may answer a question: reopen
    "그게 다예요?",
    "결제가 두 번 됐어요 감사합니다",  # a finished sentence before the thanks is not its object
    "それで結構ですが、領収書も送ってください。",
]


@pytest.mark.parametrize("text", ACKS)
def test_acknowledgements(text: str) -> None:
    result = detect(text)
    assert result.is_ack, result.reasons
    decision = ContentAware().decide(tv(days=1), fu(text))
    assert decision.verdict == "acknowledge"
    assert decision.policy == "content-aware" and decision.version == "1"
    assert decision.reasons and 0.5 < decision.confidence <= 1.0


@pytest.mark.parametrize("text", NOT_ACKS)
def test_not_acknowledgements(text: str) -> None:
    assert not detect(text).is_ack
    assert ContentAware().decide(tv(days=1), fu(text)).verdict != "acknowledge"


def test_signoff_name_is_ignored() -> None:
    sender = "Marta Kowalski <marta@example.org>"
    assert detect("Thanks, all good now!\n\nMarta", sender).is_ack
    assert detect("감사합니다!\n\n김하늘 드림", "김하늘 <sky@example.kr>").is_ack


# ----------------------------------------------------------------------------- reopen / split

REFUND_TICKET = tv(
    "Refund for order KX-77812",
    ("customer", "I returned the blender from order KX-77812, where is my refund?"),
    ("agent", "Hi Sam,\nThe refund of 54.90 for the blender was issued today.\nBest,\nLee\nAcme"),
    days=40,
)


def test_same_issue_weeks_later_reopens() -> None:
    d = ContentAware().decide(REFUND_TICKET, fu("The blender refund still hasn't arrived."))
    assert d.verdict == "reopen"
    assert any("blend" in r or "refun" in r for r in d.reasons)
    by_id = ContentAware().decide(REFUND_TICKET, fu("Any news about KX-77812? Nothing yet."))
    assert by_id.verdict == "reopen" and "KX77812" in by_id.reasons[-1]


def test_unrelated_topic_long_after_close_splits() -> None:
    d = ContentAware().decide(
        REFUND_TICKET, fu("My new vacuum cleaner makes a loud rattling noise when switched on.")
    )
    assert d.verdict == "split"
    assert "40 days after close" in d.reasons[-1]


def test_new_topic_marker_splits_even_days_later() -> None:
    ticket = tv("Login problem", ("customer", "I cannot log in"), days=1)
    for text in (
        "It works, thanks! Separately, can I change the billing address on my plan?",
        "해결됐어요. 그리고 별개로 문의드릴 게 있는데, 영수증 발급 되나요?",
        "ありがとうございます。別件ですが、領収書の発行は可能ですか。",
        "谢谢！另外，发票可以开公司抬头吗？",
    ):
        assert ContentAware().decide(ticket, fu(text)).verdict == "split", text


def test_new_order_id_suggests_a_new_incident() -> None:
    d = ContentAware().decide(REFUND_TICKET, fu("Order KX-80123 arrived broken, please help."))
    assert d.verdict == "split" and "KX80123" in d.reasons[-1]


def test_uncertain_cases_reopen() -> None:
    policy = ContentAware()
    unknown = TicketView(subject="", status="solved", requester="")
    for text in ("No.", "Hello", "", "Any update?", "Please check again"):
        assert policy.decide(unknown, fu(text)).verdict == "reopen", text
    # short generic chaser long after close: too little content to call it a new topic
    assert policy.decide(REFUND_TICKET, fu("Any update on this?")).verdict == "reopen"
    # unrelated-looking but only a few days after close and no marker: reopen, not split
    recent = tv("Refund for order KX-77812", ("customer", "where is my refund?"), days=3)
    assert policy.decide(recent, fu("My vacuum cleaner makes a loud noise.")).verdict == "reopen"


# ----------------------------------------------------------------------------- classify CLI


def _run_cli(
    monkeypatch: pytest.MonkeyPatch, lines: list[str], *args: str
) -> list[dict[str, object]]:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert classify.main([*args, "--jsonl"]) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


SCENARIO_A = {
    "id": "a1",
    "lang": "en",
    "case": "A",
    "ticket": {
        "subject": "Wrong size delivered",
        "status": "solved",
        "requester": "Ana <ana@example.org>",
        "messages": [
            {"from": "customer", "text": "I got an M instead of an L."},
            {"from": "agent", "text": "Hi Ana,\nThe L is on its way.\nBest,\nKim"},
        ],
        "closed_days_ago": 1,
    },
    "inbound": {
        "from": "Ana <ana@example.org>",
        "subject": "Re: Wrong size delivered",
        "text": "Got it, thank you!\n\nOn Tue, Kim <help@shop.example> wrote:\n"
        "> The L is on its way.",
    },
}


def test_cli_jsonl_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario_b = dict(SCENARIO_A, id="b1", case="B")
    scenario_b["ticket"] = dict(SCENARIO_A["ticket"], status="open", closed_days_ago=None)  # type: ignore[arg-type]
    lines = [
        json.dumps(SCENARIO_A),
        '{"id": "t1", "text": "Still not fixed.\\n\\n> old quoted text"}',
        '{"id": "t2", "text": "Thanks!\\n\\n-- \\nAna"}',
        "not json",
        '{"id": "e1"}',
        json.dumps(scenario_b),
        "[]",
    ]
    out = _run_cli(monkeypatch, lines)
    assert [o["id"] for o in out] == ["a1", "t1", "t2", None, "e1", "b1", None]
    assert out[0]["decision"] == "acknowledge" and out[0]["policy"] == "content-aware"
    assert out[1]["decision"] == "reopen"
    assert out[2]["decision"] == "acknowledge"
    assert "error" in out[3] and "error" in out[4] and "error" in out[6]
    assert out[5]["decision"] in ("thread", "new")
    for o in (out[0], out[1], out[2], out[5]):
        assert set(o) == {"id", "decision", "confidence", "reasons", "policy"}
        assert isinstance(o["confidence"], float) and isinstance(o["reasons"], list)


def test_cli_text_only_lines_never_split(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run_cli(monkeypatch, ['{"id": "s", "text": "Thanks! Unrelated: do you ship to Oslo?"}'])
    assert out[0]["decision"] == "reopen"


def test_cli_without_threading_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classify, "_threading_match", lambda: None)
    item = dict(SCENARIO_A, case="B")
    out = _run_cli(monkeypatch, [json.dumps(item)])
    assert out[0]["decision"] == "new"
    assert out[0]["reasons"] == ["threading engine unavailable"]


def test_cli_policy_flag_and_unknown_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _run_cli(monkeypatch, [json.dumps(SCENARIO_A)], "--policy", "always-reopen")
    assert (out[0]["decision"], out[0]["policy"]) == ("reopen", "always-reopen")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert classify.main(["--policy", "nope", "--jsonl"]) == 2


# ----------------------------------------------------------------------------- SGD regression

PRECISION_MIN = 0.99
RECALL_MIN = 0.92  # reached 0.934 on text and on email (eval/policies.py), minus a margin


def test_sgd_dev_acknowledgement_precision_and_recall() -> None:
    rows = [
        json.loads(line)
        for line in (DATA / "followups" / "sgd_dev.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    scored = [r for r in rows if r["label"] != "gray"]
    for field in ("text", "email"):
        tp = fp = fn = 0
        for r in scored:
            reply = r["text"] if field == "text" else classify.reply_text(r["email"])
            pred, gold = detect(reply).is_ack, r["label"] == "ack"
            tp += pred and gold
            fp += pred and not gold
            fn += gold and not pred
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        assert precision >= PRECISION_MIN, (field, precision)
        assert recall >= RECALL_MIN, (field, recall)


# ----------------------------------------------------------------------------- held-out split


def test_held_out_rule_is_fixed() -> None:
    from eval.split import is_held_out, split

    # sha256("multiwoz-val-PMUL1635-4")[:8] = 0xf8d7465c, divisible by 5: held out
    assert is_held_out("multiwoz-val-PMUL1635-4")
    assert not is_held_out("multiwoz-val-PMUL1635-2")
    rows = [{"id": f"x-{i}"} for i in range(2000)]
    dev, held = split(rows)
    assert len(dev) + len(held) == 2000 and 300 < len(held) < 500  # about 20%
    assert split(reversed(rows))[1] == held[::-1]  # depends on the id only, not the order


# Unseen-data regression guard on the held-out parts of MultiWOZ (en) and CrossWOZ (zh), never
# used to develop the rules: false acknowledgements (a request parked on a solved ticket) per
# scored item. Measured 0 / 1,360 and 0 / 846 on `text` and `email` (eval/policies.py); the
# bound allows about one item per set, as a regression guard, not a target.
FALSE_ACK_RATE_MAX = 0.0015
HELD_OUT_RECALL_MIN = 0.85  # measured 0.874 (MultiWOZ) and 0.877 (CrossWOZ)


@pytest.mark.parametrize("name", ["multiwoz_val", "crosswoz_val"])
def test_held_out_false_ack_rate(name: str) -> None:
    from eval.policies import followup_score
    from eval.split import split

    path = DATA / "followups" / f"{name}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    held = split(rows)[1]
    for field in ("text", "email"):
        score = followup_score(ContentAware(), held, field)
        assert score.fp / score.n <= FALSE_ACK_RATE_MAX, (field, score)
        assert score.recall >= HELD_OUT_RECALL_MIN, (field, score)
