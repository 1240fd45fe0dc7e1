"""Reply extraction: the text the sender of an e-mail newly wrote.

Pure logic, no I/O. ``extract(body, content_type)`` splits a body into

* ``reply``     - what the sender newly wrote (stripped),
* ``quoted``    - quoted history removed from it (``>`` lines, attribution lines such as
  ``On … wrote:`` in many languages, Outlook-style ``From:/Sent:`` blocks and
  ``-----Original Message-----`` separators, and everything under them),
* ``signature`` - signature blocks (``-- ``, ``__``, device lines such as
  "Sent from my iPhone" in many languages, mailing-list footers, a short name/title block
  under a closing such as "Regards,"),
* ``forwarded`` - forwarded content (under ``---------- Forwarded message ---------`` and the
  like), kept apart from the quoted history.

The rules are structural and per-language lexicons: an attribution line is recognised by
its shape (a "wrote"-verb at its end, or a date/time plus an address, ending in a colon),
not by any particular sentence. HTML bodies have their quote containers removed on the
parsed tree (lxml) and are converted to text with inscriptis, then go through the same
plain-text rules.
"""

# The lexicons below hold characters of many scripts (fullwidth colons, Cyrillic, dashes) on
# purpose, so ruff's ambiguous-unicode check is off for this file.


from __future__ import annotations

import copy
import html as _html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any

import msgspec

from tidydesk.text import lexicon

__all__ = ["Extracted", "body_of", "decode_bytes", "extract", "html_to_text", "reply_text"]


class Extracted(msgspec.Struct, frozen=True):
    reply: str
    quoted: str = ""
    signature: str = ""
    forwarded: str = ""


# --------------------------------------------------------------------------- lexicons

# Invisible characters that clients sprinkle into headers (bidi marks, zero-width spaces).
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u00ad]")

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
# A date or a time: 14:10, 18.30, 2026, 05/03/2026, 2026-03-05, 2026년, 3月, 5日 ...
# An address in brackets right before the final colon: "… Jane <jane@x.example>:"
_ADDR_END = re.compile(r"[<(\[][^<>()\[\]]*@[^<>()\[\]]*[>)\]]\s*[:：]$")
_DATETIME = re.compile(
    r"(?<!\d)\d{1,2}\s*[:.]\s*\d{2}(?!\d)"
    r"|(?<!\d)(?:19|20)\d{2}(?!\d)"
    r"|[٠-٩۰-۹]{4}"
    r"|(?<!\d)\d{1,4}\s*[./-]\s*\d{1,2}\s*[./-]\s*\d{1,4}(?!\d)"
    r"|\d{1,4}\s*[년월일年月日]"
)

# "wrote" in the languages we know, as it ends an attribution line.
_WROTE = (
    r"wrote|writes|has written|schrieb|schreibt|hat geschrieben|a écrit|a ecrit|écrit"
    r"|escribió|escribio|escreveu|escrevi|ha scritto|scrisse|schreef|heeft geschreven|geschreven"
    r"|napisał\(a\)|napisała|napisana przez|napisał|napisal|napsal\(a\)|napsala|napsal"
    r"|написал\(а\)|написала|написал|пишет|skrev|skrifaði|kirjoitti|a scris|έγραψε"
    r"|كتب(?:/كتبت)?|كتبت|כתב|írta|yazdı|pisze"
    r"|님이 작성|작성|のメール|さんは書きました|は書きました|書きました|写道|寫道|寫了"
)
# (matched against lower-cased text: case-insensitive Unicode matching is slow)
_WROTE_END = re.compile(rf"(?<![^\W\d_])(?:{_WROTE})\s*[:：]?\s*$")
_WROTE_ANY = re.compile(rf"(?<![^\W\d_])(?:{_WROTE})(?![^\W\d_])")
# Words that open an attribution line ("On …", "Am …", "Le …").
_INTRO = re.compile(
    r"^(?:on|am|le|el|em|il|in data|op|w dniu|dnia|den|d\.|på|στις|في|в|pe|în|el día|"
    r"le \w+|em \w+)\b",
    re.I,
)

