"""Fresh-mail threading: same issue as the open ticket, or a new one?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidydesk.policy.base import PastMessage, TicketView
from tidydesk.threading.similarity import (
    DEFAULT_THRESHOLD,
    amounts,
    content_tokens,
    identifiers,
    judge,
    match,
    score,
)

DATA = Path(__file__).resolve().parents[1] / "data"
SCENARIOS = DATA / "scenarios" / "dev.jsonl"
HANDWRITTEN = sorted((DATA / "threading").glob("handwritten*.jsonl"))


def ticket(subject: str, *messages: tuple[str, str], requester: str = "") -> TicketView:
    return TicketView(
        subject=subject, status="open", requester=requester or "Kim <kim@mail.example>",
        messages=tuple(PastMessage(author=a, text=t) for a, t in messages),  # type: ignore[arg-type]
    )


def same(t: TicketView, subject: str, text: str, **kw: Any) -> bool:
    return match(t, t.requester, subject, text, **kw)[0]


# --------------------------------------------------------------------------- identifiers


def test_same_order_id_threads_ko() -> None:
    t = ticket("주문한 책상 조립 나사 누락",
               ("customer", "주문번호 HD-771203 책상에 조립용 나사 한 봉지가 빠져 있어요."))
    ok, conf, reasons = match(t, t.requester, "나사 언제 보내주시나요",
                              "HD-771203 건 나사 발송 일정 알려주세요. 조립을 못 하고 있습니다.")
    assert ok and conf > 0.8
    assert any("HD-771203" in r for r in reasons)


def test_different_order_id_of_same_kind_is_new_de() -> None:
    t = ticket("Falsche Größe geliefert (Bestellung 55-10422)",
               ("customer", "Ich habe Schuhe in 42 bestellt, geliefert wurde 44."))
    ok, conf, reasons = match(t, t.requester, "Lieferung",
                              "Hallo, meine Bestellung 55-10987 ist laut Sendungsverfolgung seit "
                              "fünf Tagen im Verteilzentrum. Wann kommt sie?")
    assert not ok and conf < 0.2
    assert any("different id" in r for r in reasons)


def test_different_tracking_number_is_new_even_with_same_words_en() -> None:
    t = ticket("Parcel marked delivered but not here",
               ("customer", "Tracking QX4410982 says delivered at 2pm, nothing at my door."))
    assert not same(t, "Parcel not delivered",
                    "Tracking QX4417730 also says delivered and nothing arrived.")


def test_identifier_kinds_and_amounts() -> None:
    ids = {i.key: i.kind for i in identifiers("Order #LS-44812, booking ZK4R8T, 2026-03-05, 14A")}
    assert set(ids) == {"LS44812", "ZK4R8T"}
    assert amounts("I paid $1,299.00 and 48,000원 and 3.980円") == {"1299", "48000", "3980"}


# --------------------------------------------------------------------------- wording


def test_chaser_without_reference_is_new_but_related_ja() -> None:
    """A chaser that names neither the subject nor an id is weak evidence: a new ticket (the
    engine records it as related). Before issue 10 this joined on content alone."""
    t = ticket("返金がまだ反映されていません",
               ("customer", "キャンセルした講座の受講料 12,000円がまだ返金されていません。"),
               ("agent", "山本様\n\nお問い合わせありがとうございます。\n\n経理部門に確認して"
                         "おります。\n\nよろしくお願いいたします。\nまなびサポート"))
    j = judge(t, t.requester, "至急ご確認ください",
              "先週お問い合わせした受講料の返金について、その後ご連絡がありません。")
    assert not j.strong and not j.joins(DEFAULT_THRESHOLD)
    assert any("weak evidence" in r for r in j.reasons)
    assert same(t, "Re: 返金がまだ反映されていません",
                "先週お問い合わせした受講料の返金について、その後ご連絡がありません。")


def test_chaser_with_order_number_threads_zh() -> None:
    t = ticket("空调安装预约", ("customer", "订单 20240611873 的空调，预约了周六安装。"))
    assert same(t, "还是没人联系我", "订单 20240611873 之前说安排师傅上门，还没有人联系我。")
    assert not same(t, "还是没人联系我", "之前说安排师傅上门安装空调，还没有人联系我。")


def test_chaser_with_order_number_threads_en() -> None:
    t = ticket("Monitor arrived with dead pixels",
               ("customer", "Order 8812345: the 27-inch monitor has a cluster of dead pixels."))
    ok, conf, reasons = match(t, t.requester, "Any update?",
                              "Hi, following up on order 8812345, I haven't heard back.")
    assert ok and conf >= DEFAULT_THRESHOLD
    assert any("strong evidence" in r for r in reasons)


def test_separate_question_is_new_zh() -> None:
    t = ticket("显示器有坏点", ("customer", "收到的显示器屏幕右上角有好几个坏点。"))
    assert not same(t, "另外一个问题", "另外想问一下，你们的显示器支持开增值税专用发票吗？")


def test_separate_question_is_new_en() -> None:
    t = ticket("Monitor arrived with dead pixels",
               ("customer", "The 27-inch monitor I received has a cluster of dead pixels."))
    assert not same(t, "Separate question about gift cards",
                    "Unrelated to my other email: can gift cards be used for monitors on sale?")


def test_separate_question_is_new_ko() -> None:
    t = ticket("정수기 필터 교체 일정", ("customer", "정수기 필터 교체 방문 일정을 잡고 싶어요."))
    assert not same(t, "다른 문의 드립니다",
                    "다른 문의인데요, 자동이체 카드를 변경하려면 어떻게 하나요?")


def test_unrelated_request_is_new_ja() -> None:
    t = ticket("アプリにログインできない",
               ("customer", "機種変更後、アプリにログインしようとするとエラーになります。"))
    assert not same(t, "住所変更について",
                    "引っ越したので登録住所を変更したいです。手続きを教えてください。")


# --------------------------------------------------------------------------- paraphrase / answers


def test_cjk_subject_paraphrase_is_only_related_ko() -> None:
    """Same words about the same product are no proof of the same request (issue 10): a new
    ticket, with a high related score. Before, this joined."""
    t = ticket("세탁기 탈수할 때 소음이 심해요",
               ("customer",
                "지난달 산 드럼 세탁기가 탈수할 때마다 덜컹거리는 소음이 심하게 납니다."))
    j = judge(t, t.requester, "드럼세탁기 탈수 소음",
              "드럼 세탁기 탈수 소음 때문에 밤에는 세탁을 못 하고 있어요. 방문 점검 가능할까요?")
    assert not j.strong and not j.joins(DEFAULT_THRESHOLD)


def test_same_author_next_question_never_joins() -> None:
    t = ticket("Kettle KT-200 does not heat",
               ("customer", "My kettle KT-200 stopped heating this morning."),
               ("agent", "Hi Kim,\n\nSorry to hear that. We are checking.\n\nBest,\nShop"))
    for subject, text in (("Kettle lid", "Does the kettle lid fit the older model too?"),
                          ("[PATCH v2] kettle: fix heating", "This fixes the kettle heating.")):
        j = judge(t, t.requester, subject, text)
        assert not j.strong and not j.joins(0.0), (subject, j.reasons)


def test_bot_daily_report_never_joins() -> None:
    report = "Daily report for 2026-03-04\nBuilds: 41 ok, 2 failed (job 5512, 5513)\n"
    t = ticket("[ci] Daily report 2026-03-04", ("customer", report),
               requester="CI <reports@ci.example>")
    for sender in ("CI <reports@ci.example>", "CI <ci-noreply@ci.example>"):
        j = judge(t, sender, "[ci] Daily report 2026-03-05",
                  report.replace("04", "05") + "Still waiting: job 5512")
        assert j.machine and not j.joins(0.0)
    human = ticket("[ci] Daily report 2026-03-04", ("customer", report))
    j = judge(human, human.requester, "[ci] Daily report 2026-03-05", report)
    assert j.machine and not j.joins(0.0)  # templated: differs only in the date
    j = judge(human, human.requester, "Any update on job 5512?", "Following up on job 5512",
              auto="Precedence: bulk")
    assert j.machine == "Precedence: bulk" and not j.joins(0.0)


def test_answering_the_agents_request_threads_en() -> None:
    t = ticket("Espresso machine leaking",
               ("customer", "My espresso machine leaks water from the bottom after each shot."),
               ("agent", "Hi Kim,\n\nThanks for contacting BrewCo.\n\nCould you send us the "
                         "serial number from the sticker under the drip tray and a short video "
                         "of the leak?\n\nBest,\nBrewCo Care"))
    assert same(t, "Serial number and video",
                "The serial number under the drip tray is 4471-K. Video of the leak attached.")


def test_idle_days_lowers_confidence() -> None:
    t = ticket("Router keeps dropping Wi-Fi",
               ("customer", "My router drops the Wi-Fi connection every evening."))
    args = (t, t.requester, "Wi-Fi drops", "The router still drops the Wi-Fi every evening.")
    fresh, old = match(*args)[1], match(*args, idle_days=60.0)[1]
    assert 0.0 <= old < fresh <= 1.0


def test_tokens_cjk_bigrams_and_latin_stems() -> None:
    ko = content_tokens("세탁기가 탈수할 때 소음이")
    assert "k:세탁" in ko and "k:소음" in ko and not any(k.endswith("이") for k in ko)
    zh = content_tokens("扫地机器人的充电座")
    assert "h:充电" in zh and not any("的" in k for k in zh)
    en = content_tokens("Thanks! The refunds were refunded")
    assert "w:refund" in en and not any(k.startswith("w:thank") for k in en)


def test_signature_words_do_not_match() -> None:
    t = ticket("Scooter brakes squeak",
               ("customer", "The rear brake of my scooter squeaks loudly."),
               ("agent", "Hi Kim,\n\nThanks for contacting ZoomRide.\n\nWe are checking with "
                         "the workshop.\n\nCheers,\nZoomRide Care Team"))
    ev = score(t, t.requester, "ZoomRide membership", "How do I cancel my ZoomRide membership?")
    assert ev.content == 0.0 and ev.logit < 0


# --------------------------------------------------------------------------- regression


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [i for i in map(json.loads, f) if i["case"] == "B"]


def _predict(item: dict[str, Any]) -> str:
    t = item["ticket"]
    view = TicketView(subject=t["subject"], status=t["status"], requester=t["requester"],
                      messages=tuple(PastMessage(author=m["from"], text=m["text"])
                                     for m in t["messages"]))
    ib = item["inbound"]
    return "thread" if match(view, ib["from"], ib["subject"], ib["text"])[0] else "new"


# Right answers per set since issue 10 (joins only on strong evidence). Every miss is a same
# issue opened as a new ticket with a related hint; a wrong join is never allowed.
CASE_B_FLOOR = {"dev": 17, "handwritten": 27, "handwritten2": 14, "handwritten3": 12}


@pytest.mark.parametrize("path", [SCENARIOS, *HANDWRITTEN], ids=lambda p: p.stem)
def test_case_b_regression(path: Path) -> None:
    items = _load(path)
    assert items
    preds = {i["id"]: _predict(i) for i in items}
    assert not [i["id"] for i in items if i["expected"] == "new" and preds[i["id"]] == "thread"]
    assert sum(preds[i["id"]] == i["expected"] for i in items) >= CASE_B_FLOOR[path.stem]


def test_dev_case_b_has_no_wrong_join() -> None:
    items = _load(SCENARIOS)
    assert len(items) == 21
    assert all(_predict(i) == "new" for i in items if i["expected"] == "new")


@settings(max_examples=60, deadline=None)
@given(subject=st.text(max_size=60), reply=st.text(max_size=400),
       texts=st.lists(st.tuples(st.sampled_from(["customer", "agent"]), st.text(max_size=200)),
                      max_size=4),
       idle=st.one_of(st.none(), st.floats(min_value=0, max_value=1e4)))
def test_match_is_total_and_bounded(subject: str, reply: str, texts: list[tuple[str, str]],
                                    idle: float | None) -> None:
    t = ticket(subject[::-1], *texts)
    ok, conf, reasons = match(t, "X <x@mail.example>", subject, reply, idle_days=idle)
    assert 0.0 <= conf <= 1.0
    assert conf >= DEFAULT_THRESHOLD or not ok  # a join needs the threshold and strong evidence
    assert all(isinstance(r, str) for r in reasons)
    assert match(t, "X <x@mail.example>", subject, reply, idle_days=idle) == (ok, conf, reasons)


def test_threshold_is_a_probability() -> None:
    assert 0.5 <= DEFAULT_THRESHOLD < 1.0
