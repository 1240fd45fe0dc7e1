"""Multilingual acknowledgement detection: is a reply only thanks / OK / goodbye?

The reply (quotes and signature already stripped) is normalised (NFKC, lower case, Latin accents
folded, English contractions expanded) and cut into sentences. Each sentence goes through three
passes:

1. *protected* phrases - closing vocabulary that contains words which would otherwise look like a
   problem or a request ("no need to reply", "that's all I need", "문제없어요", "問題ありません",
   "没问题") - are replaced by a marker;
2. *signals* are searched in what is left: a question mark or interrogative, a request word, a
   negation or problem word, a contrast ("but", "그런데", "ただ", "但是"), a new-topic marker
   ("separately", "별개로", "別件", "另外") or a digit (order ids, dates, amounts). Any signal
   vetoes the acknowledgement;
3. *acknowledgement* phrases (thanks, OK, received, resolved, farewell, praise) are replaced by
   markers and the clause remainder is checked against filler words.

A message is an acknowledgement when nothing signals a request and every clause is made of
acknowledgement vocabulary. Clauses with other content are tolerated only beside a *strong*
closing (farewell, "that's all", resolved, received, praise) - "Replacement arrived, all sealed
and perfect. Thanks Priya, no need to reply!" - never beside a bare "thanks" ("In Napa, thanks"),
and only a few of them (``MAX_EXTRA_WORDS`` / ``MAX_EXTRA_HAN``). A thanks makes a clause
gratitude only when it leads it ("thanks for the quick fix"), not when it trails an answer.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from email.utils import parseaddr

from tidydesk.text import lexicon
from tidydesk.text.normalise import fold
from tidydesk.text.script import language

# ----------------------------------------------------------------------------- categories
# Each category gets a private-use marker character that replaces its matches.
CATEGORIES = (
    "closing",  # that's all / nothing else / no need to reply
    "decline",  # no, not now, maybe later
    "nevermind",  # never mind, found it myself
    "resolved",  # works now, fixed, 해결됐어요
    "received",  # got it, arrived, 잘 받았습니다
    "acceptance",  # understood, a bit disappointing but, 어쩔 수 없죠
    "hypothetical",  # I'll get back to you if it happens again
    "farewell",  # bye, have a nice day, 수고하세요
    "praise",  # you've been very helpful
    "thanks",
    "ok",  # ok, got it, understood, 알겠습니다, 承知しました, 好的
    "positive",  # great, perfect, sounds good (weak: needs thanks or a closing)
    "affirm",  # yes, sure, I do (weak: may confirm a pending action; needs a closing)
    "no",  # a bare leading "no" (weak)
    "greeting",  # hi, hello, 안녕하세요 (weak)
    "gratitude",  # thanks for your help / time: thanks for what was done, not for an offer
)
MARK = {c: chr(0xE000 + i) for i, c in enumerate(CATEGORIES)}
CAT_OF = {m: c for c, m in MARK.items()}
STRONG = frozenset(
    {
        "closing",
        "decline",
        "nevermind",
        "resolved",
        "received",
        "acceptance",
        "hypothetical",
        "farewell",
        "praise",
    }
)
# closings that may stand beside other (non-request) sentences
LICENSING = STRONG - {"decline"}
WEAK = frozenset({"greeting", "positive", "affirm", "no"})

# ----------------------------------------------------------------------------- lexicons
# The phrase tables live in services/text/data/ack.json. Latin patterns are matched on folded
# lower-case text (é->e, ß->ss, apostrophes -> spaces, English contractions expanded) with word
# boundaries; CJK patterns are matched as substrings.
_TABLES = lexicon.ack_tables()
PROTECTED_LATIN, PROTECTED_CJK = _TABLES.protected.latin, _TABLES.protected.cjk
SIGNALS_LATIN, SIGNALS_CJK = _TABLES.signals.latin, _TABLES.signals.cjk
ACK_LATIN, ACK_CJK = _TABLES.ack.latin, _TABLES.ack.cjk

# Tokens that carry no content in an acknowledgement clause.
FILLER = _TABLES.filler
KNOWN_WORDS = FILLER  # stop words of the supported Latin-script languages

# Korean / Japanese / Chinese filler (removed before measuring leftover content).
FILLER_CJK = re.compile(
    r"(?:정말|진짜|너무|많이|매우|대단히|항상|늘|다시|한번|또|아|오|와|음|저|저희|제가|저도|그럼|"
    r"고객님|담당자님|상담사님|매니저님|선생님|님|요|도|은|는|이|가|을|를|에|께|께서|의|들|"
    r"\^\^|"
    r"本当に|誠に|大変|どうも|とても|いつも|早速|色々|いろいろ|丁寧な|ご丁寧に|ご対応|ご連絡|ご返信|"
    r"です|ます|でした|ました|ございます|ございました|いただき|頂き|して|くれて|の|は|が|を|に|"
    r"も|で|と|ね|よ|わ|ー|"
    r"非常|十分|特别|真是|真的|太|很|了|的|啊|呀|哈|吧|啦|哇塞|哇|你们|您们|你|您|我|我们|亲爱的|亲|都|也|哦|"
    r"嗯)"
)

# ----------------------------------------------------------------------------- normalisation
_CONTRACTION = re.compile(
    r"\b(?:(ca|wo|do|does|did|is|are|was|were|have|has|had|could|would|should)n'?t|(can)'?t|"
    r"(that|it|what|there|here|everything|he|she|who|where|how|this)'?s|(i)'?m|(you|we|they)'re|"
    r"(i|you|we|they)'ve|(i|you|we|they|that|it|this)'ll|(i|you|we|they|that|it)'d|(thats)|"
    r"(dont))\b"
)
_CONTRACTION_SUFFIX = ("", " not", "not", " is", " am", " are", " have", " will", " would")


def _contraction(m: re.Match[str]) -> str:
    i = m.lastindex or 0
    word = m.group(i)
    if i == 9:
        return "that is"
    if i == 10:
        return "do not"
    if i == 1:
        word = {"ca": "can", "wo": "will"}.get(word, word)
    return word + _CONTRACTION_SUFFIX[i]


_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d\u2190-\u21ff\u2300-\u23ff]"
)
_BAD_EMOJI = frozenset("👎😡😠🤬😤😞😟😢😭😩😫🙁☹😕😒💔⚠❌❗❓⁉‼😖😣😔🤔😧😦😨😰😱")
_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_LATIN_WORD = re.compile(r"[a-z]+")
_OTHER_LETTER = re.compile(r"[^\W\d_a-z\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u1100-\u11ff"
                           r"\u3130-\u318f\ue000-\ue0ff]")
_SENTENCE = re.compile(r"(?<=[.!?。！？…])\s*|\n+|(?<=[;；])\s*")
_CLAUSE = re.compile(r"[,，、:：]|\s[-–—]\s")
_DIGIT = re.compile(r"\d")
_SPACES = re.compile(r"[ \t\u3000]+")
_PUNCT = re.compile(r"[^\w\s\ue000-\ue0ff?¿]")


# Alternatives are tried in this order at each position: longer, more specific phrases first.
_ORDER = (
    "gratitude", "thanks", "closing", "decline", "nevermind", "hypothetical", "farewell", "praise",
    "acceptance", "received", "resolved", "ok", "no", "positive", "affirm", "greeting",
    "question", "request", "problem", "contrast", "new_topic",
)


def _top_level(pattern: str) -> list[str]:
    """Split a regex on its top-level '|'."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = pattern.index("]", i + 2)
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