# Header-block field names per category (Outlook, Apple Mail, Naver, Daum, QQ … in many
# languages): services/text/data/mail.json.
_FIELDS = lexicon.mail().header_fields
_FIELD_OF: dict[str, str] = {
    n.lower(): cat for cat, names in _FIELDS.items() for n in names
}
_FIELD_ALT = "|".join(
    re.escape(n).replace(r"\ ", r"\s*") for n in sorted(_FIELD_OF, key=len, reverse=True)
)
_FIELD_LINE = re.compile(rf"^(?P<name>{_FIELD_ALT})\s*[:：]", re.I)
_FIELD_INLINE = re.compile(rf"(?<![^\W\d_])(?P<name>{_FIELD_ALT})\s*[:：]", re.I)

_FWD_WORDS = (
    r"forward|fwd|weitergeleitet|transféré|transfere|transferido|reenviado|reencaminhad"
    r"|encaminhad|inoltrat|doorgestuurd|przekazan|пересыла|переслан|vidarebefordra"
    r"|videresend|välitetty|edelleenlähetetty|továbbított|redirecționat|προωθημένο"
    r"|转发|轉寄|转寄|轉發|転送|전달"
)
_FWD_WORD = re.compile(_FWD_WORDS, re.I)
_ORIG_WORDS = re.compile(
    r"original|ursprünglich|origine|mensaje|mensagem|messaggio|bericht|wiadomość|сообщение"
    r"|meddelande|besked|meddelelse|melding|viesti|üzenet|mesaj|μήνυμα|message|nachricht"
    r"|원본|원문|原始|元の|オリジナル|邮件|郵件|メール|메일|메시지|reply|antwort|réponse",
    re.I,
)
# "-----Original Message-----", "-------- Message d'origine --------", "---- 원본 메일 ----"
_SEP_WORDS = re.compile(r"^\s*[-_=~*—–]{2,}\s*(?P<words>[^\s\-_=~*—–][^\n]{0,60}?)\s*[-_=~*—–]{2,}")
# The same words without dashes, alone on their line.
_SEP_BARE = re.compile(
    r"^(?:(?:begin|start of) forwarded message|forwarded message"
    r"|anfang der weitergeleiteten (?:nachricht|e-mail)|weitergeleitete nachricht"
    r"|début du message (?:réexpédié|transféré)|message transféré"
    r"|inicio del mensaje reenviado|mensaje reenviado|início da mensagem reencaminhada"
    r"|mensagem encaminhada|inizio messaggio inoltrato|messaggio inoltrato"
    r"|begin doorgestuurd bericht|doorgestuurd bericht|vidarebefordrat (?:brev|meddelande)"
    r"|videresendt (?:besked|meddelelse|melding)|välitetty viesti|przekazana wiadomość"
    r"|пересылаемое сообщение|전달된 메시지|전달된 메일|転送されたメッセージ|転送メッセージ"
    r"|转发的邮件|转发邮件|轉寄的郵件"
    r"|original message|ursprüngliche nachricht|original-nachricht|message d'origine"
    r"|mensaje original|mensagem original|messaggio originale|oorspronkelijk bericht"
    r"|wiadomość oryginalna|исходное сообщение|ursprungligt meddelande"
    r"|oprindelig (?:meddelelse|besked)|opprinnelig melding|alkuperäinen viesti"
    r"|원본 메시지|원본 메일|원본메일|原始邮件|原始郵件|元のメッセージ)\s*[:：]?$",
    re.I,
)

# Device / client lines: "Sent from my iPhone", "Von meinem iPhone gesendet", "iPhone에서 보냄".
_SEND_START = re.compile(
    r"^(?:(?:sent|send|get|envoyé|envoye|gesendet|enviado|enviada|inviato|verzonden|verstuurd"
    r"|skickat|sendt|lähetetty|wysłane|wysłano|отправлено|trimis|odesláno|gönderildi"
    r"|obter|obtener|obtenga|ottieni|holen sie sich|hol dir|télécharger|scarica|descargar"
    r"|descargue|baixe|download|pobierz|скачайте|получить|skaffa|hent|hanki"
    r"|أُرسلت|أرسلت|مرسل)(?:\s|$|[^\W\d_]*\s)"
    r"|发送自|发自|發自|来自|來自|从我的|從我的|寄自)",
    re.I,
)
_SEND_END = re.compile(
    r"(?:gesendet|envoyé|envoye|enviado|inviato|verzonden|skickat|sendt|lähetetty"
    r"|wysłane|отправлено|küldve|gönderildi|보냄|보냈습니다|전송|발송|받기|다운로드|送信"
    r"|传送|傳送|發送|发送)\s*[.!。]?$",
    re.I,
)
_DEVICE = re.compile(
    r"iphone|ipad|ipod|android|galaxy|samsung|outlook|blackberry|huawei|xiaomi|redmi|oppo"
    r"|oneplus|pixel|mobile|mobil|móvil|movil|celular|cellulare|smartphone|telefon|phone"
    r"|mail app|mail-app|yahoo|gmail|aol|typeapp|spark|airmail|bluemail|windows|tablet"
    r"|handy|naver|daum|네이버|다음|모바일|휴대폰|스마트폰|갤럭시|아이폰|手机|手機|携帯"
    r"|スマートフォン|邮箱|郵箱|邮件|メール|mail for|app\b|мобильн|почт|mail\.ru|яндекс",
    re.I,
)

