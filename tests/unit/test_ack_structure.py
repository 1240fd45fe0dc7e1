"""Acknowledgement by structure: what a closing phrase may swallow and what it may not."""

from __future__ import annotations

import pytest

from tidydesk.policy.ack import detect

# A closing phrase in unspaced Japanese or Chinese must end at its own ending: a run to the next
# space would swallow the rest of the sentence, and with it the problem or request that follows
# the apology or the promise to write again.
SWALLOWED_SIGNALS = [
    "すみません、まだ届いていません。",
    "申し訳ないのですが、商品が壊れていました。",
    "有问题再联系你们,另外我想退款",
    "有问题再联系你们，另外我想退款",
]

CLOSINGS_KEEP_THEIR_ENDINGS = [
    "すみませんでした。ありがとうございました。",
    "申し訳ございませんでした。解決しました。",
    "有问题再联系你们吧，谢谢",
    "お騒がせしてしまいました。ありがとうございます。",
]


@pytest.mark.parametrize("text", SWALLOWED_SIGNALS)
def test_a_closing_does_not_hide_what_follows_it(text: str) -> None:
    assert not detect(text).is_ack


@pytest.mark.parametrize("text", CLOSINGS_KEEP_THEIR_ENDINGS)
def test_closings_with_their_endings_still_acknowledge(text: str) -> None:
    assert detect(text).is_ack