def _close(pattern: str, i: int) -> int:
    """Index of the ')' closing the group opened at pattern[i]."""
    depth = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = pattern.index("]", i + 2)
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(pattern)


_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")


def _first_letters(alt: str) -> frozenset[str] | None:
    """Letters a match of `alt` can start with; None when unknown (or possibly empty)."""
    while alt.startswith(("^", "(?<!", "(?<=")):
        alt = alt[1:] if alt[0] == "^" else alt[_close(alt, 0) + 1 :]
    if not alt:
        return None
    if alt[0] in _LETTERS:
        return frozenset(alt[0]) if alt[1:2] not in ("?", "*", "{") else None
    if alt.startswith("(?:"):
        end = _close(alt, 0)
        heads = [_first_letters(a) for a in _top_level(alt[3:end])]
        if any(h is None for h in heads):
            return None
        first = frozenset().union(*(h for h in heads if h is not None))
        if alt[end + 1 : end + 2] in ("?", "*"):
            rest = _first_letters(alt[end + 2 :])
            return None if rest is None else first | rest
        return first
    return None


def _by_first_letter(patterns: list[str]) -> str:
    """The same alternation, bucketed behind one-letter lookaheads.

    Python's `re` tries every alternative at every word start; bucketing alternatives by the
    letter they can start with makes a position cost ~30 cheap tests instead of ~200 attempts.
    Alternatives keep their relative order inside each bucket, so the match is unchanged.
    """
    alts = [a for p in patterns for a in _top_level(p)]
    heads = [_first_letters(a) for a in alts]
    buckets = []
    for letter in sorted(_LETTERS):
        inside = [a for a, h in zip(alts, heads, strict=True) if h is None or letter in h]
        if inside:
            buckets.append(f"(?={letter})(?:{'|'.join(inside)})")
    unknown = [a for a, h in zip(alts, heads, strict=True) if h is None]
    if unknown:
        buckets.append(f"(?![a-z])(?:{'|'.join(unknown)})")
    return "|".join(buckets)