_CLAUSE = re.compile(
    r"\s(?:is|was|are|were|will|would|can|could|have|has|had|than|because|but|and i|ist|est|es)\s",
    re.I,
)
_DISCLAIMER = re.compile(
    r"^(?:confidentiality notice|disclaimer|notice of confidentiality|important notice"
    r"|this (?:e-?mail|message|communication)(?: and any attach\w+)?"
    r" (?:is|are|may contain|contains|and its contents)"
    r"|diese (?:e-?mail|nachricht)(?: und ihre anhänge)? (?:enthält|ist|kann)"
    r"|ce (?:message|courriel|e-mail)(?: et (?:ses|toutes les) pièces jointes)?"
    r" (?:est|peut|contient)"
    r"|le informazioni contenute in questo messaggio"
    r"|questo messaggio (?:e|è) (?:destinato|riservato)"
    r"|este (?:mensaje|correo)(?: y sus anexos)? (?:es|puede|contiene|va dirigido)"
    r"|esta mensagem(?: e seus anexos)? (?:é|pode|contém)"
    r"|dit (?:e-?mail|bericht) (?:is|kan|bevat)|本メールは|本邮件|本郵件)",
    re.I,
)
_SIG_DASHES = re.compile(
    r"^(?:--\s*|[—–―─━]+\s*|[_＿]{2,}\s*|(?:\*\s*){3,}|\**(?:\.\s*){3,}\**|[－ー]{4,}\s*)$"
)
_RULE_LINE = re.compile(r"^[-_=~*—–―─━＿－.\s]{2,}$")
_FOOTER = re.compile(
    r"^(?:.{1,80} mailing list$|you received this (?:message|email) because"
    r"|to unsubscribe from this (?:group|topic)|you are receiving this because"
    r"|reply to this email directly|unsubscribe:?\s|view it on github)",
    re.I,
)
_BANNER = re.compile(
    r"^\[?(?:caution|external|warning|attention|achtung|ext|externe?)\b[^\n]{0,40}"
    r"(?:extern|outside|sender|originated|expéditeur)",
    re.I,
)
# Closings ("kind regards", "감사합니다", "谢谢"): services/text/data/mail.json.
_VALEDICTION = re.compile(rf"^(?:{'|'.join(lexicon.mail().closings)})\s*[,.!！。]?$", re.I)
# "박지영 드림", "김철수 올림": a closing with the name in front.
_NAME_CLOSING = re.compile(r"^\S{1,12}(?:\s\S{1,12})?\s*(?:드림|올림|拝|敬上)\s*$")


# --------------------------------------------------------------------------- helpers


def _clean(line: str) -> str:
    """A line as compared by the rules: no invisible marks, entities decoded, no ``*``."""
    s = _INVISIBLE.sub("", line).replace("\u00a0", " ").replace("\u3000", " ")
    if "&" in s:
        s = _html.unescape(s)
    s = s.strip()
    if s.startswith("*") and not _SIG_DASHES.match(s):
        s = s.replace("*", "").strip()
    return s


def _is_quote_line(raw: str) -> bool:
    return _INVISIBLE.sub("", raw).lstrip().startswith(">")


def _wrote_at_end(s: str) -> bool:
    return bool(_WROTE_END.search(s[-48:].lower()))


def _is_attribution(s: str) -> bool:
    """Is ``s`` (one or several joined lines) an attribution such as ``On … wrote:``?"""
    s = s.strip().strip("-—–").strip()
    if not s or len(s) > 400 or s.startswith(">"):
        return False
    ends_colon = s.endswith((":", "："))
    intro = bool(_INTRO.match(s))
    if not (ends_colon or intro or _wrote_at_end(s)):
        return False
    has_dt = bool(_DATETIME.search(s))
    if ends_colon and has_dt and _ADDR_END.search(s[-120:]):
        return True
    if _wrote_at_end(s) and (has_dt or _EMAIL.search(s)):
        return True
    if not has_dt or not (ends_colon or (intro and len(s) < 250)):
        return False
    return bool(_WROTE_ANY.search(s.lower()))


