"""What the desk reads in a message (pure): whether it is a complaint, and the out-of-hours
notice in the customer's language (`tidydesk.text.script.language_code`)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path

from tidydesk.text.script import language_code

LEXICON = Path(__file__).with_name("complaints.json")


@cache
def _lexicon() -> dict[str, re.Pattern[str]]:
    data: dict[str, list[str]] = json.loads(LEXICON.read_text(encoding="utf-8"))
    return {lang: re.compile("|".join(
        (r"\b" if w[0].isascii() else "") + re.escape(w.casefold()) for w in words))
        for lang, words in data.items() if not lang.startswith("_")}


def complaint(text: str) -> str | None:
    """The complaint phrase found in `text` (any language of the lexicon), else None."""
    folded = text.casefold()
    for pattern in _lexicon().values():
        found = pattern.search(folded)
        if found:
            return found.group(0)
    return None


_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "ko": ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"),
    "ja": ("月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日"),
}
_NOTICE = {
    "en": ("Thank you for your message. Our team is away right now and will be back on "
           "{weekday}, {date} at {time} ({tz}). We will answer you then; there is no need "
           "to write again.\n\nThis is an automatic reply."),
    "ko": ("문의해 주셔서 감사합니다. 지금은 업무 시간이 아닙니다. "
           "{date}({weekday}) {time}({tz})에 업무를 다시 시작하며, 그때 답변드리겠습니다. "
           "다시 보내지 않으셔도 됩니다.\n\n"
           "이 메일은 자동 응답입니다."),
    "ja": ("お問い合わせありがとうございます。ただいま営業時間外です。"
           "{date}（{weekday}）{time}（{tz}）より対応を再開し、順次ご返信いたします。"
           "再度お送りいただく必要はございません。\n\n"
           "このメールは自動返信です。"),
}
_DATES = {"en": "{d:%d %B %Y}", "ko": "{d.year}년 {d.month}월 {d.day}일",
          "ja": "{d.year}年{d.month}月{d.day}日"}


def notice_language(text: str) -> str:
    """The template language for a customer who wrote `text`: theirs if we have it, else en."""
    lang = language_code(text)
    return lang if lang in _NOTICE else "en"


def out_of_hours_notice(lang: str, back: datetime) -> str:
    """The notice saying when the team is back (`back` is in the mailbox's zone)."""
    lang = lang if lang in _NOTICE else "en"
    return _NOTICE[lang].format(weekday=_WEEKDAYS[lang][back.weekday()],
                                date=_DATES[lang].format(d=back), time=f"{back:%H:%M}",
                                tz=back.tzname() or "")
