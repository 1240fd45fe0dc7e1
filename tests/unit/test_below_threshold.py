"""Issue 10 part 5: a decision that stops below its threshold says so in its reasons."""

from __future__ import annotations

from tests.unit.test_policies import fu, tv
from tidydesk.policy import topic
from tidydesk.policy.content_aware import ContentAware

REFUND = (("customer", "I returned the blender last week, where is my refund?"),
          ("agent", "The refund was issued today, it takes 3-5 days."))


def test_a_reopen_below_the_split_threshold_names_score_and_threshold() -> None:
    reply = "When will the blender refund reach my card?"
    for days, bar in ((2.0, topic.split_threshold(2.0)), (40.0, topic.split_threshold(40.0))):
        d = ContentAware().decide(tv("Refund for the blender", *REFUND, days=days), fu(reply))
        ev = topic.compare(reply, topic.ticket_text("Refund for the blender", list(REFUND)))
        assert d.verdict == "reopen" and topic.score(ev) < bar
        assert f"new-topic score {topic.score(ev):.2f} below the split threshold {bar:.2f}: " \
               "reopen" in d.reasons


def test_each_gate_before_the_score_is_named() -> None:
    ticket = tv("Refund for the blender", *REFUND)
    short = ContentAware().decide(ticket, fu("It still doesn't work."))
    assert short.verdict == "reopen"
    assert any(r.startswith("not a new topic: too little content") for r in short.reasons)
    statement = ContentAware().decide(
        ticket, fu("Also the delivery address on my profile is wrong, the street is misspelt."))
    assert statement.verdict == "reopen"  # 2 days after the close: a statement is no request
    assert "not a new topic: no new request within 14 days of the close" in statement.reasons
    empty = ContentAware().decide(tv(""), fu("How do I add a second admin user to my account?"))
    assert empty.verdict == "reopen"
    assert "not a new topic: the ticket has no content to compare with" in empty.reasons


def test_a_split_names_no_threshold_gate() -> None:
    d = ContentAware().decide(tv("Refund for the blender", *REFUND),
                              fu("How do I add a second admin user to my account?"))
    assert d.verdict == "split"
    assert not any(r.startswith(("not a new topic", "new-topic score")) for r in d.reasons)
