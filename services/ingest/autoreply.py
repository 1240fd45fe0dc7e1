"""Out-of-office / auto-reply detection from the text, for mail whose headers don't say so.

Conservative, because a false positive parks a real request: a mail is flagged only when
(1) a present or future absence phrase ("I am out of the office", "Ich bin nicht im Büro",
"不在にしております") opens it, (2) a second sign of a vacation notice follows (a return date,
"limited access", "I will respond when I return", "for urgent matters contact…"), and
(3) nothing in it asks something of support (a question, a problem, a ticket).
Languages: en, de, fr, es, it, nl, pt, ko, ja, zh.
"""

from __future__ import annotations

import re

MAX_CHARS = 1500  # vacation notices are short; a longer newly written text is a real mail
HEAD_CHARS = 500  # the absence phrase must come this early

_I = re.IGNORECASE
# (1) absence, in the present or future tense, of the writer ("I was away" does not count)
_ABSENCE = re.compile("|".join((
    # en
    r"\b(i am|i'm|i’m|i will be|i'll be|i’ll be|i shall be)\s+(currently\s+|now\s+)?"
    r"(out of (the\s+)?office|ooo\b|away from (the\s+|my\s+)?(office|desk|e-?mail)|"
    r"(away\s+)?on (annual |parental |maternity |paternity |sick |medical )?"
    r"(leave|vacation|holidays?)|away\b|out\b|absent|off work)",
    r"\bout of (the )?office (until|till|from|through|and)\b",
    r"\bthank you for your (e-?mail|message)[.,!]?\s+(unfortunately\s+)?i am (currently\s+)?"
    r"(not available|unavailable)",
    # de
    r"\b(ich bin|bin ich|ich befinde mich|befinde ich mich)\b[^!\n]{0,60}?"
    r"(nicht im (büro|hause?|haus)|außer haus|ausser haus|abwesend|im urlaub|in elternzeit|"
    r"nicht erreichbar|auf dienstreise|nicht am arbeitsplatz)",
    # fr
    r"\bje (suis|serai)\s+(actuellement\s+|absente?\s+et\s+)?(absente?|en (congés?|vacances)|"
    r"hors du bureau|en déplacement|indisponible)",
    # es
    r"\b(estoy|estaré|me encuentro|me encontraré)\s+(actualmente\s+)?(fuera de (la )?oficina|"
    r"fuera\b|ausente|de vacaciones|de viaje|de baja|de permiso)",
    # it
    r"\b(sono|sarò|saro')\s+(attualmente\s+|momentaneamente\s+)?(fuori (ufficio|sede)|"
    r"assente|in ferie|in vacanza|in trasferta)",
    # nl
    r"\b(ik ben|ben ik)\b[^!\n]{0,50}?(afwezig|niet op kantoor|niet aanwezig|"
    r"(met|op) vakantie|buiten kantoor|met verlof)",
    # pt
    r"\b(estou|estarei|encontro-me|me encontro)\s+(atualmente\s+|actualmente\s+)?"
    r"(fora do escritório|fora\b|ausente|de férias|em férias|de licença)",
    # ko, ja, zh
    r"부재\s*중(입니다|이오니|이라)|휴가\s*중(입니다|이오니|이라)|출장\s*중(입니다|이오니|이라)|"
    r"자리를 비(웁니다|우게)|사무실에 (있지 않습니다|없습니다)",
    r"不在にして(おります|います|おりました|おり)|休暇を(取って|いただいて)おります|"
    r"休暇中(です|のため)|出張(中|のため)[^。\n]{0,10}不在",
    r"我(目前|现在|現在|正在|将|將)?[^。，,\n]{0,6}(不在(办公室|辦公室|公司)|休假|外出|出差)|"
    r"(目前|现正|現正)(休假|外出|出差)",
)), _I)
# (2) what makes it a notice: when the writer is back, how mail is handled meanwhile
_MONTHS = (
    r"jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t(ember)?)?|"
    r"oct(ober)?|nov(ember)?|dec(ember)?|januar|februar|märz|mai|juni|juli|oktober|dezember|"
    r"janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre|"
    r"enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|"
    r"diciembre|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|"
    r"januari|februari|maart|mei|augustus|janeiro|fevereiro|março|maio|junho|julho|"
    r"setembro|outubro|novembro|dezembro"
)
_WEEKDAYS = (
    r"monday|tuesday|wednesday|thursday|friday|montag|dienstag|mittwoch|donnerstag|freitag|"
    r"lundi|mardi|mercredi|jeudi|vendredi|lunes|martes|miércoles|jueves|viernes|lunedì|"
    r"martedì|mercoledì|giovedì|venerdì|maandag|dinsdag|woensdag|donderdag|vrijdag|"
    r"segunda-feira|terça-feira|quarta-feira|quinta-feira|sexta-feira"
)
_DATE = (
    rf"(\d{{1,4}}[./-]\d{{1,2}}([./-]\d{{2,4}})?\b|\d{{1,2}}(st|nd|rd|th|er|º)?\.?\s*({_MONTHS})\b|"
    rf"\b({_MONTHS})\.?\s+\d{{1,2}}\b|\b({_WEEKDAYS})\b|\d{{1,2}}\s*月\s*\d{{1,2}}\s*日|"
    r"\d{1,2}\s*월\s*\d{1,2}\s*일|next week|end of (the )?(week|month))"
)
_NOTICE = re.compile("|".join((
    rf"\b(until|till|through|returning( on)?|back( in the office)?( on)?|from)\s+(\w+,?\s+)?"
    rf"{_DATE}",
    r"\blimited (access|e-?mail access|availability)\b|\bno access to (my )?e-?mails?\b|"
    r"\bintermittent(ly)? (access|checking)\b",
    r"\b(respond|reply|answer|get back to you|attend to your (e-?mail|message)|read your "
    r"(e-?mail|message))[^.\n]{0,60}\b(when|upon|after|on) (i|my) (return|am back|get back|"
    r"come back)\b|\bupon my return\b|\bwhen i('m| am) back\b",
    r"\bfor (urgent|immediate) (matters|enquiries|inquiries|requests|issues|assistance)\b|"
    r"\bin urgent cases\b|\bif (it is|this is|your (matter|request) is) urgent\b",
    r"\b(this is an? )?automatic(ally generated)? (reply|response|message)\b|"
    r"\bauto-?(reply|response)\b",
    # de
    rf"\b(bis|ab|vom|zum|einschließlich|bis einschließlich)\s+(zum\s+|am\s+)?{_DATE}|"
    r"\bwieder (erreichbar|im büro|da)\b|\bnach meiner rückkehr\b|\bin dringenden fällen\b|"
    r"\b(eingeschränkte[nm]?|keinen) zugriff\b|\bautomatische antwort\b|"
    r"\bwird nicht weitergeleitet\b|\bwerden nicht weitergeleitet\b",
    # fr
    rf"\b(jusqu'au|jusqu’au|jusqu'à|de retour le|retour le)\s+{_DATE}|\b(dès|à) mon retour\b|"
    r"\baccès limité\b|\ben cas d'urgence\b|\ben cas d’urgence\b|\bpour toute urgence\b|"
    r"\bréponse automatique\b|\bmessage automatique\b",
    # es
    rf"\b(hasta el|hasta|regreso el|vuelvo el|volveré el)\s+(\w+\s+)?{_DATE}|"
    r"\ba mi (regreso|vuelta)\b|\bacceso limitado\b|\ben caso de urgencia\b|"
    r"\bpara (asuntos|temas|consultas) urgentes\b|\brespuesta automática\b|"
    r"\bcuando (regrese|vuelva)\b",
    # it
    rf"\b(fino al|fino a|rientro il|rientrerò il)\s+(\w+\s+)?{_DATE}|\bal mio rientro\b|"
    r"\baccesso limitato\b|\bper urgenze\b|\bin caso di urgenza\b|\brisposta automatica\b",
    # nl
    rf"\b(tot en met|t/m|tot|vanaf)\s+(\w+\s+)?{_DATE}|\bweer (aanwezig|op kantoor|bereikbaar)\b|"
    r"\b(na|bij) (mijn )?terugkomst\b|\bbeperkt toegang\b|\bvoor dringende zaken\b|"
    r"\bautomatisch (antwoord|bericht)\b",
    # pt
    rf"\b(até ao|até o|até|regresso a|retorno em|retorno no dia)\s+(dia\s+)?{_DATE}|"
    r"\bno meu (regresso|retorno)\b|\bquando (voltar|retornar|regressar)\b|"
    r"\bacesso limitado\b|\bem caso de urgência\b|\bassuntos urgentes\b|"
    r"\bresposta automática\b",
    # ko, ja, zh
    r"\d{1,2}\s*월\s*\d{1,2}\s*일|복귀|돌아오는 대로|돌아와서|긴급|급한 (용무|용건|문의)|"
    r"자동\s*응답|자동\s*회신",
    r"\d{1,2}\s*月\s*\d{1,2}\s*日|戻り次第|戻り(は|ま)|帰社|復帰|出社(後|次第)|"
    r"ご返信(が|は)遅れ|返信(が|は)遅く|お急ぎ|至急|緊急|自動(返信|応答)",
    r"返回(后|後|办公室|辦公室)|回来后|回來後|回到办公室|回到辦公室|紧急|緊急|急事|"
    r"自动回复|自動回覆|延迟回复|延遲回覆|尽快回复|盡快回覆",
)), _I)
# (3) a request to support: a question, a problem, the ticket - then a human wrote it
_ASKS = re.compile("|".join((
    r"[?？¿]",
    r"\b(can|could|would) you\b|\bplease (help|check|fix|look|advise|confirm|send|refund|"
    r"cancel|reply|let me know)\b|\bhelp me\b|\bticket\b|\bmy (order|printer|account|invoice|"
    r"payment|refund|request|case)\b",
    r"\b(doesn't|does not|didn't|did not|isn't|won't|can't|cannot|not) "
    r"(work|working|arrive[d]?|start|print|load)\b|\b(still|again) (broken|failing|wrong)\b|"
    r"\b(fails|failing|broken|error|problem|an issue with|my issue|refund)\b",
    r"\b(funktioniert nicht|geht nicht|kaputt|fehler|problem|bitte (helfen|prüfen)|"
    r"können sie mir|könnten sie mir|meine bestellung)\b",
    r"\b(ne fonctionne pas|ne marche pas|panne|erreur|problème|pouvez-vous|pourriez-vous|"
    r"ma commande)\b",
    r"\b(no funciona|error|problema|avería|pueden ayudar\w*|podrían ayudar\w*|mi pedido)\b",
    r"\b(non funziona|errore|problema|guasto|potete aiutar\w*|potreste aiutar\w*|il mio ordine)\b",
    r"\b(werkt niet|kapot|fout|probleem|kunt u mij|kunnen jullie mij|mijn bestelling)\b",
    r"\b(não funciona|erro|problema|avaria|podem ajudar|poderiam ajudar|meu pedido|"
    r"minha encomenda)\b",
    r"안 ?됩니다|안 ?돼요|고장|오류|문제|주문|환불|문의(드립니다|합니다)|주시겠습니까",
    r"動きません|動かない|故障|エラー|不具合|問題|注文|返金|でしょうか|いただけますか",
    r"不能用|坏了|壞了|故障|错误|錯誤|问题|問題|订单|訂單|退款|请帮|請幫|吗|嗎",
)), _I)


def detect(text: str, subject: str = "") -> str | None:
    """Why `text` (the newly written text of a mail) reads as an out-of-office notice, or None."""
    body = text.strip()
    if not body or len(body) > MAX_CHARS or _ASKS.search(body):
        return None
    absence = _ABSENCE.search(body[:HEAD_CHARS]) or _ABSENCE.search(subject)
    if absence is None:
        return None
    notice = _NOTICE.search(body)
    if notice is None:
        return None
    return (f"out-of-office text: {_quote(absence.group(0))} + {_quote(notice.group(0))}")


def _quote(s: str) -> str:
    return repr(" ".join(s.split())[:40])
