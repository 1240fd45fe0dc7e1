"""Same issue or a new one? Content matching of a fresh inbound mail against an open ticket.

Pure and deterministic: no I/O, no model, standard library only. Used when a customer writes a
fresh email (no In-Reply-To/References, new subject) while a ticket of theirs is open.

The score is a sum of log-odds evidence, squashed to a confidence in [0, 1]:

* content similarity: content tokens (NFKC, lowercased; words with light stemming for
  space-separated scripts, Hangul words stripped of particles/endings then character bigrams,
  Han bigrams, Katakana words; stopwords, greeting/thanks vocabulary, the people's names and the
  words of the agent's greeting/signature dropped) of the inbound against the ticket subject,
  the customer's messages and (weighted down) the agent's; a blend of the weighted set cosine
  and the best-matching inbound sentence. Short mails lean on a mild prior instead;
* identifiers (order, booking, tracking numbers, codes) and amounts: the same id is strong
  evidence for the same issue, a different id of the same shape for a new one;
* an open request of the agent (photos, a serial number, the e-mail address...) that the mail
  takes up, by its words or by supplying a value of the asked kind;
* references to the earlier contact ("as requested", "any update", "요청하신", "再送", "之前")
  push toward the same issue; persistence/escalation words ("still", "계속", "まだ") too, but
  only as far as the content overlaps; "another / separate question" ("별도", "別件", "另外",
  "autre", "andere") toward a new one;
* time since the ticket's last activity (``idle_days``) lowers the confidence slowly.

A wrong "thread" hides a new request inside an old ticket, as costly as a false
acknowledgement. So the score alone never joins: ``judge`` joins only on strong evidence that it
is the same request (an identifier in both, or a chaser that names the ticket by its subject or an
identifier), never for machine mail (``auto``, no-reply senders, subjects that differ only in
numbers), and its confidence is a calibrated probability of being right (Platt scaling fitted on
dev data by ``eval/calibration.py``). Weak evidence opens a new ticket with a ``related`` hint.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tidydesk.text import lexicon
from tidydesk.text.morph import korean_content
from tidydesk.text.normalise import normalize
from tidydesk.text.normalise import strip_accents as _fold
from tidydesk.text.script import is_hangul as _is_hangul
from tidydesk.text.script import script as _script

__all__ = [
    "DEFAULT_THRESHOLD",
    "Evidence",
    "Identifier",
    "Judgement",
    "calibrate",
    "content_tokens",
    "identifiers",
    "judge",
    "machine_sender",
    "match",
    "normalize",
    "score",
    "subject_key",
    "templated",
]

DEFAULT_THRESHOLD = 0.8  # a wrong join costs like a false acknowledgement
AGENT_WEIGHT = 0.7  # a token known only from the agent's messages counts this much
BIAS = 0.2  # log-odds at the content similarity SIM_MID, without any other evidence
SIM_SLOPE = 8.0
SIM_MID = 0.4
MAX_CHARS = 20_000  # longer texts are cut: the first 20k characters say what a mail is about
MAX_MESSAGES = 30  # only the ticket's most recent messages are compared
FULL_MASS = 4.0  # inbound content weight from which the overlap counts in full
SHORT_PRIOR = -0.8  # log-odds for a mail too short to compare, before markers


class PastText(Protocol):
    """One earlier message of the ticket: who wrote it and its newly written text."""

    @property
    def author(self) -> str: ...
    @property
    def text(self) -> str: ...


class TicketView(Protocol):
    """What matching needs of a ticket (the policy layer's ``TicketView`` has it)."""

    @property
    def subject(self) -> str: ...
    @property
    def requester(self) -> str: ...
    @property
    def messages(self) -> Sequence[PastText]: ...

# --------------------------------------------------------------------------------------------
# Vocabulary (services/text/data/<lang>.json)

_STOP_LATIN = lexicon.union("function_words", lexicon.LATIN)
# Generic support vocabulary: present in most tickets, weak evidence of a specific issue.
_GENERIC_LATIN = lexicon.union("generic_words", lexicon.LATIN)
_ZH_STOP_BIGRAMS = lexicon.language("zh").stop_bigrams
# Chinese/Japanese function characters: a bigram holding one is grammar, not content.
_HAN_FUNCTION = frozenset(lexicon.language("zh").function_chars)
_JA_STOP_BIGRAMS = lexicon.language("ja").stop_bigrams

# Marker phrases, as regular expressions over the normalised text (NFKC, lowercase). Latin
# phrases are matched at a word start. Tiers:
#   ref  - the mail refers to the earlier contact: a chaser, a resend, "as requested";
#   weak - persistence or escalation ("still", "again", "complaint"): only counts together with
#          some content overlap, because a new problem is described with the same words;
#   new  - an explicitly different matter ("another / separate question", "別件", "另外");
#   wnew - a weaker hint of a new matter ("also", "by the way", "newly bought").
_MARKER_RES: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    tier: [
        (pat, re.compile(("(?<![a-zà-ÿ])" if re.match(r"[a-z(]", pat) else "") + pat))
        for code in lexicon.CODES for pat in getattr(lexicon.language(code).markers, tier)
    ]
    for tier in ("ref", "weak", "new", "wnew")
}
# Longest alternatives first, so that "still waiting" goes before "still".
_ANY_MARKER_RE = re.compile("|".join(
    f"(?:{rx.pattern})" for rx in sorted(
        (rx for tier in _MARKER_RES.values() for _p, rx in tier),
        key=lambda rx: -len(rx.pattern))
))