class _Lexicon:
    """One regex for Latin-script phrases (word-bounded) and one for CJK phrases (substrings)."""

    def __init__(self, latin: dict[str, tuple[str, ...]], cjk: dict[str, tuple[str, ...]],
                 longest: bool = False):
        def bodies(lex: dict[str, tuple[str, ...]], nfkc: bool) -> list[tuple[str, str]]:
            out = []
            for cat in sorted(lex, key=_ORDER.index):
                pats = [unicodedata.normalize("NFKC", p) if nfkc else p for p in lex[cat]]
                out.append((cat, "|".join(pats) if nfkc else _by_first_letter(pats)))
            return out

        def latin_word(body: str) -> str:
            return f"(?<![a-z0-9])(?:{body})(?![a-z0-9])"

        latin_bodies, cjk_bodies = bodies(latin, False), bodies(cjk, True)
        self.latin = re.compile(latin_word("|".join(f"(?P<{c}>{b})" for c, b in latin_bodies)))
        self.cjk = re.compile("|".join(f"(?P<{c}>{b})" for c, b in cjk_bodies))
        # Each category alone, to let the longest phrase at a position win over an earlier
        # category's shorter one ("no" must not take the "no" of "no problem").
        self._alone = {
            self.latin: [(c, re.compile(latin_word(b))) for c, b in latin_bodies],
            self.cjk: [(c, re.compile(b)) for c, b in cjk_bodies],
        } if longest else {self.latin: [], self.cjk: []}

    def _patterns(self, text: str) -> list[re.Pattern[str]]:
        out = []
        if _HAS_LATIN.search(text):
            out.append(self.latin)
        if _CJK_CHAR.search(text):
            out.append(self.cjk)
        return out

    def mark(self, text: str) -> str:
        """Replace every phrase by its category marker, the longest phrase at each position."""
        for pattern in self._patterns(text):
            parts, pos = [], 0
            while (m := pattern.search(text, pos)) is not None:
                start, end, cat = m.start(), m.end(), m.lastgroup or "ok"
                for other, alone in self._alone[pattern]:
                    longer = alone.match(text, start)
                    if longer is not None and longer.end() > end:
                        end, cat = longer.end(), other
                parts += [text[pos:start], f" {MARK[cat]} "]
                if end == start:  # an empty match: keep the character, as re.sub does
                    parts.append(text[start : start + 1])
                    end += 1
                pos = end
            text = "".join(parts) + text[pos:]
        return text

    def find(self, text: str) -> list[tuple[str, str]]:
        """(category, matched text) of every phrase."""
        return [
            (m.lastgroup or "", m.group()) for p in self._patterns(text) for m in p.finditer(text)
        ]