def _field_category(s: str) -> str | None:
    m = _FIELD_LINE.match(s)
    if not m:
        return None
    return _FIELD_OF.get(re.sub(r"\s+", " ", m.group("name").lower()))


def _field_block_end(clean: Sequence[str], i: int) -> int | None:
    """If an Outlook-style header block (``From:``/``Sent:``/``To:``…) starts at ``i``,
    return the index of its last field line."""
    first = _field_category(clean[i])
    if first is None:
        return None
    cats = {first}
    # several fields on one line ("À : x Objet : y", "Temat: … Nadawca: …")
    for m in _FIELD_INLINE.finditer(clean[i], 1):
        cat = _FIELD_OF.get(re.sub(r"\s+", " ", m.group("name").lower()))
        if cat:
            cats.add(cat)
    last = i
    gap = 0
    j = i + 1
    while j < len(clean) and j <= i + 12:
        s = clean[j]
        cat = _field_category(s) if s else None
        if cat:
            cats.add(cat)
            last = j
            gap = 0
        elif s:
            gap += 1
            if gap > 2:
                break
        else:
            # a blank line: allowed between fields only when a field follows soon
            if j + 1 < len(clean) and not _field_category(clean[j + 1]):
                break
        j += 1
    if len(cats) < 2 or not ("from" in cats or {"sent", "to", "subject"} <= cats):
        return None
    # "From: Seoul / To: Busan / Date: …" in a message is an itinerary, not a mail header:
    # a real header block names a subject or carries an address.
    if "subject" in cats or any(_EMAIL.search(x) for x in clean[i : last + 1]):
        return last
    return None


def _separator_kind(s: str) -> str | None:
    """``"forward"`` / ``"quote"`` for a separator line such as
    ``-----Original Message-----`` or ``---------- Forwarded message ---------``."""
    m = _SEP_WORDS.match(s)
    words = m.group("words") if m else None
    if words is None and _SEP_BARE.match(s):
        words = s
    if words is None:
        return None
    if _FWD_WORD.search(words):
        return "forward"
    if _ORIG_WORDS.search(words) or _SEP_BARE.match(words):
        return "quote"
    return None


def _is_device_line(s: str) -> bool:
    s = re.sub(r"<https?://[^>]*>|\(https?://[^)]*\)|https?://\S+", "", s).strip()
    if not s or len(s) > 80 or len(s.split()) > 12:
        return False
    if s.endswith(("?", ":", "：")):
        return False
    if _CLAUSE.search(s):
        return False  # "Sent from my desk, is much easier than …" is a sentence
    if _SEND_START.match(s):
        # "Sent from my iPhone", "Sent from Yahoo Mail", "Gesendet mit der mobilen Mail App"
        low = s.lower()
        if low.startswith(("sent ", "send ", "envoy")) or _DEVICE.search(s):
            return bool(
                _DEVICE.search(s) or re.match(r"^(?:sent|send)\s+(?:from|with|via|using|on)\b", low)
            )
        return False
    return bool(_SEND_END.search(s) and _DEVICE.search(s))


def _next_nonempty(clean: Sequence[str], j: int, limit: int = 3) -> int | None:
    k = j
    while k < len(clean) and k < j + limit:
        if clean[k]:
            return k
        k += 1
    return None


def _can_open_attribution(s: str) -> bool:
    """Can ``s`` be the first line of an attribution wrapped over several lines?"""
    if s.endswith((".", "!", "?", "。", "！", "？")):
        return False
    if _DATETIME.search(s) or _EMAIL.search(s):
        return True
    return bool(_INTRO.match(s) and re.search(r"\d", s))