# The agent asks the customer for something (photos, a serial number, the app version...).
_REQUEST_RE = re.compile(
    r"(please|could you|can you|would you|kindly|send us|let us know|we (will |'ll )?need|"
    r"bitte|könnten sie|können sie|senden sie|schicken sie|teilen sie|benötigen|"
    r"pourriez|pouvez-vous|veuillez|merci de (nous|me)|envoyez|"
    r"podría|puede|envíe|envíenos|indíque|necesitamos|facilít|"
    r"알려\s?주|보내\s?주|주시면|주시기|주세요|부탁드립니다|회신|첨부해|"
    r"教えて|お知らせ|お送り|ご送付|ご連絡|ご提供|いただけ|ください|"
    r"请|提供|发送|告知|告诉|麻烦|上传|发给)"
)

_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_MONTH_RE = re.compile(
    r"(?<![a-zà-ÿ])(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|januar|februar|märz|mai|juni|"
    r"juli|oktober|dezember|janvier|février|mars|avril|juin|juillet|août|septembre|octobre|"
    r"novembre|décembre|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|"
    r"noviembre|diciembre)[a-zé]*\.? ?\d{1,2}(?!\d)|(?<!\d)\d{1,2}\.? (jan|feb|mar|apr|may|jun|jul|"
    r"aug|sep|oct|nov|dec|januar|februar|märz|mai|juni|juli|oktober|dezember|janvier|février|mars|"
    r"avril|juin|juillet|août|septembre|octobre|novembre|décembre|de enero|de febrero|de marzo|"
    r"de abril|de mayo|de junio|de julio|de agosto|de septiembre|de octubre|de noviembre|"
    r"de diciembre)"
)
_ATTACH_RE = re.compile(r"attach|첨부|添付|附上|附件|anbei|anhang|ci-joint|pièce jointe|adjunt")
# What an agent asks for, and how to see that a mail supplies it. The lexical overlap already
# catches answers that reuse the request's words; these catch answers that only give the value.
_ASKED_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email address", re.compile(r"e-?mail|メール|이메일|메일 ?주소|邮箱|邮件地址|correo|adresse")),
    ("number", re.compile(r"number|serial|order|booking|tracking|reference|code|번호|코드|番号|"
                          r"コード|编号|单号|号码|账号|nummer|numéro|número|código|referenz")),
    ("photo", re.compile(r"photo|picture|image|screenshot|video|사진|캡처|영상|写真|画像|"
                         r"スクリーンショット|動画|照片|图片|截图|视频|foto|bild|captura|imagen")),
    ("date", re.compile(r"when|date|what time|언제|날짜|일시|いつ|日時|日付|什么时候|日期|时间|"
                        r"wann|datum|quand|cuándo|fecha")),
)


def _supplies(kind: str, text: str, new_ids: Sequence[str]) -> bool:
    t = normalize(text)
    if kind == "email address":
        return bool(_EMAIL_RE.search(t))
    if kind == "number":
        return bool(new_ids)
    if kind == "photo":
        return bool(_ATTACH_RE.search(t)) or bool(_ASKED_TYPES[2][1].search(t))
    if kind == "date":
        return bool(_MONTH_RE.search(t)) or any(rx.search(t) for rx in _DATE_RES)
    return False


# --------------------------------------------------------------------------------------------
# Cleaning: greeting / closing / signature lines


