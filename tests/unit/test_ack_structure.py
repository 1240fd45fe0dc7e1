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