def _attribution_at(raw: Sequence[str], clean: Sequence[str], i: int) -> int | None:
    """If an attribution (possibly wrapped over up to 3 lines) starts at ``i``, return the
    index of its last line."""
    if not clean[i] or _is_quote_line(raw[i]):
        return None
    parts: list[str] = []
    for j in range(i, min(i + 3, len(clean))):
        s = clean[j]
        if not s:
            break
        if j > i and _is_quote_line(raw[j]):
            # Gmail may wrap "<addr\n>:" so that the continuation starts with ">"
            rest = s.lstrip(">").strip()
            if not re.fullmatch(r"[:：]?", rest) and not _WROTE_END.fullmatch(rest.lower()):
                break
            s = s.lstrip(">") if rest else s
        parts.append(s)
        joined = " ".join(parts)
        if len(joined) > 400:
            break
        if _is_attribution(joined):
            if j > i and not _can_open_attribution(clean[i]):
                return None  # the attribution starts on a later line
            return j
        # a bare "… wrote:" followed by ">" lines
        if joined.endswith((":", "：")) and _wrote_at_end(joined):
            k = _next_nonempty(clean, j + 1)
            if k is not None and _is_quote_line(raw[k]):
                return j
    return None


@dataclass
class _Split:
    reply: list[str] = field(default_factory=list)
    quoted: list[str] = field(default_factory=list)
    signature: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)


def _boundary(raw: Sequence[str], clean: Sequence[str], i: int) -> tuple[str, int] | None:
    """Does a quote/forward boundary start at line ``i``? Returns (kind, last_header_line)."""
    s = clean[i]
    if not s:
        return None
    kind = _separator_kind(s)
    if kind:
        return kind, i
    # A rule line ("_____", "-----") directly above a header block or attribution.
    if _RULE_LINE.match(s) or _SIG_DASHES.match(s):
        k = _next_nonempty(clean, i + 1)
        if k is not None and not (_RULE_LINE.match(clean[k]) or _SIG_DASHES.match(clean[k])):
            sub = _boundary(raw, clean, k)
            if sub is not None:
                return sub
        return None
    end = _field_block_end(clean, i)
    if end is not None:
        return "quote", end
    end = _attribution_at(raw, clean, i)
    if end is not None:
        return "attribution", end
    return None


def _split_plain(text: str) -> _Split:
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    clean = [_clean(x) for x in raw]
    out = _Split()
    n = len(raw)
    fence = False
    i = 0
    leading = True  # nothing newly written seen yet
    while i < n:
        line, s = raw[i], clean[i]
        if s.startswith("```"):
            fence = not fence
            out.reply.append(line)
            leading = False
            i += 1
            continue
        if fence:
            out.reply.append(line)
            i += 1
            continue
        if not s:
            out.reply.append(line)
            i += 1
            continue
        if leading and _BANNER.match(s):
            out.quoted.append(line)
            i += 1
            continue
        if _is_quote_line(line):
            out.quoted.append(line)
            i += 1
            continue
        b = _boundary(raw, clean, i)
        if b is not None:
            kind, end = b
            if kind == "attribution":
                k = _next_nonempty(clean, end + 1, limit=4)
                if k is not None and _is_quote_line(raw[k]):
                    # "On … wrote:" followed by "> " lines: drop it, keep inline replies
                    out.quoted.extend(raw[i : end + 1])
                    i = end + 1
                    continue
                _tail(raw, clean, i, "quote", out)
                return out
            if kind == "quote" and leading and _field_category(s) is not None:
                # header block at the very top (bottom-posting clients): skip it
                out.quoted.extend(raw[i : end + 1])
                i = end + 1
                continue
            _tail(raw, clean, i, kind, out)
            return out
        if _is_device_line(s):
            if leading:
                out.signature.append(line)
                i += 1
                continue
            _tail(raw, clean, i, "signature", out)
            return out
        if _SIG_DASHES.match(s) or _FOOTER.match(s) or (not leading and _DISCLAIMER.match(s)):
            _tail(raw, clean, i, "signature", out)
            return out
        # an unquoted line wedged between two quoted lines is a wrapped quote line
        if 0 < i < n - 1 and _is_quote_line(raw[i - 1]) and _is_quote_line(raw[i + 1]):
            out.quoted.append(line)
            i += 1
            continue
        out.reply.append(line)
        leading = False
        i += 1
    return out


def _tail(raw: Sequence[str], clean: Sequence[str], i: int, kind: str, out: _Split) -> None:
    """Distribute lines ``i..`` (everything under the first hard boundary)."""
    n = len(raw)
    if kind == "signature":
        j = i + 1
        while j < n:
            if clean[j] and (_is_quote_line(raw[j]) or _boundary(raw, clean, j) is not None):
                break
            j += 1
        out.signature.extend(raw[i:j])
        if j >= n:
            return
        b = _boundary(raw, clean, j)
        i, kind = j, (b[0] if b else "quote")
    if kind == "forward":
        out.forwarded.extend(raw[i:])
    else:
        out.quoted.extend(raw[i:])