_DEVICE_RE = re.compile(
    r"^(sent from my|get outlook|envoyé de mon|envoyé à partir|von meinem|gesendet von|"
    r"enviado desde|iphoneから送信|iphone에서 보냈|갤럭시에서|samsung galaxy|"
    r"发自我的|从我的|android에서|this email was sent|이 메일은)"
)
_CLOSING_RE = re.compile(
    r"^(thanks|thank you|many thanks|best|best regards|kind regards|regards|cheers|sincerely|"
    r"viele grüße|mit freundlichen grüßen|beste grüße|liebe grüße|grüße|lg|mfg|vg|"
    r"cordialement|bien à vous|merci|salutations|saludos|atentamente|un saludo|gracias|"
    r"감사합니다|고맙습니다|수고하세요|よろしくお願い|宜しくお願い|以上|谢谢|祝好|此致)"
)


def _content_lines(text: str, *, agent: bool) -> list[str]:
    """Lines of newly written text, without device lines, closing and (for agents) the
    greeting/intro paragraph and the closing/signature paragraph."""
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for ln in lines:
        low = normalize(ln)
        if _DEVICE_RE.match(low) or low.startswith(("--", "__")):
            break
        out.append(ln)
    if agent:
        paras: list[list[str]] = [[]]
        for ln in out:
            if ln:
                paras[-1].append(ln)
            elif paras[-1]:
                paras.append([])
        paras = [p for p in paras if p]
        if len(paras) >= 3:
            paras = paras[1:-1]
            # a short courtesy paragraph ("Thanks for contacting X.") is not the body either
            if len(paras) >= 2 and len(" ".join(paras[0])) < 60:
                paras = paras[1:]
        elif len(paras) == 2:
            paras = [max(paras, key=lambda p: len(" ".join(p)))]
        out = [ln for p in paras for ln in p]
    # drop a trailing closing / name block (short lines after the last long line)
    while out and (not out[-1] or (len(out[-1]) <= 30 and _CLOSING_RE.match(normalize(out[-1])))):
        out.pop()
    return out


# --------------------------------------------------------------------------------------------
# Identifiers and amounts


@dataclass(frozen=True)
class Identifier:
    """An order/booking/tracking number or code, normalised, with its shape ("kind")."""

    text: str  # as written (NFKC)
    key: str  # uppercase, separators removed
    kind: str  # letter prefix + digit count bucket, e.g. "PG#8", "#12"


_CURRENCY_BEFORE = r"(?:[$€£¥₩]|usd|eur|gbp|chf|rmb|cny|krw|jpy|us\$)"
_CURRENCY_AFTER = r"(?:원|円|元|块|엔|유로|달러|€|eur|euro|euros|usd|dollars?|chf|yen|krw|rmb)"
_AMOUNT_RE = re.compile(
    rf"{_CURRENCY_BEFORE}\s?(\d[\d,.' ]*\d|\d)|(\d[\d,.' ]*\d|\d)\s?{_CURRENCY_AFTER}(?![a-z])"
)
_DATE_RES = (
    re.compile(r"\b\d{4}[-./]\d{1,2}[-./]\d{1,2}\b"),
    re.compile(r"\b\d{1,2}[-./]\d{1,2}[-./]\d{2,4}\b"),
    re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b"),
    re.compile(r"\d{4}\s?년\s?\d{1,2}\s?월(\s?\d{1,2}\s?일)?|\d{1,2}\s?월\s?\d{1,2}\s?일"),
    re.compile(r"\d{4}\s?年\s?\d{1,2}\s?月(\s?\d{1,2}\s?日)?|\d{1,2}\s?月\s?\d{1,2}\s?[日号]"),
)
_ID_RE = re.compile(r"(?<![\w@.])#?([a-z0-9][a-z0-9]*(?:[-_/][a-z0-9]+)*)(?![\w@])")


def _amount_key(raw: str) -> str:
    digits = re.sub(r"[^\d.,]", "", raw)
    # "48,000" / "48.000" / "1,234.50": drop thousands separators, keep cents only if not 00
    m = re.fullmatch(r"(\d{1,3}(?:[.,' ]\d{3})*|\d+)(?:[.,](\d{1,2}))?", digits)
    if not m:
        return digits
    whole = re.sub(r"\D", "", m.group(1))
    cents = m.group(2) or ""
    return whole if cents.strip("0") == "" else f"{whole}.{cents}"


def amounts(text: str) -> set[str]:
    """Money amounts, as normalised numbers ("48000", "180", "12.50")."""
    t = normalize(text)
    return {_amount_key(m.group(1) or m.group(2)) for m in _AMOUNT_RE.finditer(t)}


def _strip_dates_amounts(t: str) -> str:
    t = _AMOUNT_RE.sub(" ", t)
    for rx in _DATE_RES:
        t = rx.sub(" ", t)
    return t