_HAS_LATIN = re.compile(r"[a-z]")
_PROTECTED = _Lexicon(PROTECTED_LATIN, PROTECTED_CJK, longest=True)
_SIGNALS = _Lexicon(SIGNALS_LATIN, SIGNALS_CJK)
_ACK = _Lexicon(ACK_LATIN, ACK_CJK)


# A need in a relative clause hanging on a closing is part of it, not a request: "that covers
# everything | I needed", "that's all | the info I am going to need", "that's all | need today".
_REL_NEED = re.compile(
    MARK["closing"] + r"\s*(?:(?:of )?(?:the |my |our )?(?:info|information|help|details) )?"
    r"(?:that )?(?:(?:i|we) )?(?:(?:am|are) going to |will |would |really |ever )?"
    r"(?:need|needed|want|wanted|require|required|was looking for|asked for|came for)(?![a-z])"
)


_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")
# Tokenised or apostrophe-less contractions: "that 's", "do n't", "do nt", "that s", "i m".
_SPLIT_CONTRACTION = re.compile(r"\b([a-z]+) (?:'(s|m|re|ve|ll|d)|(n'?t)|(s|m))(?![a-z'])")
_BARE_S = frozenset({"that", "it", "what", "there", "here", "he", "she", "this", "everything"})


def _join_contraction(m: re.Match[str]) -> str:
    word, clitic, negation, bare = m.groups()
    if negation:
        return word + "n't"
    if bare and not ((bare == "s" and word in _BARE_S) or (bare == "m" and word == "i")):
        return m.group()
    return f"{word}'{clitic or bare}"


# Contractions typed without the apostrophe ("isnt", "havent", "youve", "thatll"), where the
# bare form is no other word ("were", "well", "ill" and "its" stay as they are). A negation lost
# this way hid the problem: "it isnt working thanks" read as "working" + thanks.
_NO_APOSTROPHE = re.compile(
    r"\b(?:(is|are|was|were|do|does|did|has|have|had|could|would|should|ca|wo|must|need)nt"
    r"|(i|you|we|they)(ve)|(you|they|that|it|this)(ll)|(you|they)(re))\b"
)


def _apostrophe(m: re.Match[str]) -> str:
    if m.group(1):
        return m.group(1) + "n't"
    word, clitic = (g for g in m.groups()[1:] if g)
    return f"{word}'{clitic}"


def _slips(word: str) -> set[str]:
    """Strings one slip of the keyboard away: two letters swapped, one dropped or one doubled."""
    swapped = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
    dropped = {word[:i] + word[i + 1 :] for i in range(len(word))}
    doubled = {word[:i] + word[i] + word[i:] for i in range(len(word))}
    return swapped | dropped | doubled


# "thnaks", "tahnk you", "thnak", "thankks": a slip in the thanks itself. Substituted letters are
# not slips here ("think" is one letter from "thank"), and real words stay ("than", "tanks").
_THANKS_SLIPS = frozenset(
    w for w in _slips("thanks") | _slips("thank") if w[:1] == "t" and len(w) >= 4
) - {"thank", "thanks", "than", "tank", "tanks", "thnk"}  # "thnk" may be "think"
_WORD = re.compile(r"[a-z]{4,7}")