def _trim_reply(lines: list[str]) -> tuple[list[str], list[str]]:
    """Strip trailing rule lines, and the block under a closing and a name
    ("Regards,\nJohn Doe\nCEO, Acme\n+1 555 …"): the name stays, the rest is signature."""
    while lines and (not lines[-1].strip() or _RULE_LINE.match(_clean(lines[-1]))):
        lines = lines[:-1]
    content = [k for k, x in enumerate(lines) if x.strip()]
    if len(content) < 3:
        return lines, []
    # the last closing line within the final few content lines
    for pos in range(len(content) - 2, max(len(content) - 11, 0) - 1, -1):
        k = content[pos]
        s = _clean(lines[k])
        named = bool(_NAME_CLOSING.match(s))
        if not (_VALEDICTION.match(s) or named):
            continue
        after = [_clean(lines[x]) for x in content[pos + 1 :]]
        keep = 0 if named else 1  # keep the name under "Regards,"
        if not named and not _looks_like_name(after[0]):
            return lines, []
        rest = after[keep:]
        if rest and not any(_looks_like_content(x) for x in rest):
            cut = content[pos + keep] + 1
            return lines[:cut], lines[cut:]
        return lines, []
    return lines, []


_PARTICLES = frozenset(
    {"de", "van", "von", "der", "den", "da", "di", "du", "la", "le", "y", "e", "bin", "al"}
    | {"el", "dos", "das", "del", "ter"}
)
_SENTENCE_END = (".", "?", "!", ":", "。", "？", "！", "：", "…")
# Endings of Korean/Japanese/Chinese sentences, which a bare name does not have.
_CJK_SENTENCE_END = tuple("요다까죠네음함됨임すたかねよ了吗呢吧的")


def _looks_like_name(s: str) -> bool:
    """A name under a closing: "John Doe", "-Abhishek", "/Anna", "김민수", "山田 太郎"."""
    s = s.strip(" -/—–*,")
    if not s or len(s) > 40 or any(ch.isdigit() for ch in s) or s.endswith(_SENTENCE_END):
        return False
    words = s.split()
    if len(words) > 4:
        return False
    if all(ch.isascii() or not ch.isalpha() or "\u00c0" <= ch <= "\u024f" for ch in s):
        # Latin script: capitalised words, bar particles ("Jan van Dijk")
        return all(w[0].isupper() or w.lower() in _PARTICLES for w in words)
    return len(s.replace(" ", "")) <= 8 and not s.endswith(_CJK_SENTENCE_END)


def _looks_like_content(s: str) -> bool:
    """A line under a closing and a name that is still part of the message (a P.S., a
    question) rather than signature material (title, company, phone, links, slogans)."""
    low = s.lower()
    return low.startswith(
        ("p.s", "ps:", "ps ", "pps", "추신", "追伸", "附言", "p. s")
    ) or s.endswith(("?", "？"))


def _join(lines: Iterable[str]) -> str:
    return "\n".join(x.rstrip() for x in lines).strip("\n").strip()


def _extract_plain(text: str) -> Extracted:
    sp = _split_plain(text)
    reply, sig_tail = _trim_reply(sp.reply)
    signature = [*sig_tail, *sp.signature]
    return Extracted(
        reply=_join(reply),
        quoted=_join(sp.quoted),
        signature=_join(signature),
        forwarded=_join(sp.forwarded),
    )


# --------------------------------------------------------------------------- HTML


def _lxml_html() -> Any:
    import lxml.html  # type: ignore[import-untyped, unused-ignore]

    return lxml.html


def _inscriptis_text(node: Any) -> str:
    from inscriptis import Inscriptis  # type: ignore[import-untyped, unused-ignore]
    from inscriptis.css_profiles import (  # type: ignore[import-untyped, unused-ignore]
        CSS_PROFILES,
    )
    from inscriptis.model.config import (  # type: ignore[import-untyped, unused-ignore]
        ParserConfig,
    )

    config = ParserConfig(css=CSS_PROFILES["strict"], display_images=False)
    return str(Inscriptis(node, config).get_text())