def _id_matches(t: str) -> list[tuple[int, int, Identifier]]:
    """Identifier spans in text already normalised and stripped of dates and amounts."""
    # CJK characters are word characters for \w; make them boundaries (same length).
    masked = "".join(c if (c.isascii() or not c.isalnum()) else " " for c in t)
    out: list[tuple[int, int, Identifier]] = []
    for m in _ID_RE.finditer(masked):
        raw = m.group(1)
        key = re.sub(r"[-_/]", "", raw).upper()
        digits = sum(c.isdigit() for c in key)
        letters = sum(c.isalpha() for c in key)
        if digits == 0:
            continue
        if letters == 0:
            if digits < 5:
                continue  # quantities, years, short numbers
        elif digits + letters < 4 or letters > 12:
            continue  # "s24", "14a", "mp3": models and seats are not ids; long words are words
        elif re.fullmatch(r"\d+(st|nd|rd|th|am|pm|h|min|kg|g|cm|mm|m|km|gb|mb|tb|ml|l|x|pcs"
                          r"|er|e|eme|ème|ko|mo|go)", raw):
            continue
        prefix = re.match(r"[A-Z]*", key)
        pre = prefix.group(0) if prefix else ""
        if re.fullmatch(r"[A-Z]*[0-9]+", key):
            kind = f"{pre}#{digits}" if pre else f"#{_digit_shape(raw)}"
        elif re.fullmatch(r"[0-9]+[A-Z]+", key):
            kind = f"#{_digit_shape(raw)}"
        else:
            kind = f"*{len(key)}"  # mixed codes: booking references, vouchers, serials
        ident = Identifier(text=m.group(0).lstrip("#").upper(), key=key, kind=kind)
        out.append((m.start(), m.end(), ident))
    return out


def identifiers(text: str) -> list[Identifier]:
    """Order/booking/tracking numbers and codes: runs of letters and digits with at least one
    digit, long enough not to be a quantity, date, time or amount."""
    return list(_identifiers(text))


@functools.lru_cache(maxsize=512)
def _identifiers(text: str) -> tuple[Identifier, ...]:
    out: dict[str, Identifier] = {}
    for _s, _e, ident in _id_matches(_strip_dates_amounts(normalize(text))):
        out.setdefault(ident.key, ident)
    return tuple(out.values())


def _digit_shape(raw: str) -> str:
    groups = re.split(r"[-_/]", raw)
    if len(groups) > 1:
        return "-".join(str(len(g)) for g in groups)
    return str(len(raw))


def _same_kind(a: Identifier, b: Identifier) -> bool:
    if a.kind == b.kind:
        return True
    pa, _, da = a.kind.partition("#")
    pb, _, db = b.kind.partition("#")
    if pa and pa == pb and da.isdigit() and db.isdigit():
        return abs(int(da) - int(db)) <= 1
    if a.kind.startswith("*") and b.kind.startswith("*"):
        return abs(int(a.kind[1:]) - int(b.kind[1:])) <= 1
    return False


# --------------------------------------------------------------------------------------------
# Tokenisation