# Thanks for the help, the time or the assistance thanks for what was done: beside it a "yes"
# answers the closing question. A bare thanks beside a "yes" may confirm an offer, and thanks
# for the help tolerates no answer beside it.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("Yes. Thanks for all your help!", True),
        ("Yeah, that works for me. Thanks for the help.", True),
        ("Sure, thank you for your kind assistance.", True),
        ("Yes, thanks.", False),
        ("Yes please, thanks for your help", False),
        ("The red one. Thanks for your help", False),
        ("Tomorrow morning, thank you so much for your help.", False),
    ],
)
def test_gratitude_for_the_help(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# A closing is a grammar, not a phrase: negation + need + any + other + help; the help
# covered or taken care of, whatever it is called.
@pytest.mark.parametrize(
    "text",
    [
        "No, I don't need any other help. You took care of it all. Thanks. Bye.",
        "We do not need any additional assistance, thank you.",
        "I think we have everything covered now. Thank you.",
        "That actually takes care of my needs, thanks for your help.",
        "You have handled all of my requests. Thanks!",
    ],
)
def test_closing_grammar(text: str) -> None:
    assert detect(text).is_ack


# The customer's own short next step asks nothing of the desk; a step that needs something,
# or one that names a new object, may be a request or a choice.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("Thanks. I will check it out.", True),
        ("Great, thanks. I'll handle the rest, you've been very helpful today.", True),
        ("Thank you! We'll try that.", True),
        ("Thanks. I will also need a taxi.", False),
        ("Thanks. I'll need a refund.", False),
        ("Thanks. Now, we will book the car that you have found for me.", False),
        ("Thanks. I will not be able to log in.", False),
    ],
)
def test_own_next_step(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# Chinese: thanks beside evaluations closes the exchange; beside an event, a proposal or a
# request it does not. "But thanks anyway" (不过还是谢谢) drops its contrast as in English.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("这两个地方离得很近，谢谢你啊！", True),
        ("哇塞，好多好吃的地方啊，太感谢了！", True),
        ("真是太惨了，哈哈，不过还是谢谢你呢！", True),
        ("好吧，那我们再考虑考虑吧，谢谢。", True),
        ("清楚了，还可以接受，谢谢你的答复。", True),
        ("那还行，谢谢你啊！", True),
        ("订单号我忘了，谢谢", False),
        ("换一个吧，谢谢你啊", False),
        ("不过还是没到，谢谢", False),
        ("很好，请帮我查一下订单，谢谢", False),
        ("真好，多谢你。对了，我刚才忘了问那家店的人均消费了。", False),
    ],
)
def test_chinese_thanks_beside_evaluations(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# A past search for information is over; a present need is a request. An excited "can't wait"
# is no negation, a bare "No, I don't" may answer "do you see it now?" and stays a reply.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("No, I was just getting the information.", True),
        ("That sounds like a good choice. Thank you.", True),
        ("Thanks, I can't wait! And thanks for your help today.", True),
        ("No, I do not. Thanks.", False),
        ("No, I didn't.", False),
        ("I just need the information of the guesthouse.", False),
        ("I can't wait any longer for the refund. Thanks", False),
    ],
)
def test_past_search_and_excitement(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# Without punctuation, formulas are where one clause ends and the next begins.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("No that would be fine Thank you That was all I needed for today", True),
        ("No that is all I will be needing Thanks so much Bye", True),
        ("没有了谢谢", True),
        ("没有了非常感谢你", True),
        ("是很高谢谢你哈", True),
        ("包裹没有了谢谢", False),
        ("订单号我忘了谢谢", False),
    ],
)
def test_unpunctuated_formulas(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# "Nothing" closes as an elliptic answer, never as the subject of a verb: "Nothing works",
# "Nothing arrived, thanks" and "nothing else helped" report what happened.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("No, nothing.", True),
        ("Okay, nothing for now. Thanks", True),
        ("Nothing else, thanks", True),
        ("There is nothing else I need. Thanks", True),
        ("Nothing else is needed.", True),
        ("nothing much, thanks", True),
        ("Nothing works.", False),
        ("nothing else helped, thanks", False),
        ("nothing shows up, thanks", False),
        ("Nothing arrived, thanks", False),
        ("Nothing changed. Thanks", False),
        ("nothing else works, thanks", False),
    ],
)
def test_nothing_as_a_closing(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# Typed without the apostrophe, a negation is still a negation; a slip in "thanks" is still
# thanks, but "think" is not.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("it isnt working thanks", False),
        ("havent received it thanks", False),
        ("It doesnt work, thanks", False),
        ("Youve been very helpful, thanks", True),
        ("Thatll be all, thanks", True),
        ("thnaks for your help!", True),
        ("Tahnk you so much", True),
        ("Okay, great. Many thanks for your help!", True),
        ("I thnk the blue one", False),
        ("tanks are empty", False),
    ],
)
def test_typed_forms(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# Replies to the agent's own closing wishes, and the common forms of closings: "same to you",
# "I hope so", "that answers my question", "I'll be sure to check it out", "等不及了" (can't wait).
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("Thank you, same to you!", True),
        ("Thank you, I hope so!", True),
        ("Thank you, that answers my question.", True),
        ("Nope, that about covers it. Thanks!", True),
        ("That's great news, thank you.", True),
        ("I'll be sure to check it out. That's all, thanks!", True),
        ("哦了，我都等不及了，谢谢你啊！", True),
        ("Same error again. Thanks", False),
        ("It answers my question but the app still crashes", False),
        ("Please make sure to check it. Thanks", False),
        ("Sure, thanks", False),
        ("我等不及了，什么时候发货？", False),
    ],
)
def test_replies_to_closing_wishes(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# An own step may act on what was said in more words ("keep that in mind"); excitement and a
# promise to come back are closings; a remark of relief or plenty is no request.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("Thank you, I will keep that in mind.", True),
        ("Thanks, I'll give them a call.", True),
        ("Thanks, I can't wait to try it!", True),
        ("Thank you! I'll be sure to use your service again.", True),
        ("Thanks, that's a relief.", True),
        ("That's plenty, thanks!", True),
        ("That will work perfectly, thank you.", True),
        ("Thank you so much! You've made my day.", True),
        ("Enjoy the rest of your day!", True),
        ("Okay, I'll listen to that song.", False),
        ("Thanks, I'll keep that in mind, but the charger is missing.", False),
        ("That's plenty, but I also need a receipt.", False),
        ("Thanks, I will contact the bank again.", False),
    ],
)
def test_longer_own_steps_and_closing_remarks(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# Chinese closings beyond thanks: wishes (祝你…), "下次再聊", relief (那就放心了), "原来如此",
# an own step (我会去看看的), a positive evaluation of any subject (这个地方听起来不错).
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("好的，谢谢，祝你生活愉快！", True),
        ("好的，谢谢，下次再聊！", True),
        ("好的，那我就放心了，谢谢！", True),
        ("原来如此，谢谢你！", True),
        ("好的，我会去看看的，谢谢！", True),
        ("这个地方听起来不错，谢谢！", True),
        ("谢谢你告诉我这些！", True),
        ("祝你们早日解决问题", False),
        ("我会去投诉的，谢谢", False),
        ("我明天来退货，谢谢", False),
        ("听起来不错，帮我订一间，谢谢", False),
        ("原来如此，那怎么退款？", False),
    ],
)
def test_chinese_closings(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# A wh-word under "know" is an embedded clause, not a question ("I know how that is"); a
# question keeps its frame ("Do you know how…", "How do I…"). "Why, thank you" is an idiom.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("That's okay. I know how that is sometimes. That was it. Thanks!", True),
        ("Why, thank you!", True),
        ("Why thanks, but why is it still broken", False),
        ("Do you know how to fix it? thanks", False),
        ("Thanks. How do I reset it", False),
    ],
)
def test_embedded_wh_clauses(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# "no problem" is one phrase: the leading "no" must not take its "no" and leave "problem" as a
# problem word. "I've got to go" is leaving like "I have to go".
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("No problem, thanks!", True),
        ("Okay, no problem.", True),
        ("Great, thank you so much, but I've got to go now.", True),
        ("No problem, but the invoice is wrong", False),
        ("There is a problem, thanks", False),
    ],
)
def test_no_problem_is_one_phrase(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# The longest protected phrase at a position wins, whatever its category: "I don't need them
# yet" is a decline, not the shorter closing "I don't need them" followed by a problem "yet".
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("I don't need them yet.", True),
        ("I don't need them yet, it still fails.", False),
    ],
)
def test_longest_protected_phrase(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack


# Closing remarks from a third probe list: apologies for the trouble, excitement, having the
# reference, having written it down, looking it up oneself.
@pytest.mark.parametrize(
    ("text", "is_ack"),
    [
        ("Sorry to bother you, thanks for your help.", True),
        ("Thanks, sorry for all the questions.", True),
        ("Thanks, I'm excited!", True),
        ("Thank you, that sounds like fun.", True),
        ("Thanks, that's exactly the information I needed.", True),
        ("Thank you, I have the reference number.", True),
        ("Thanks, I have it written down.", True),
        ("Thanks, I'll look into it.", True),
        ("Thanks! Take it easy.", True),
        ("Sorry for the trouble, but it still doesn't work.", False),
        ("Thanks, can you look into it?", False),
        ("Thank you, I have the reference number but the booking is missing.", False),
    ],
)
def test_third_probe_closings(text: str, is_ack: bool) -> None:
    assert detect(text).is_ack is is_ack
