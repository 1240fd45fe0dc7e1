"""Is a reply to an old ticket about the same matter, or a new topic?

The decision (`is_new_topic`) reads content, not wording: how much of the reply's weighted
content units - and of what it asks - the ticket (subject and earlier messages) never mentioned.
A new question about things the ticket never named is a new topic; explicit markers
("separately", "別件") add to the score, a reference back to the exchange or a shared order id
rules it out, and short replies ("any update?") never split.

Content units are script-aware: Latin words are folded and cut to a 5-letter stem ("refunds",
"refunded" -> "refun"); Korean words contribute their first two syllables (the noun stem before
particles: "환불이", "환불은" -> "환불"); Chinese and Japanese runs contribute character bigrams,
Japanese only from kanji/katakana (hiragana is mostly grammar). Generic support vocabulary
(greetings, thanks, "order", "customer") is ignored. Identifiers (order, booking, parcel
numbers) are compared separately: a shared one is the strongest same-issue evidence, a new one
suggests a new incident.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from services.policy.ack import fold

_ID = re.compile(r"(?<![\w$€£¥₩])(?=[\w-]*\d)[A-Za-z0-9][A-Za-z0-9-]{4,}[A-Za-z0-9](?![\w])")
_AMOUNT_AFTER = re.compile(r"^\s?(?:원|円|元|won|yen|usd|eur|krw|jpy|rmb|%|분|시|일|개|명|회)")
_DATE = re.compile(r"^(?:19|20)\d\d-?\d\d-?\d\d$|^\d{1,2}-\d{1,2}$")
_LATIN = re.compile(r"[a-z]{3,}")
_HANGUL = re.compile(r"[\uac00-\ud7af]{2,}")
_HAN_KANA = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]{2,}")
_HIRAGANA = re.compile(r"[\u3040-\u309f]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_ZH_FUNCTION = re.compile(r"[的了是不我你他她它们吗呢吧啊在有也都就还没很这那么什个]")
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")
# A sentence that asks: a question, or a request ("please check", "확인 부탁드립니다", "请帮我").
_ASK = re.compile(
    r"(?:[?？]|か|吗|呢|까요|나요|니까|을까)[.。!！\s]*$|(?<![a-z])(?:please|could you|can you|"
    r"bitte|pourriez|pouvez|por favor|puede)(?![a-z])|부탁|주세요|お願い|ください|请|麻烦"
)

_STOP_LATIN = frozenset(
    re.findall(
        r"\S+",
        """
    the and for you your are was were have has had this that with from not but can could would
    will just also about there their they them then than what when where which who how why
    please thanks thank hello dear regards best team support customer service order again still
    here very much really some any all get got one two out into only over after before now today
    yesterday week month day days time hi hey sorry issue problem question help email mail
    doesn didn don isn wasn won cant hasn haven wouldn couldn shouldn aren weren
    der die das und ist nicht ich sie wir bitte danke vielen gruesse hallo mit auf fur
    les des est pas une pour vous nous merci bonjour avec dans que qui sur
    los las por para con una que del gracias hola como pero
    """,
    )
)
_STOP_HANGUL = frozenset(
    re.findall(
        r"\S+",
        """
    안녕 감사 고맙 문의 확인 부탁 고객 그리 그런 그래 혹시 지금 오늘 어제 이번 지난 다시 아직
    계속 정말 너무 이미 제가 저희 저는 그때 해서 하고 했는 했습 합니 입니 있는 있습 없는 없습
    주세 해주 드립 드려 드릴 하는 되는 됩니 되었 같은 같아 그냥 이렇 이런 어떻 언제 나요 인데
    하지 때문 관련 건으 건이 건은 이메 메일 연락 답변 회신 수고 말씀 처리 요청 진행 상황
    니다 습니 하세 어요 는데 있고 대로 에서 으로 해요 네요 아요 거든 는지 세요 셨는 시는 해도
    했어 했고 봤는 봤어 왔어 나와 나오 들어 드리 이에 예요 에요 라고 다고 면서 는지 인지
    """,
    )
)
_STOP_CJK = frozenset(
    re.findall(
        r"\S+",
        """
    您好 你好 谢谢 感谢 我们 你们 您的 一下 请问 已经 可以 没有 什么 这个 那个 客服 问题
    麻烦 帮我 还是 因为 所以 但是 如果 现在 今天 昨天 之前 时候 一个 知道 需要 希望
    世話 失礼 確認 連絡 対応 問合 問い 返信 今後 本日 先日 先ほど 以上 宜し 願い 誠に 大変
    """,
    )
)

# New-topic decision (`is_new_topic`). SPLIT_SCORE was calibrated on TIAGE train (best F1 of
# "new topic" at utterance boundaries; see eval/topics.py); the margins are priors on the time
# since the close: a reply within two weeks is nearly always about the ticket, one after a month
# often is not.
SPLIT_SCORE = 1.05  # novelty + ask novelty: a new question about things the ticket never named
MARKER_BONUS = 0.5  # an explicit marker ("separately", "別件", "另外") counts this much
RECENT_DAYS = 14.0
RECENT_MARGIN = 1.0  # within RECENT_DAYS (or close time unknown): only with a marker
LONG_DAYS = 30.0
LONG_MARGIN = 0.2  # after LONG_DAYS a mostly new statement is enough
MIN_MASS = 2.0  # fewer weighted content units than this never split
SHARED_MASS = 2.0  # a reply naming this much of the ticket's content, making up
SHARED_SHARE = 0.2  # at least this share of the reply, stays with it

# Document-frequency weights of the 40 most common units in TIAGE train utterances (4,692;
# tests/data/topics): log((N+1)/(df+1)) / log(N+1). Units not listed weigh 1.
_COMMON = {
    unit: float(weight)
    for unit, weight in (
        item.split(":")
        for item in """
    like:.25 love:.30 good:.36 work:.37 well:.38 too:.38 favor:.40 yes:.40 nice:.40 great:.40
    cool:.41 lot:.43 schoo:.43 live:.44 music:.44 fun:.44 sound:.45 doing:.45 play:.45 wow:.46
    want:.46 did:.46 yeah:.46 dogs:.47 dog:.47 kids:.48 know:.48 going:.48 enjoy:.48 job:.48
    old:.48 been:.48 watch:.49 thoug:.49 inter:.49 color:.49 kind:.50 food:.50 somet:.50 new:.50
    """.split()  # noqa: SIM905
    )
}

# Explicit new-topic markers ("thanks, and separately ...").
_NEW_TOPIC = re.compile(
    r"(?<![a-z])(?:different (?:question|issue|matter|topic|thing)|unrelated|separate(?:ly)? "
    r"(?:question|issue|matter|note)?|separately|another (?:question|issue|thing|matter|problem)"
    r"|new (?:question|issue|problem)|on (?:a|another) (?:different|separate|other) (?:note|"
    r"matter|topic)|by the way|also wanted to ask|while i have you|andere frage|anderes thema|"
    r"ubrigens|separate frage|autre question|autre sujet|par ailleurs|sans rapport|otra pregunta|"
    r"otro tema|por cierto|aparte de eso|outra pergunta|outro assunto|a proposito|altra domanda|"
    r"un altro argomento|andere vraag|ander onderwerp|trouwens)(?![a-z])"
    r"|별개|별도로|다른\s?(?:문의|질문|건으로|건인데|건도|문제로|얘기)|추가로\s?(?:문의|질문|여쭤)|"
    r"그리고\s?하나\s?더|한\s?가지\s?더|別件|ところで|話は変わ|もう一つ別|他の件|另外|顺便问|"
    r"还有一个问题|另一个问题|另一件事|别的问题|其他问题"
)
# Same-issue continuation markers ("still", "again", "지난번 그 건", "まだ", "还是").
_CONTINUATION = re.compile(
    r"(?<![a-z])(?:still|again|following up|follow up|as (?:you )?mentioned|you mentioned|you "
    r"said|you promised|promised|last time|same (?:problem|issue|error|thing|fault)|not yet|"
    r"never arrived|hasn t|has not|have not|haven t|immer noch|weiterhin|wieder|toujours|"
    r"encore|de nouveau|todavia|sigue|de nuevo|ainda|novamente|ancora|di nuovo|nog steeds|"
    r"opnieuw)(?![a-z])"
    r"|아직|여전히|지난번|지난\s?번|또\s?같은|똑같|그대로|말씀하신|안내해\s?주신|약속|다시\s?발생|"
    r"재발|まだ|先日|相変わらず|依然|やはり|同じ|再度|前回|还是|仍然|依然|又|上次|之前说|还没"
)

# Explicit references back to the earlier exchange ("as you mentioned", "지난번", "前回", "上次").
_BACK_REFERENCE = re.compile(
    r"(?<![a-z])(?:as (?:you )?(?:mentioned|said|promised)|you (?:mentioned|said|promised|told "
    r"me)|as promised|following up|follow(?:ing)? up on|last time|our (?:last|previous|earlier) "
    r"(?:conversation|exchange|email)|wie besprochen|wie versprochen|comme convenu|comme promis|"
    r"como (?:me )?(?:dijeron|prometieron|acordamos)|come promesso|zoals beloofd)(?![a-z])"
    r"|지난번|지난\s?번|말씀하신|안내해\s?주신|약속하신|前回|ご案内いただいた|おっしゃって|上次|"
    r"之前说|你们说|你们答应"
)


@dataclass(frozen=True, slots=True)
class TopicEvidence:
    """How a reply relates to the ticket it was threaded into."""

    overlap: float  # share of the reply's content units found in the ticket (0..1)
    shared: tuple[str, ...]  # a few shared units, for reasons
    shared_ids: tuple[str, ...]
    new_ids: tuple[str, ...]  # identifiers in the reply that the ticket never mentioned
    ticket_has_ids: bool
    new_topic_marker: str | None
    continuation_marker: str | None
    back_reference: str | None  # explicit reference to the earlier exchange
    units: int  # number of content units in the reply
    novelty: float  # weighted share of the reply's content the ticket never mentioned (0..1)
    ask_novelty: float  # the same over the reply's questions and requests; 0 if it asks nothing
    mass: float  # weighted content of the reply (a common unit weighs less than 1)
    ticket_mass: float  # weighted content of the ticket; 0: nothing to compare with
    shared_mass: float  # weighted content the reply shares with the ticket


def ids(text: str) -> set[str]:
    """Order / booking / parcel identifiers (at least 4 digits; not dates, amounts or times)."""
    text = unicodedata.normalize("NFKC", text)
    out = set()
    for m in _ID.finditer(text):
        token = m.group()
        if sum(c.isdigit() for c in token) < 4 or _DATE.match(token):
            continue
        if _AMOUNT_AFTER.match(text[m.end() : m.end() + 4].lower()):
            continue
        out.add(token.replace("-", "").upper())
    return out


@functools.lru_cache(maxsize=512)
def ticket_units(text: str) -> frozenset[str]:
    """`units` of a ticket text, cached: many follow-ups are compared with the same ticket."""
    return frozenset(units(text))


def units(text: str, *, folded: bool = False) -> set[str]:
    """Script-aware content units of a text."""
    folded_text = text if folded else fold(text)
    return _units(folded_text)


def _units(folded: str) -> set[str]:
    out = {w[:5] for w in _LATIN.findall(folded) if w not in _STOP_LATIN}
    for word in _HANGUL.findall(folded):
        heads = {word[:2]} if len(word) < 4 else {word[:2], word[2:4]}
        out |= heads - _STOP_HANGUL
    for run in _HAN_KANA.findall(folded):
        for i in range(len(run) - 1):
            pair = run[i : i + 2]
            if not _HIRAGANA.search(pair) and pair not in _STOP_CJK:
                out.add(pair)
    return out


def ticket_text(subject: str, messages: list[tuple[str, str]]) -> str:
    """The ticket's matter: subject and messages, without agent greeting and sign-off lines.

    Agent greetings and signatures name the company and the team ("트립온 여행고객센터",
    "ZipRide Support"), which every later mail repeats whatever its topic.
    """
    parts = [subject]
    for author, text in messages:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if author == "agent":
            lines = lines[1:-2] if len(lines) > 4 else lines[1:]
        parts.extend(lines)
    return "\n".join(parts)


@functools.lru_cache(maxsize=512)
def _ticket_ids(text: str) -> frozenset[str]:
    return frozenset(ids(text))


def compare(reply: str, ticket_text: str) -> TopicEvidence:
    """Evidence for "same matter" vs "new topic" between a reply and a ticket's text."""
    folded = fold(reply)
    mine = units(folded, folded=True)
    theirs = ticket_units(ticket_text)
    shared = mine & theirs
    reply_ids, ticket_ids = ids(reply), _ticket_ids(ticket_text)
    terms, theirs_terms = _terms(folded), _ticket_terms(ticket_text)
    asks = [s for s in _SENTENCE.findall(folded) if _ASK.search(s)]
    asked = set().union(*map(_terms, asks)) if asks else set()
    new_topic = _NEW_TOPIC.search(folded)
    continuation = _CONTINUATION.search(folded.replace("'", " "))
    back = _BACK_REFERENCE.search(folded)
    return TopicEvidence(
        overlap=len(shared) / len(mine) if mine else 0.0,
        shared=tuple(sorted(shared, key=lambda u: (-len(u), u))[:4]),
        shared_ids=tuple(sorted(reply_ids & ticket_ids)),
        new_ids=tuple(sorted(reply_ids - ticket_ids)),
        ticket_has_ids=bool(ticket_ids),
        new_topic_marker=new_topic.group() if new_topic else None,
        continuation_marker=continuation.group() if continuation else None,
        back_reference=back.group() if back else None,
        units=len(mine),
        novelty=_share_new(terms, theirs_terms),
        ask_novelty=_share_new(asked, theirs_terms),
        mass=_mass(terms),
        ticket_mass=_ticket_mass(ticket_text),
        shared_mass=_mass(terms & theirs_terms),
    )