def _stem_latin(w: str) -> str:
    w = _fold(w)
    if len(w) <= 3 or w.isdigit():
        return w
    for suf in ("ations", "ation", "ungen", "ement", "ments", "ment", "ingly", "ings", "ing",
                "ness", "ions", "ion", "ies", "ied", "ed", "es", "er", "en", "s", "e", "y"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            break
    return w[:7]


def _runs(t: str) -> Iterable[tuple[str, str]]:
    cur, kind = "", ""
    for c in t:
        k = _script(c)
        if k != kind:
            if cur and kind:
                yield kind, cur
            cur, kind = c, k
        else:
            cur += c
    if cur and kind:
        yield kind, cur


def content_tokens(text: str, *, exclude: Iterable[str] = ()) -> dict[str, float]:
    """Content tokens of ``text`` with a specificity weight each (the max over occurrences).

    Latin/Cyrillic words: diacritics folded, stopwords dropped, light suffix stemming.
    Hangul: character bigrams of the nouns a morphological analyser finds (`tidydesk.text.morph`).
    Han: character bigrams of each run (a lone character on its own). Katakana: the whole run.
    Hiragana (Japanese grammar) is ignored. Identifiers, dates and amounts are left out (they
    are scored on their own).
    """
    return dict(_content_tokens(text, frozenset(normalize(e) for e in exclude)))


@functools.lru_cache(maxsize=1024)
def _content_tokens(text: str, excl: frozenset[str]) -> tuple[tuple[str, float], ...]:
    t = _strip_dates_amounts(normalize(text))
    for start, end, _ident in reversed(_id_matches(t)):
        t = t[:start] + " " * (end - start) + t[end:]  # identifiers are scored on their own
    toks: dict[str, float] = {}

    def add(tok: str, w: float) -> None:
        if w > toks.get(tok, 0.0):
            toks[tok] = w

    for word in re.split(r"\s+", t):
        if not word or word in excl:
            continue
        for kind, run in _runs(word):
            if kind == "word":
                if run in _STOP_LATIN or _fold(run) in _STOP_LATIN or run in excl:
                    continue
                if run.isdigit():
                    if len(run) >= 2:
                        add(run, 1.2)
                    continue
                if len(run) < 2:
                    continue
                st = _stem_latin(run)
                w = 0.4 if run in _GENERIC_LATIN or _fold(run) in _GENERIC_LATIN else (
                    1.0 if len(run) < 8 else 1.2)
                add("w:" + st, w)
            elif kind == "hangul":  # the analyser's nouns: particles and endings never count
                for noun in korean_content(run):
                    for i in range(len(noun) - 1):
                        add("k:" + noun[i : i + 2], 1.0 if i == 0 else 0.8)
            elif kind == "han":
                if len(run) == 1:
                    if run not in _HAN_FUNCTION:
                        add("h:" + run, 0.4)
                    continue
                for i in range(len(run) - 1):
                    bg = run[i : i + 2]
                    if (bg in _ZH_STOP_BIGRAMS or bg in _JA_STOP_BIGRAMS
                            or bg[0] in _HAN_FUNCTION or bg[1] in _HAN_FUNCTION):
                        continue
                    add("h:" + bg, 1.0)
            elif kind == "kata" and len(run) >= 2:
                add("j:" + run, 1.2)
    return tuple(toks.items())


# --------------------------------------------------------------------------------------------
# Scoring


@dataclass
class Evidence:
    """Everything ``score`` found, for reasons and debugging."""

    logit: float = 0.0
    similarity: float = 0.0  # the blend of the two below that enters the score
    content: float = 0.0  # set cosine of inbound vs ticket content tokens (weighted)
    best_sentence: float = 0.0  # best share of one inbound sentence found in the ticket
    ticket_cover: float = 0.0  # weighted share of the ticket's customer content in the inbound
    subject: float = 0.0  # subject-vs-subject overlap
    shared_ids: list[str] = field(default_factory=list)
    conflicting_ids: list[tuple[str, str]] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)
    shared_amounts: list[str] = field(default_factory=list)
    thread_markers: list[str] = field(default_factory=list)
    new_markers: list[str] = field(default_factory=list)
    weak_markers: list[str] = field(default_factory=list)
    weak_new_markers: list[str] = field(default_factory=list)
    reliability: float = 1.0  # how far the content overlap can be trusted (mail length)
    answers: float = 0.0  # share of the agent's request that the inbound takes up
    answered_types: list[str] = field(default_factory=list)  # e.g. "photo", "email address"
    reasons: list[str] = field(default_factory=list)


def _names(*addresses: str) -> set[str]:
    """Name parts of 'Name <email>' headers, to ignore them as content."""
    out: set[str] = set()
    for a in addresses:
        name, _, rest = a.partition("<")
        local = rest.split("@", 1)[0]
        for part in re.split(r"[\s,.\"'_]+", normalize(name) + " " + normalize(local)):
            if len(part) >= 2:
                out.add(part)
                if all(_is_hangul(c) for c in part) and len(part) >= 3:
                    out.add(part[1:])  # given name without the family name
    return out


def _markers(text: str, tier: str) -> list[str]:
    t = re.sub(r"[ \t]+", " ", normalize(text))
    found: list[str] = []
    for _pat, rx in _MARKER_RES[tier]:
        m = rx.search(t)
        if m and m.group(0).strip() not in found:
            found.append(m.group(0).strip())
    return found


@functools.lru_cache(maxsize=512)
def _strip_markers(text: str) -> str:
    """The text without marker phrases: they speak about the conversation, not the issue."""
    return _ANY_MARKER_RE.sub(" ", re.sub(r"[ \t]+", " ", normalize(text)))


def _sentences(text: str) -> list[str]:
    return [x for x in re.split(r"(?<=[.!?\u3002\uff01\uff1f])\s*|\n+", text) if x.strip()]


def _overlap(a: dict[str, float], b: dict[str, float]) -> float:
    total = sum(a.values())
    if total <= 0:
        return 0.0
    return sum(w for tok, w in a.items() if tok in b) / total