def _thanks_slip(m: re.Match[str]) -> str:
    word = m.group()
    return ("thanks" if word.endswith("s") else "thank") if word in _THANKS_SLIPS else word


def _expand(sentence: str) -> str:
    if " '" in sentence or " n" in sentence or " s" in sentence or " m" in sentence:
        sentence = _SPLIT_CONTRACTION.sub(_join_contraction, sentence)
    sentence = _NO_APOSTROPHE.sub(_apostrophe, sentence)
    if "t" in sentence:
        sentence = _WORD.sub(_thanks_slip, sentence)
    if "'" in sentence or "thats" in sentence or "dont" in sentence:
        sentence = _CONTRACTION.sub(_contraction, sentence).replace("'", " ")
    if "-" in sentence:
        sentence = _HYPHEN.sub(" ", sentence)
    return " ".join(sentence.replace('"', " ").split())


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True, slots=True)
class AckResult:
    """Outcome of acknowledgement detection, with evidence a human can check."""

    is_ack: bool
    confidence: float
    reasons: tuple[str, ...]
    categories: frozenset[str] = frozenset()
    signals: tuple[str, ...] = ()


@functools.lru_cache(maxsize=1024)
def _names(sender: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """Latin name tokens (folded) and CJK name strings of the sender."""
    display = parseaddr(sender)[0] if "<" in sender or "@" in sender else sender
    latin: set[str] = set()
    cjk: list[str] = []
    for token in fold(display).replace(",", " ").split():
        if _CJK_CHAR.search(token):
            cjk.append(token)
            if len(token) == 3 and re.fullmatch(r"[\uac00-\ud7af]{3}", token):
                cjk.append(token[1:])  # Korean given name
        elif len(token) > 1:
            latin.add(token)
    joined = "".join(t for t in cjk if len(t) >= 2)
    if joined:
        cjk.insert(0, joined)
    return frozenset(latin), tuple(sorted({c for c in cjk if len(c) >= 2}, key=len, reverse=True))


_SIGNOFF = re.compile(r"^[\w.\s]{1,30}?\s?(?:드림|올림|배상|拝|より|上)$")


def _drop_signoff(lines: list[str], latin_names: frozenset[str]) -> list[str]:
    """Drop trailing name lines ("Lukas Schneider", "鈴木", "백승연 드림")."""
    while len(lines) > 1:
        last = lines[-1].strip()
        words = last.split()
        is_name = (
            bool(_SIGNOFF.match(last))
            or (0 < len(words) <= 3 and all(w[:1].isupper() and w.isalpha() for w in words)
                and not _SIGNALS.find(_expand(fold(last))))
            or (0 < len(last) <= 5 and all(_CJK_CHAR.match(c) for c in last.replace(" ", ""))
                and not _SIGNALS.find(last) and not _ACK.find(last))
            or (bool(words) and all(fold(w) in latin_names for w in words))
        )
        if not is_name:
            break
        lines.pop()
    return lines


def _thanks_at_edge(clause: str) -> bool:
    """Thanks comes before the clause's content (after filler and other markers): "thanks for X".

    A trailing thanks ("East part of town thank you") does not make the words before it
    gratitude: they are an answer or a request, politely closed.
    """
    words = [w for w in FILLER_CJK.sub(" ", clause).split() if w not in FILLER]
    if not words:
        return False
    lead = next((i for i, w in enumerate(words) if w[0] not in CAT_OF), len(words))
    if any(w[0] == MARK["thanks"] for w in words[:lead]):
        return True  # "that's all but thanks for asking": markers, then the thanked object
    # Korean and Japanese put the verb of thanks last, its object before it: "친절한 안내
    # 감사합니다", "ご連絡ありがとう". A noun phrase there is what is thanked for; a finished
    # sentence ("그렇게 할게요 감사합니다") is not.
    before = clause.rsplit(MARK["thanks"], 1)[0].rstrip()
    return (words[-1][0] == MARK["thanks"] and bool(_KANA_HANGUL.search(before))
            and not _SENTENCE_END.search(before))


_BUT = re.compile(r"(?<![a-z])but(?![a-z])")
_THOUGH = re.compile(r"(?<![a-z])though(?=[ .!]*$)")


def _only_closing(part: str) -> bool:
    part = _ACK.mark(part)
    marks = {CAT_OF[c] for c in part if c in CAT_OF}
    content = _clause_content(part, frozenset())[0]
    return bool(marks - WEAK) and not content and not _SIGNALS.find(part)


def _closing_contrast(masked: str) -> str:
    """Drop a contrast that only closes: "Thanks, but I'm all set", "thanks anyway though"."""
    m = _BUT.search(masked)
    if m and _only_closing(masked[m.end():]):
        masked = masked[: m.start()] + masked[m.end():]
    m = _THOUGH.search(masked)
    if m and _only_closing(masked[: m.start()]):
        masked = masked[: m.start()] + masked[m.end():]
    return masked


def _evaluation(clause: str, marks: set[str], content: list[str]) -> bool:
    """A short CJK subject with a positive predicate ("时间很合理"): a remark, not a request.

    The evaluation closes the clause; what precedes it is what is evaluated. Not in Latin
    script, where "Charlie Chan sounds good" or "Tomorrow would be great" picks an offer.
    """
    return (marks == {"positive"} and clause.rstrip(" .!~。")[-1:] == MARK["positive"]
            and len(content) == 1 and bool(_CJK_CHAR.match(content[0]))
            and len(content[0]) <= MAX_EXTRA_HAN // 2)


# The customer's own next step ("I'll check it out", "we will handle the rest") asks nothing of
# the desk: beside thanks or a closing it is neither a request nor content. A step that needs
# something ("I will need a taxi") is a request, and signals have vetoed the sentence already;
# a longer one acts on what was said ("I'll keep that in mind", "I'll give them a call") or names
# a new object ("I'll listen to that song"), which may be a choice.
_OWN_STEP = re.compile(
    r"^[\s\ue000-\ue0ff]*(?:(?:so|then|well|and|now) )?(?:i|we) "
    r"(?:will|shall|am going to|are going to|(?:think|guess) (?:i|we) will)"
    r"(?: (?:just|probably|definitely|certainly|then|now|be sure to|make sure to))? "
    r"(?!(?:need|want|require|have to|be needing|be wanting|also)(?![a-z]))[a-z]+"
    r"(?:(?: [a-z]+){0,2}| (?:it|that|this|them|those|these)(?: [a-z]+){1,3})"
    r"[\s.!\ue000-\ue0ff]*$"
)

# The same in Chinese: "我会去看看的", "我们这就过去" (I / we + will / right away + go).
_OWN_STEP_ZH = re.compile(
    r"^[\s\ue000-\ue0ff]*(?:那|好)?(?:我|我们)(?:会|就|这就|马上|现在就?|一会儿?|等下|改天|明天)"
    r"(?:去|过去|来|出发|试试|看看|去看看)(?:的|了|吧|哈)?[\s.!。~\ue000-\ue0ff]*$"
)


# A Chinese evaluation: a degree adverb before its predicate ("很近", "太惨了", "好多好吃的") or
# an exclamatory particle closing it. "订单号我忘了" (an event) and "换一个吧" (a proposal) are not.
_REMARK_ZH = re.compile(
    r"(?:很|挺|真|太|非常|特别|蛮|超|这么|那么|多么|好(?=[^\s,.!。]))\S|[啊呀哇嘛]\s*[.!。~]*\s*$"
)


# Formulas that open or close an utterance of their own: without punctuation ("No that would
# be fine Thank you That was all I needed") they are where one clause ends and the next begins.
_FORMULAS = frozenset({"thanks", "gratitude", "farewell", "closing"})
_KANA_HANGUL_LATIN = re.compile(r"[a-z\u3040-\u30ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_BEFORE_FORMULA = re.compile("(?=[" + "".join(MARK[c] for c in sorted(_FORMULAS)) + "])")


def _segments(clause: str, latin_names: frozenset[str]) -> list[str]:
    """A clause cut before each formula, unless it is gratitude as a whole ("thanks for X")."""
    # Unpunctuated Chinese runs a remark into its thanks ("是很高谢谢你哈"): one formula is enough.
    chinese = bool(_CJK_CHAR.search(clause)) and not _KANA_HANGUL_LATIN.search(clause)
    formulas = 2 * any(CAT_OF.get(c) in _FORMULAS for c in clause) if chinese else sum(
        c in CAT_OF for c in clause)
    if formulas < 2 or not _clause_content(clause, latin_names)[0] or _thanks_at_edge(clause):
        return [clause]
    return [part for part in _BEFORE_FORMULA.split(clause) if part.strip()]


def _clause_content(clause: str, latin_names: frozenset[str]) -> tuple[list[str], bool]:
    """Content left in a clause after markers and filler; flag: content in an unknown script."""
    rest = FILLER_CJK.sub(" ", clause)
    words = [w for w in _LATIN_WORD.findall(rest) if w not in FILLER and w not in latin_names]
    cjk = "".join(_CJK_CHAR.findall(rest))
    other = bool(_OTHER_LETTER.search(rest))
    content = words + ([cjk] if len(cjk) > 1 else [])
    return content, other


# Beside a closing, other words are tolerated only when they are few: about four words, i.e.
# four Latin-script words or eight Chinese characters (a Chinese word is ~2). Korean and
# Japanese are not capped by length: their polite register routinely narrates relief at length
# ("걱정했는데 한 번에 해결돼서 마음이 놓이네요"); their request and problem lexicons guard them.
MAX_EXTRA_WORDS = 4
MAX_EXTRA_HAN = 8
# Korean and Japanese sentence-final endings (polite, plain, past): a finished sentence.
_SENTENCE_END = re.compile(r"(?:[요다죠까네군るた]|ます|です|ません|ない|たい)$")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")


def _short(leftovers: list[str], text: str) -> bool:
    """The content left beside a closing is short enough to be a remark, not a request."""
    cjk = [len(_CJK_CHAR.findall(w)) for w in leftovers]
    if cjk.count(0) > MAX_EXTRA_WORDS:
        return False
    return sum(cjk) <= MAX_EXTRA_HAN or bool(_KANA_HANGUL.search(text))


_JAMO_WORDS = {"ㅇㅋ": " 오케이 ", "ㄱㅅ": " 감사 ", "ㄳ": " 감사 ", "ㅇㅇ": " 응 "}
_JAMO = re.compile(r"[\u3131-\u318e]+")


def _jamo(m: re.Match[str]) -> str:
    """Korean chat jamo, before NFKC would fuse them: ㅇㅋ -> 오케이; ㅎㅎ, ㅠㅠ dropped."""
    return _JAMO_WORDS.get(m.group(), " ")


def detect(reply: str, sender: str = "") -> AckResult:
    """Decide whether `reply` (quotes and signature stripped) only acknowledges."""
    raw = unicodedata.normalize("NFKC", _JAMO.sub(_jamo, reply))
    emoji = _EMOJI.findall(raw)
    if any(e in _BAD_EMOJI for e in emoji):
        return AckResult(False, 0.0, ("negative emoji",), signals=("negative emoji",))
    latin_names, cjk_names = _names(sender)
    lines = [ln for ln in (_EMOJI.sub(" ", x).strip() for x in raw.splitlines()) if ln]
    lines = _drop_signoff(lines, latin_names)
    text = fold("\n".join(lines))
    for name in cjk_names:
        text = text.replace(name, " ")
    if not text.strip(" \n.!~"):
        if emoji:
            return AckResult(True, 0.9, (f"only positive emoji: {''.join(emoji)!r}",),
                             frozenset({"ok"}))
        return AckResult(False, 0.0, ("empty reply",))

    categories: set[str] = set()
    clauses: list[str] = []
    for sentence in _SENTENCE.split(text):
        sentence = _expand(sentence)
        if not sentence:
            continue
        masked = _closing_contrast(_REL_NEED.sub(MARK["closing"], _PROTECTED.mark(sentence)))
        signals = [f"{cat}: {found.strip(' ,:')!r}" for cat, found in _SIGNALS.find(masked)]
        if "?" in masked or "¿" in masked:
            signals.append("question: '?'")
        digit = _DIGIT.search(masked)
        if digit:
            signals.append(f"number: {digit.group()!r}")
        if signals:  # the first sentence with a signal decides; later ones are not read
            return AckResult(False, 0.0, tuple(dict.fromkeys(signals))[:3], signals=tuple(signals))
        clauses.extend(c for c in _CLAUSE.split(_ACK.mark(masked)) if c.strip())

    shown = " ".join(text.split())
    shown = shown if len(shown) <= 60 else shown[:57] + "..."

    full = soft = partial = 0
    other_script = False
    leftovers: list[str] = []
    closing_thanks = False
    remarks = True  # every clause with content is an evaluation (Chinese)
    clauses = [part for clause in clauses for part in _segments(clause, latin_names)]
    for clause in clauses:
        marks = {CAT_OF[c] for c in clause if c in CAT_OF}
        categories |= marks
        content, other = _clause_content(clause, latin_names)
        closing_thanks |= "thanks" in marks and not content
        if (marks - WEAK) and (not content or _thanks_at_edge(clause)):
            full += 1  # a clause led or closed by thanks is gratitude as a whole
        elif content and (_evaluation(clause, marks, content) or _OWN_STEP.match(clause)
                          or _OWN_STEP_ZH.match(clause)):
            continue
        elif content:
            remarks &= "positive" in marks or bool(_REMARK_ZH.search(clause))
            soft += not marks
            partial += bool(marks)
            other_script |= other
            leftovers.extend(content)
    cats = frozenset(categories)
    if not full:
        if language(text) == "other":
            return AckResult(False, 0.0, ("script not covered by the lexicons: reopen",), cats)
        return AckResult(False, 0.0, ("no acknowledgement vocabulary",), cats)
    if "affirm" in cats and not cats & (LICENSING | {"gratitude"}):
        return AckResult(False, 0.0, ("affirmative answer may confirm a pending action",), cats)
    label = "gratitude" if cats <= {"thanks", "gratitude", "greeting"} else "acknowledgement"
    if not soft and not partial:
        conf = 0.97 if cats - {"ok", "greeting"} else 0.93
        return AckResult(True, conf, (f"only {label} after quote stripping: {shown!r}",), cats)
    # In Chinese a clause of thanks beside evaluations ("这两个地方离得很近，谢谢你啊！") closes
    # the exchange: a request would carry its own signal (请, 吗, 想, 要, 帮我查), an event or a
    # proposal ("订单号我忘了", "换一个吧") is no evaluation. English and Korean/Japanese answers
    # end on thanks too ("In Napa, thanks", "그렇게 할게요 감사합니다"): there a bare thanks
    # licenses nothing.
    closing_thanks &= remarks and bool(_CJK_CHAR.search(text)) and not _KANA_HANGUL.search(text)
    if ((cats & LICENSING or closing_thanks) and not other_script and soft <= max(2, full)
            and _short(leftovers, text)):
        extra = " ".join(leftovers)[:40]
        return AckResult(
            True,
            0.85,
            (f"{label} with a closing and no request signal: {shown!r}",
             f"other words carry no request: {extra!r}"),
            cats,
        )
    return AckResult(False, 0.0, (f"content beyond acknowledgement: {' '.join(leftovers)[:40]!r}",),
                     cats)