def score(ev: TopicEvidence) -> float:
    """New-topic score: novelty of the content plus novelty of what it asks, plus a marker."""
    return ev.novelty + ev.ask_novelty + (MARKER_BONUS if ev.new_topic_marker else 0.0)


def split_threshold(days_after_close: float | None) -> float:
    """The score a reply needs to be a new topic: higher soon after the close, lower long after."""
    if days_after_close is None or days_after_close <= RECENT_DAYS:
        return SPLIT_SCORE + RECENT_MARGIN
    return SPLIT_SCORE - LONG_MARGIN if days_after_close > LONG_DAYS else SPLIT_SCORE


def is_new_topic(ev: TopicEvidence, days_after_close: float | None) -> bool:
    """Content says the reply is about something else than the ticket.

    Never for a reply that refers back to the exchange, shares a reference or a good part of its
    content with the ticket ("When will the blender refund reach my card?"), says too little
    (`MIN_MASS`: "It still doesn't work", "any update?") or meets an empty ticket.
    """
    if ev.back_reference or ev.shared_ids or ev.mass < MIN_MASS or not ev.ticket_mass:
        return False
    if ev.shared_mass >= SHARED_MASS and ev.novelty <= 1 - SHARED_SHARE:
        return False
    return score(ev) >= split_threshold(days_after_close)


def _terms(folded: str) -> set[str]:
    """`_units` plus character trigrams of Chinese / Japanese runs.

    In Chinese (no kana in the text) n-grams with a function character ("还是不行") are dropped.
    """
    out = _units(folded)
    for run in _HAN_KANA.findall(folded):
        out.update(run[i : i + 3] for i in range(len(run) - 2))
    out = {t for t in out if not _HIRAGANA.search(t)}
    if not _KANA.search(folded):
        out = {t for t in out if not _ZH_FUNCTION.search(t)}
    return out


def _mass(terms: set[str]) -> float:
    """Weighted size: common units weigh less (`_COMMON`), CJK trigrams half (they overlap)."""
    return sum(_COMMON.get(t, 0.5 if len(t) == 3 and t[0] >= "\u3040" else 1.0) for t in terms)


def _share_new(terms: set[str], theirs: frozenset[str]) -> float:
    total = _mass(terms)
    return _mass(terms - theirs) / total if total else 0.0


@functools.lru_cache(maxsize=512)
def _ticket_terms(text: str) -> frozenset[str]:
    return frozenset(_terms(fold(text)))


@functools.lru_cache(maxsize=512)
def _ticket_mass(text: str) -> float:
    return _mass(set(_ticket_terms(text)))