def _without(toks: dict[str, float], drop: set[str]) -> dict[str, float]:
    return {t: w for t, w in toks.items() if t not in drop} if drop else toks


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    """Shared weight over the geometric mean of both sides' total weight (set cosine)."""
    ma, mb = sum(a.values()), sum(b.values())
    if ma <= 0 or mb <= 0:
        return 0.0
    shared = sum(min(w, b[t]) for t, w in a.items() if t in b)
    return shared / math.sqrt(ma * mb)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def score(
    ticket: TicketView, sender: str, subject: str, reply: str, *, idle_days: float | None = None
) -> Evidence:
    """Log-odds evidence that ``reply`` (a fresh mail) continues ``ticket``'s issue."""
    ev = Evidence()
    reply, subject = reply[:MAX_CHARS], subject[:1000]
    names = _names(sender, ticket.requester)
    recent = ticket.messages[-MAX_MESSAGES:]
    customer_msgs = [m.text[:MAX_CHARS] for m in recent if m.author == "customer"]
    agent_msgs = [m.text[:MAX_CHARS] for m in recent if m.author == "agent"]
    inbound_body = "\n".join(_content_lines(reply, agent=False))
    inbound_all = f"{subject}\n{inbound_body}"
    cust_text = "\n".join([ticket.subject[:1000], *("\n".join(_content_lines(m, agent=False))
                                                    for m in customer_msgs)])
    agent_text = "\n".join("\n".join(_content_lines(m, agent=True)) for m in agent_msgs)

    # --- identifiers
    in_ids = identifiers(inbound_all)
    t_ids = identifiers(cust_text + "\n" + agent_text)
    t_keys = {i.key for i in t_ids}
    shared = [i for i in in_ids if i.key in t_keys]
    ev.shared_ids = [i.text for i in shared]
    for i in in_ids:
        if i.key in t_keys:
            continue
        rivals = [j for j in t_ids if _same_kind(i, j) and j.key not in {s.key for s in shared}]
        if rivals:
            ev.conflicting_ids.append((i.text, rivals[0].text))
        else:
            ev.new_ids.append(i.text)
    # --- amounts
    in_amt = amounts(inbound_all)
    t_amt = amounts(cust_text + "\n" + agent_text)
    ev.shared_amounts = sorted(in_amt & t_amt)

    # --- content overlap
    # Words of the agent's greeting and signature (company and agent names, the company's
    # trade) say nothing about which issue this is: drop them on every side.
    boiler = set(content_tokens("\n".join(agent_msgs), exclude=names))
    agent_tok = content_tokens(agent_text, exclude=names)
    boiler -= set(agent_tok)
    in_tok = _without(content_tokens(_strip_markers(inbound_all), exclude=names), boiler)
    cust_tok = _without(content_tokens(cust_text, exclude=names), boiler)
    ref: dict[str, float] = {k: w * AGENT_WEIGHT for k, w in agent_tok.items()}
    ref.update(cust_tok)
    ev.content = _cosine(in_tok, ref)
    for sent in _sentences(_strip_markers(inbound_body)):
        st = _without(content_tokens(sent, exclude=names), boiler)
        mass = sum(st.values())
        if mass >= 1.5:
            cov = sum(w for t, w in st.items() if t in ref) / (mass + 1.0)
            ev.best_sentence = max(ev.best_sentence, cov)
    ev.ticket_cover = _overlap(cust_tok, in_tok)
    ev.subject = _overlap(content_tokens(subject, exclude=names),
                          content_tokens(ticket.subject, exclude=names))

    # --- the agent's open request (last message from the agent), answered by the inbound
    if recent and recent[-1].author == "agent":
        last = "\n".join(_content_lines(recent[-1].text[:MAX_CHARS], agent=True))
        asked = " ".join(x for x in _sentences(last) if _REQUEST_RE.search(normalize(x)))
        if asked:
            ask_tok = content_tokens(asked, exclude=names)
            ev.answers = _overlap(ask_tok, in_tok)
            low = normalize(asked)
            ev.answered_types = [k for k, rx in _ASKED_TYPES
                                 if rx.search(low) and _supplies(k, inbound_body, ev.new_ids)]

    # --- markers
    ev.thread_markers = _markers(inbound_all, "ref")
    ev.weak_markers = _markers(inbound_all, "weak")
    ev.new_markers = _markers(inbound_all, "new")
    ev.weak_new_markers = _markers(inbound_all, "wnew")

    # --- combine
    sim = 0.5 * ev.content + 0.5 * ev.best_sentence
    ev.similarity = sim
    # A short mail ("Any update?") has too few words for the overlap to mean much: blend
    # toward a mild prior instead of reading "no overlap" as "other issue".
    ev.reliability = min(1.0, sum(in_tok.values()) / FULL_MASS)
    logit = (ev.reliability * (BIAS + SIM_SLOPE * (sim - SIM_MID))
             + (1.0 - ev.reliability) * SHORT_PRIOR)
    ev.reasons.append(f"content similarity {sim:.2f} (cosine {ev.content:.2f}, best sentence "
                      f"{ev.best_sentence:.2f}; words / char bigrams)")
    if ev.subject > 0:
        ev.reasons.append(f"subject overlap {ev.subject:.2f}")
    anchor = sim  # how much the mail is about the ticket's matter at all
    if shared:
        logit += 3.5
        anchor += 0.3
        ev.reasons.append("shares id " + ", ".join(ev.shared_ids))
    if ev.conflicting_ids and not shared:
        logit -= 3.5
        a, b = ev.conflicting_ids[0]
        ev.reasons.append(f"different id {a} vs {b}")
    elif ev.conflicting_ids:
        logit -= 1.0
        a, b = ev.conflicting_ids[0]
        ev.reasons.append(f"also a different id {a} vs {b}")
    if ev.shared_amounts:
        # 62.40 or 48000 is specific; 25 or 100 may be a coincidence
        specific = any("." in a or len(a.strip("0")) >= 3 for a in ev.shared_amounts)
        logit += 2.5 if specific else 1.5
        anchor += 0.2
        ev.reasons.append("shares amount " + ", ".join(ev.shared_amounts))
    gain = 0.0
    if ev.answers >= 0.2:
        gain = min(2.5, 1.0 + 4.0 * (ev.answers - 0.2))
        ev.reasons.append(f"answers the agent's request (overlap {ev.answers:.2f})")
    if ev.answered_types:
        gain = max(gain, min(3.0, 1.5 * len(ev.answered_types)))
        ev.reasons.append("supplies what the agent asked for: " + ", ".join(ev.answered_types))
    if gain:
        logit += gain
        anchor += 0.2
    if ev.thread_markers:
        logit += min(2.2, 1.4 + 0.4 * (len(ev.thread_markers) - 1))
        ev.reasons.append("refers to the earlier contact: " + ", ".join(
            repr(m) for m in ev.thread_markers[:4]))
    if ev.weak_markers:
        # "still" / "again" count only as far as the mail is about the ticket's matter at all
        push = min(1.0, anchor / 0.25) * min(1.3, 0.8 + 0.25 * (len(ev.weak_markers) - 1))
        logit += push
        if push >= 0.1:
            ev.reasons.append("follow-up wording: " + ", ".join(
                repr(m) for m in ev.weak_markers[:4]))
    if ev.new_markers:
        logit -= 1.8
        ev.reasons.append("separate-issue wording: " + ", ".join(
            repr(m) for m in ev.new_markers[:4]))
    elif ev.weak_new_markers:
        logit -= 0.6
        ev.reasons.append("new-topic wording: " + ", ".join(
            repr(m) for m in ev.weak_new_markers[:4]))
    if idle_days is not None and idle_days > 0:
        pen = min(2.0, 0.5 * math.log1p(idle_days / 7.0))
        logit -= pen
        if pen >= 0.1:
            ev.reasons.append(f"{idle_days:.0f} days since last activity")
    ev.logit = logit
    return ev