def _parse_html(markup: str) -> Any | None:
    lh = _lxml_html()
    # lxml refuses str input that carries an encoding declaration
    markup = re.sub(r"^\s*<\?xml[^>]*\?>", "", markup.replace("\x00", ""))
    if not markup.strip():
        return None
    try:
        return lh.document_fromstring(markup)
    except Exception:  # malformed beyond repair (lxml raises ParserError/ValueError)
        try:
            return lh.fromstring(f"<div>{markup}</div>")
        except Exception:
            return None


def html_to_text(html: str) -> str:
    """Readable text of an HTML body (block boundaries as line breaks, entities decoded)."""
    tree = _parse_html(html)
    if tree is None:
        return html.strip()
    return _tidy(_inscriptis_text(tree))


def _tidy(text: str) -> str:
    lines = [x.rstrip() for x in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for x in lines:
        if not x and out and not out[-1]:
            continue
        out.append(x)
    return "\n".join(out).strip()


def _has_class(el: Any, *names: str) -> bool:
    classes = (el.get("class") or "").split()
    return any(n in classes for n in names)


_TRUNCATE_XPATH = (
    "//*[@id='appendonsend' or @id='divRplyFwdMsg' or @id='x_divRplyFwdMsg'"
    " or @id='x_appendonsend' or @id='stopSpelling'"
    " or @id='mail-editor-reference-message-container'"
    " or contains(@class,'OutlookMessageHeader')"
    " or (self::div and contains(translate(@style,' abcdef','ABCDEF'),'BORDER-TOP:SOLID#E1E1E1'))"
    " or (self::div and contains(translate(@style,' abcdef','ABCDEF'),'BORDER-TOP:SOLID#B5C4DF'))]"
)
_QUOTE_XPATH = (
    "//blockquote | //div[contains(concat(' ',normalize-space(@class),' '),' gmail_quote ')]"
    " | //div[contains(@class,'yahoo_quoted')] | //div[contains(@class,'moz-cite-prefix')]"
    " | //div[contains(@class,'zmail_extra')] | //div[contains(@class,'protonmail_quote')]"
    " | //div[@name='quote'] | //div[contains(@class,'gmail_attr')]"
)
_SIG_XPATH = (
    "//*[contains(@class,'gmail_signature') or @id='Signature' or @id='signature'"
    " or contains(@class,'moz-signature') or @data-smartmail='gmail_signature']"
)


def _text_of(el: Any) -> str:
    c = copy.deepcopy(el)
    c.tail = None
    return _tidy(_inscriptis_text(c))


def _attached(el: Any, root: Any) -> bool:
    return any(a is root for a in el.iterancestors())


def _truncate_from(node: Any) -> list[str]:
    """Remove ``node`` and everything after it in document order; return removed text."""
    removed: list[str] = [_text_of(node)]
    cur = node
    parent = cur.getparent()
    while parent is not None:
        sib = cur.getnext()
        while sib is not None:
            nxt = sib.getnext()
            removed.append(_text_of(sib))
            parent.remove(sib)
            sib = nxt
        if cur is node:
            parent.remove(node)
        if parent.tag in ("body", "html"):
            break
        cur, parent = parent, parent.getparent()
    return [r for r in removed if r]


def _split_html(markup: str) -> Extracted:
    tree = _parse_html(markup)
    if tree is None:
        return _extract_plain(markup)
    for bad in tree.xpath("//script | //style | //head"):
        bad.drop_tree()
    quoted: list[str] = []
    forwarded: list[str] = []
    signature: list[str] = []
    marks = tree.xpath(_TRUNCATE_XPATH)
    if marks:
        first = marks[0]
        prev = first.getprevious()
        quoted.extend(_truncate_from(first))
        # Outlook puts an <hr> right before the reply header
        if prev is not None and prev.tag == "hr" and prev.getparent() is not None:
            prev.drop_tree()
    for el in tree.xpath(_QUOTE_XPATH):
        if not _attached(el, tree):
            continue
        text = _text_of(el)
        first_line = _clean(text.split("\n", 1)[0]) if text else ""
        if _separator_kind(first_line) == "forward":
            forwarded.append(text)
        else:
            quoted.append(text)
        el.drop_tree()
    for el in tree.xpath(_SIG_XPATH):
        if not _attached(el, tree):
            continue
        signature.append(_text_of(el))
        el.drop_tree()
    text = _tidy(_inscriptis_text(tree))
    inner = _extract_plain(text)
    return Extracted(
        reply=inner.reply,
        quoted=_join([x for x in (inner.quoted, *quoted) if x]),
        signature=_join([x for x in (inner.signature, *signature) if x]),
        forwarded=_join([x for x in (inner.forwarded, *forwarded) if x]),
    )


# --------------------------------------------------------------------------- public API


def extract(body: str, content_type: str = "text/plain") -> Extracted:
    """Split an e-mail body into the newly written reply and what was removed from it."""
    ctype = (content_type or "text/plain").split(";", 1)[0].strip().lower()
    if ctype == "text/html":
        return _split_html(body)
    return _extract_plain(body)


def reply_text(body: str) -> str:
    """The text the sender newly wrote in a plain-text body (``extract(body).reply``)."""
    return extract(body).reply


# --------------------------------------------------------------------------- MIME


_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "euc_kr": "cp949",
    "x-windows-949": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "unknown-8bit": "",
    "x-unknown": "",
}
_FALLBACKS = ("utf-8", "cp949", "cp932", "gb18030", "big5hkscs")