# --------------------------------------------------------------------------------------------
# Decision: strong evidence, machine mail, calibrated confidence

# Platt scaling of the raw log-odds, fitted on dev data (eval/calibration.py): a strong-evidence
# candidate, and a weak one (recorded as related only; it never joins).
PLATT_STRONG = (0.08, 2.25)  # (slope, intercept); 14 dev rows, all the same request
PLATT_WEAK = (1.38, 0.51)  # 65 dev rows, 25 the same request
SAME_SUBJECT = 0.75  # share of the subject's content words that the ticket's subject has
ANSWER_OVERLAP = 0.3  # share of the agent's request words an answer takes up
_PREFIX_RE = re.compile(
    r"^\s*((re|fwd?|fw|aw|wg|sv|vs|tr|rv|antw|odp|res|回复|答复|转发|回覆|轉寄|답장|전달|返信|転送)"
    r"\s*(\[\d+\]|\(\d+\))?\s*[:：]\s*)+", re.IGNORECASE)
_MACHINE_RE = re.compile(
    r"(^|[-._+])(no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|notifications?|"
    r"notify|alerts?|bounces?|daemon|bot|robot|jenkins|buildbot|cron|automated|auto-?confirm)"
    r"([-._+\d]|$)", re.IGNORECASE)
_CONTACT_RE = re.compile(
    r"(tel|phone|fax|mobile|mob|cell|blackberry|whatsapp|電話|电话|전화|핸드폰|휴대폰)\b|\+\d|"
    r"\b(street|st\.|avenue|ave\.?|road|rd\.|suite|floor|p\.?o\.? box)\b|, [a-z]{2} \d{5}\b",
    re.IGNORECASE)