def _two_byte_in(c: str, codec: str) -> bool:
    """Is ``c`` a plain two-byte character of ``codec`` (not an 8-byte KS X 1001 make-up
    sequence, not a four-byte GB18030 one)?"""
    try:
        return len(c.encode(codec)) == 2
    except UnicodeEncodeError:
        return False


def _script_score(text: str, codec: str) -> float:
    """How plausible ``text`` is as output of ``codec``: the share of characters that are
    common in that codec's language, minus junk (private use, rare ideographs, half-width
    katakana). Hangul outside KS X 1001 is what cp949 makes of Shift_JIS or GBK bytes, and
    ideographs outside GB2312 are what GB18030 makes of Shift_JIS bytes."""
    if not text:
        return 0.0
    kana = sum("\u3040" <= c <= "\u30ff" for c in text)
    odd = sum(
        ("\ue000" <= c <= "\uf8ff")
        or ("\u3400" <= c <= "\u4dbf")
        or ("\uff61" <= c <= "\uff9f")
        or c == "\ufffd"
        for c in text
    )
    if codec == "cp949":
        good = sum("\uac00" <= c <= "\ud7a3" and _two_byte_in(c, "euc_kr") for c in text)
    elif codec == "cp932":
        good = kana + sum("\u4e00" <= c <= "\u9fff" for c in text) // 2
    elif codec == "gb18030":
        good = sum("\u4e00" <= c <= "\u9fff" and _two_byte_in(c, "gb2312") for c in text)
    else:
        good = sum("\u4e00" <= c <= "\u9fff" for c in text) - kana
    return (good - 3 * odd) / len(text)


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode a body robustly: the declared charset, then utf-8, then the CJK codec whose
    output looks most plausible, then cp1252/latin-1 with replacement."""
    if declared:
        cs = declared.strip().strip('"').lower()
        cs = _CHARSET_ALIASES.get(cs, cs)
        if cs:
            try:
                return data.decode(cs)
            except (LookupError, UnicodeDecodeError):
                pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best: tuple[float, str] | None = None
    # CJK double-byte text has long runs of high bytes; Latin-1 text has isolated ones.
    runs = [len(m.group()) for m in re.finditer(rb"[\x80-\xff]+", data)]
    if sum(r for r in runs if r >= 3) < 0.3 * sum(runs):
        runs = []
    for codec in _FALLBACKS[1:] if runs else ():
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        score = _script_score(text, codec)
        if best is None or score > best[0]:
            best = (score, text)
    if best is not None and best[0] > 0:
        return best[1]
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1", errors="replace")


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return decode_bytes(payload, part.get_content_charset())
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def body_of(msg: EmailMessage | Message) -> tuple[str, str]:
    """(text, content_type) of a parsed message: its text/plain body when there is one,
    else its text/html body; ``("", "text/plain")`` when it has neither."""
    part: Message | None = None
    if isinstance(msg, EmailMessage):
        try:
            part = msg.get_body(preferencelist=("plain", "html"))
        except Exception:  # malformed MIME structure
            part = None
    if part is None:
        plain: Message | None = None
        html_part: Message | None = None
        for p in msg.walk():
            if p.is_multipart() or p.get_content_disposition() == "attachment":
                continue
            ct = p.get_content_type()
            if ct == "text/plain" and plain is None:
                plain = p
            elif ct == "text/html" and html_part is None:
                html_part = p
        part = plain or html_part
    if part is None:
        return "", "text/plain"
    ctype = part.get_content_type()
    return _part_text(part), ("text/html" if ctype == "text/html" else "text/plain")