def subject_key(subject: str) -> str:
    """The subject without Re:/Fwd:/AW:/回复: prefixes, lowercased, spaces collapsed."""
    return " ".join(_PREFIX_RE.sub("", normalize(subject)).split())


def machine_sender(address: str) -> bool:
    """no-reply@, notifications@, mailer-daemon@, a bot: mail a machine wrote."""
    local = address.rpartition("<")[2].split("@", 1)[0]
    return bool(_MACHINE_RE.search(local))


def templated(subject: str, ticket_subject: str) -> bool:
    """Subjects that differ only in their dates or numbers: a daily report, a notification."""
    a, b = subject_key(subject), subject_key(ticket_subject)
    mask = functools.partial(re.sub, r"\d+", "0")
    return a != b and bool(re.search(r"\d", a + b)) and mask(a) == mask(b)


def _contact_ids(text: str) -> set[str]:
    """Identifiers on address / phone lines: a signature, the same in every mail of a person."""
    return {i.key for ln in text.splitlines() if _CONTACT_RE.search(normalize(ln))
            for i in identifiers(ln)}


def calibrate(logit: float, strong: bool) -> float:
    """The raw log-odds as an estimated probability that joining is right."""
    slope, intercept = PLATT_STRONG if strong else PLATT_WEAK
    return _sigmoid(slope * logit + intercept)


@dataclass
class Judgement:
    """Whether a fresh mail may join an open ticket by content, and why."""

    strong: bool  # strong evidence that it is the same request
    confidence: float  # calibrated probability that joining would be right
    reasons: list[str]
    machine: str | None = None  # why it is machine mail (never joins by content)
    logit: float = 0.0  # the raw score before calibration

    def joins(self, threshold: float) -> bool:
        return self.strong and self.machine is None and self.confidence >= threshold


def judge(
    ticket: TicketView, sender: str, subject: str, reply: str, *, idle_days: float | None = None,
    auto: str | None = None,
) -> Judgement:
    """Score the mail against the ticket, then decide on strong evidence only."""
    machine = auto
    if machine is None and (machine_sender(sender) or machine_sender(ticket.requester)):
        machine = "sent by a machine address"
    elif machine is None and templated(subject, ticket.subject):
        machine = "subject differs from the ticket's only in dates or numbers (templated)"
    if machine:
        return Judgement(strong=False, confidence=0.0, machine=machine,
                         reasons=[f"machine mail ({machine}): never joined by content"])
    ev = score(ticket, sender, subject, reply, idle_days=idle_days)
    texts = [reply, *(m.text for m in ticket.messages[-MAX_MESSAGES:])]
    signature = set().union(*(_contact_ids(t[:MAX_CHARS]) for t in texts))
    ids = [i for i in ev.shared_ids if re.sub(r"[-_/]", "", i) not in signature]
    same_subject = bool(subject_key(subject)) and (
        subject_key(subject) == subject_key(ticket.subject) or ev.subject >= SAME_SUBJECT)
    amounts_ = [a for a in ev.shared_amounts if "." in a or len(a.strip("0")) >= 3]
    why: list[str] = []
    if ids:
        why.append("an identifier in both: " + ", ".join(ids[:3]))
    if ev.thread_markers and (same_subject or ids or amounts_):
        named = "subject" if same_subject else "identifier" if ids else "amount"
        why.append(f"a chaser naming the ticket by its {named}")
    if ev.answered_types and ev.answers >= ANSWER_OVERLAP:
        why.append("supplies what the agent asked for: " + ", ".join(ev.answered_types))
    conf = calibrate(ev.logit, bool(why))
    reasons = [*ev.reasons, *(f"strong evidence: {w}" for w in why)]
    if not why:
        reasons.append("weak evidence (no shared identifier, no chaser naming the ticket): "
                       "a new ticket")
    return Judgement(strong=bool(why), confidence=conf, reasons=reasons, logit=ev.logit)


def match(
    ticket: TicketView, sender: str, subject: str, reply: str, *, idle_days: float | None = None,
    auto: str | None = None,
) -> tuple[bool, float, list[str]]:
    """(join?, calibrated confidence that joining is right, human-readable reasons)."""
    j = judge(ticket, sender, subject, reply, idle_days=idle_days, auto=auto)
    ok = j.joins(DEFAULT_THRESHOLD)
    if j.strong and j.machine is None and not ok:
        j.reasons.append(f"confidence {j.confidence:.2f} below the threshold "
                         f"{DEFAULT_THRESHOLD:.2f}: a new ticket")
    return ok, j.confidence, j.reasons
