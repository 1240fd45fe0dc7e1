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
# Latin patterns are matched on folded lower-case text (é->e, ß->ss, apostrophes -> spaces,
# English contractions expanded) with word boundaries; CJK patterns are matched as substrings.
_NOW = r"(?: (?:for )?(?:now|today|right now|the moment|at the moment|at this time|this time))?"

PROTECTED_LATIN: dict[str, tuple[str, ...]] = {
    "thanks": (
        r"thank(?:s| you)(?: so much| very much| a lot)?,? (?:again|anyway|anyways|though|kindly|"
        r"once again|all the same)",
        r"(?:again|once again),? thank(?:s| you)|once again",
        r"(?:i |we )?(?:just )?want(?:ed)? to (?:say|send|give|express|pass on) (?:a )?(?:big "
        r"|huge |"
        r"quick |massive |heartfelt )?(?:thank(?:s| you)|my thanks|our thanks|gratitude)",
        r"gracias igualmente|danke trotzdem|trotzdem danke|merci quand meme|gracias de todos modos|"
        r"grazie comunque|"
        r"obrigad[oa] mesmo assim|toch bedankt",
        r"but (?:thank(?:s| you)|i (?:do |really )?appreciate|appreciate|i am (?:very )?"
        r"(?:thankful|grateful)|you (?:were|have been|are) (?:very |so |really )?helpful)"
        r"(?: (?:again|anyway|anyways|so much|very much|a lot))?",
        r"thank(?:s| you)(?: so much| very much| a lot)? for (?:the|your|my|this|that|all the|all "
        r"your|all of your) (?:quick |fast |prompt |kind |great |speedy |swift )?(?!not|no|never|"
        r"but)[a-z]+",
    ),
    "ok": (r"no worries|good to know",),
    "positive": (
        r"no problem|no prob",
        r"(?:that|this|it) (?:is|was|sounds like|seems like|seems as|seems to be) (?:exactly "
        r"|just )?"
        r"what (?:i|we) (?:want|wanted)" + _NOW,
    ),
    "no": (r"(?:^|(?<=, ))(?:no|nope|nah|nay|nein|non|nee|neen|nao)(?=[ ,.!;]|$)",),
    "closing": (
        r"^nothing(?: else| more| further)?" + _NOW,
        r"not for anything else" + _NOW,
        r"(?:that is |it is )?(?:quite )?enough" + _NOW,
        r"(?:i|we) have (?:what|all|everything) (?:i|we) need(?:ed)?" + _NOW,
        r"(?:no )?(?:further|more) help is needed(?: from you)?",
        r"(?:i|we) (?:do not|did not) need (?:any )?(?:help|assistance) with anything else" + _NOW,
        r"(?:that|this) (?:is|was) all the (?:info|information|help) (?:i|we) (?:need|needed|"
        r"wanted)" + _NOW,
        r"no need(?= ?[,.!]|$)",
        r"(?:i|we) (?:need|want|require) nothing(?: more| else| further)?(?: from you)?" + _NOW,
        r"(?:i|we) (?:need|require) no (?:further|more|other|additional) (?:help|assistance)"
        r"(?: from you)?" + _NOW + r"(?: currently)?",
        r"(?:that|this|it) (?:is|was|sounds like|seems like|seems to be) (?:exactly |just |all )?"
        r"(?:what|everything) (?:i|we) (?:need|needed|will need)" + _NOW,
        r"(?:i|we) have all (?:of )?(?:the )?(?:info|information|help|details|answers) (?:i|we) "
        r"(?:need|needed)" + _NOW,
        r"but(?= (?:that|this|it) (?:is|will be|would be|was|s) (?:all|it|everything))",
        r"(?:i|we) (?:will|would|might|may|can|ll) (?:do|decide|book|reserve|buy|order|check) "
        r"(?:it |that |this )?later",
        r"(?:skip|forget) (?:it|that|about it)|(?:do not|please do not) worry(?: about (?:it"
        r"|that))?"
        r"|you do not have to|^(?:no,? )?(?:i|we) (?:do not|did not) want(?: to)?" + _NOW + "$",
        r"not (?:right )?(?:this|at the) (?:minute|second|moment)",
        r"(?:i|we) (?:just |only )?(?:needed|wanted) (?:the |that |some )?(?:info|information|"
        r"to know|to check|to ask)" + _NOW,
        r"(?:you have |you ve |you )?(?:provided|given|gave) (?:me )?all the (?:info|information|"
        r"help) (?:i|we) (?:need|needed)" + _NOW,
        r"(?:i|we) (?:should be|am|are|will be|would be|think i am|guess i am) (?:all )?set" + _NOW
        + r"|all set|good to go",
        r"(?:i have |i got |we have |that is |and |got )?everything (?:that )?(?:i|we) (?:need|"
        r"needed)" + _NOW,
        r"(?:i|we) (?:do not|did not) (?:want|need|require|wish)(?: to)? (?:it|them|that|this|one"
        r"|anything|any)(?: (?:more|else|further))?" + _NOW,
        r"(?:i|we) (?:do not|did not) (?:need|require|have) (?:any )?(?:further|more|other) "
        r"(?:help|assistance|questions?)" + _NOW,
        r"(?:i|we) do not think so|(?:i am|we are) not interested",
        r"(?:that|it) (?:will not|would not|is not|does not) (?:be )?(?:necessary|needed|required"
        r"|need to happen)|not (?:necessary|needed|required)",
        r"do not bother|hold off(?: (?:for now|on (?:this|that|it)(?: too)?))?",
        r"(?:you have|you) (?:already )?(?:done|been) (?:enough|a (?:big |great |huge |ton of "
        r"|lot of )?help)",
        r"no need (?:to|for) (?:a |any )?(?:reply|respond|response|answer|write back|get back"
        r"|follow up)(?: to (?:this|me))?",
        r"(?:you )?do not (?:need|have) to (?:reply|respond|answer|write back|get back)",
        r"(?<!yes )(?<!yeah )(?<!yep )(?:that|this|it) (?:is|was|will be|would be|should be|will)"
        r" (?:all|it|everything|about "
        r"(?:it|all|everything))(?: the (?:info|information|help|assistance))?(?: (?:that )?(?:i"
        r"|we)"
        r" (?:need|needed|will need|wanted|want|required|require"
        r"|wanted to know|was looking for|asked for))?" + _NOW,
        r"(?:that|this|it) (?:is|was) (?:exactly |just )?(?:all |everything )?(?:what|that) "
        r"(?:i|we) (?:needed|was looking for|asked for)" + _NOW,
        r"(?:that is |it is |is )?all (?:i|we) (?:need|needed|wanted|want)" + _NOW,
        r"(?:i|we) (?:do not|did not|will not|would not)(?: be)? (?:need|needing|want|wanting"
        r"|require) (?:anything|any) (?:else|more|further)"
        + _NOW,
        r"(?:i|we) (?:do not|did not) need (?:any )?(?:more|further|other) (?:help|assistance"
        r"|info|information)" + _NOW,
        r"(?:i|we) (?:do not|did not) have (?:any )?(?:more|further|other) questions?(?: for you)?",
        r"(?:i (?:think|believe|guess) )?(?:that|this|it|you|we) (?:have |has )?(?:covers"
        r"|covered|takes care of|took care of|taken care of|answered) (?:it|everything|all(?: of)?"
        r" (?:my|our) (?:questions|needs))" + _NOW,
        r"(?:all )?(?:of )?(?:my|our) questions (?:have been|were|are) answered",
        r"(?:i|we) (?:will|can|shall|ll) (?:go ahead and |just )?(?:[a-z]+ ){1,4}?(?:myself"
        r"|ourselves|on my own|on our own)(?: later)?",
        r"(?:i|we) (?:do not|did not) (?:want|need|wish) to \w+(?: \w+)?(?: (?:it|that|this))?"
        r" (?:now|right now|at the moment|at this time|for now|today)",
        r"(?:that|it|this) is (?:all|it) (?:for|from) (?:me|us|now|today)",
        r"nothing (?:else|more|further)" + _NOW,
        r"no (?:more|further|other) (?:questions?|help|assistance|issues|help)(?: (?:needed"
        r"|required"
        r"|for now))?",
        r"(?:i|we) (?:have|got) no (?:more|further|other) questions?",
        r"(?:you )?(?:can|may|could) (?:close|mark) (?:this|the|my) (?:ticket|case|request)"
        r"(?: as (?:solved|resolved|closed|done))?",
        r"(?:please )?(?:feel free to )?close (?:this|the|my) (?:ticket|case|request)",
        r"(?:i am|we are) (?:done|finished|all set|set|good)" + _NOW,
        # de / fr / es / pt / it / nl
        r"(?:das )?(?:war|ist) (?:alles|es|s)(?: (?:fur|von) (?:heute|jetzt|mich|meiner seite))?",
        r"(?:sonst )?nichts (?:weiter|mehr)|sonst nichts|keine (?:weiteren )?fragen(?: mehr)?",
        r"keine antwort (?:notig|erforderlich)|(?:sie )?(?:mussen"
        r"|brauchen) nicht (?:zu )?antworten",
        r"c est tout(?: pour (?:moi|aujourd hui|le moment|l instant))?|rien d autre|rien de plus",
        r"pas besoin de (?:me )?repondre|inutile de (?:me )?repondre|pas besoin de reponse",
        r"eso es todo|es todo|nada mas|no hace falta (?:responder|contestar)|no es necesario "
        r"(?:responder|contestar)",
        r"e so isso|so isso|nada mais|nao precisa (?:responder|de resposta)",
        r"e tutto|nient altro|non serve rispondere|non c e bisogno di rispondere",
        r"dat was (?:alles|het)|niets meer|verder niets|geen (?:verdere )?vragen(?: meer)?",
    ),
    "decline": (
        r"no,? (?:i am|we are|i m) (?:good|fine|ok|okay)(?: for now| thanks)?",
        r"not (?:right |just )?(?:now|at (?:the|this) (?:moment|time|point|present time)|this "
        r"(?:moment|second)|right (?:now|away|at this moment|this (?:moment|second)))|not today"
        r"|not for now|not at present|not at the present time|not at all",
        r"(?:maybe|perhaps) (?:in (?:the future|a bit|a while)|some other (?:time|day))|we can do"
        r" (?:that|it) later",
        r"(?:i will|i ll|let me) think (?:on|about|over) it",
        r"(?:maybe|perhaps|possibly) (?:later|another time|some other time|next time"
        r"|at a later (?:time|date))|some other time|another time",
        r"(?:i will|i ll|let me) think about it",
        r"nein danke|jetzt nicht|vielleicht spater|non merci|pas pour l instant|pas maintenant",
        r"no,? gracias|ahora no|quizas (?:mas )?tarde|nao,? obrigad[oa]|agora nao"
        r"|no,? grazie|nee,? (?:dank|bedankt)",
    ),
    "nevermind": (
        r"never ?mind|nevermind|no biggie",
        r"(?:please )?(?:ignore|disregard) my (?:last|previous|earlier) (?:email|e mail|message"
        r"|mail|question)",
        r"(?:i|we) (?:found|figured|sorted|worked) (?:it|this|that)(?: out)?(?: myself|"
        r" ourselves| on my own| in the end)?",
        r"kein problem|keine (?:ursache|sorge|sorgen)|hat sich erledigt|ist erledigt|erledigt",
        r"pas de (?:souci|soucis|probleme)|aucun (?:souci|probleme)|de rien|laissez tomber",
        r"no (?:hay )?problema|sin problemas?|de nada|no se preocupe|olvidelo",
        r"sem problemas?|nao (?:tem|ha) problema|de nada|esquece",
        r"nessun problema|non fa niente|non importa|lasciate perdere",
        r"geen probleem|geen zorgen|laat maar|graag gedaan",
    ),
    "resolved": (
        r"(?:tried|restarted|rebooted|checked|logged in|reinstalled|updated) (?:it |the app )?again"
        r"(?: and| now)?",
        r"(?:the |my |this |that )?(?:problem|issue|error|bug|it|everything|all) (?:is |has been "
        r"|was |have been |got |seems )?(?:now )?(?:(?:been )?(?:solved|resolved|fixed|sorted"
        r"(?: out)?|gone|cleared up))(?: now)?",
        r"(?:it |that |this |everything )?(?:works|is working|worked|working) (?:now|again|fine"
        r"|perfectly|great|well|like a charm|properly|as expected)",
        r"(?:solving|fixing|resolving|sorting(?: out)?|handling|looking into) (?:the|this|that|my"
        r"|it|everything|so quickly)(?: (?:problem|issue|error|bug|matter|so quickly))?",
        r"without (?:any )?(?:problem|issue|trouble|hassle)s?",
        r"(?:funktioniert|klappt|geht) (?:jetzt|wieder|wunderbar|prima|einwandfrei|bestens|"
        r"problemlos)(?: wieder)?|(?:problem|fehler) (?:ist |wurde )?(?:gelost|behoben)",
        r"(?:ca|cela|tout) (?:fonctionne|marche) (?:maintenant|a nouveau|de nouveau|bien"
        r"|parfaitement)|(?:c est|tout est|probleme) (?:regle|resolu)",
        r"(?:ya )?(?:funciona|esta (?:resuelto|solucionado|arreglado))(?: de nuevo| otra vez)?",
        r"(?:ja )?(?:funciona|esta (?:resolvido|funcionando))(?: de novo| novamente)?",
        r"(?:ora )?funziona(?: di nuovo)?|(?:e )?(?:tutto )?risolto",
        r"(?:(?:agora )?(?:esta )?tudo (?:certo|bem|ok)|todo (?:bien|correcto|en orden)|alles "
        r"(?:gut|in ordnung|bestens)|tout (?:va bien|est bon|est en ordre)|tutto (?:bene|ok"
        r"|a posto)"
        r"|alles (?:goed|in orde))(?: (?:agora|ahora|jetzt|maintenant|ora|nu))?",
        r"(?:het )?(?:werkt|doet het) (?:weer|nu)|(?:is )?opgelost",
    ),
    "praise": (
        r"(?:you|that|this|it) (?:helped|helps|has helped|have helped|was (?:a )?(?:big |great |"
        r"huge )?help|is (?:a )?(?:big |great )?help|will be (?:a )?(?:big |great )?help|is going"
        r" to be a (?:big |great )?help)(?: me| us)?(?: (?:a lot|a great deal|a ton|so much))?",
        r"(?<!yes )(?:that|this|it) (?:should|will|would) do(?: it)?(?: for now)?|(?:that"
        r"|it) was easy|"
        r"not (?:too |that )?bad|as always|(?:you are|you re|you have been) nothing but helpful",
        r"(?:you|u) (?:are|re|were|have been|ve been) (?:such |of )?(?:a )?(?:big |great |real |"
        r"huge |tremendous |lot of |very big )?help",
        r"look(?:ing)? forward to(?: it| that| this| \w+ing)?",
        r"(?:i|we) (?:will|must|have to|need to|got to|gotta|should) (?:be )?go(?:ing)?(?: now)?"
        r"(?=[ ,.!]*$)|"
        r"(?:you|u) can go(?: now)?",
    ),
    "acceptance": (
        r"(?:a |little |bit |slightly |somewhat |bit of a |that is |it is |too )*(?:disappoint"
        r"(?:ed|ing)|a shame|a pity|unfortunate|shame|pity),?(?: but| though)?",
        r"fair enough|(?:i |we )?understand(?: that)?|(?:i )?get it",
        r"(?:(?:leider )?schade|dommage|tant pis|(?:que |una )?pena|lastima|peccato|jammer),?"
        r"(?: (?:aber|mais|pero|mas|ma|maar))?",
    ),
    "hypothetical": (
        r"(?:i|we) (?:will|shall|would) (?:let you know|get back(?: to you)?|reach out|contact "
        r"you|be in touch|write(?: again)?|get in touch)(?: again)? (?:if|when|should)[^.!?]*",
        r"(?:if|should) [^.!?]*,? (?:i|we) (?:will|shall) (?:let you know|get back|reach out|"
        r"contact you|write|be in touch|get in touch)[^.!?]*",
        r"(?:falls|wenn) [^.!?]*(?:melde ich mich|melden wir uns)[^.!?]*",
        r"(?:si) [^.!?]*(?:je (?:vous )?recontacterai|je reviendrai vers vous|je vous "
        r"recontacte)[^.!?]*",
    ),
    "farewell": (
        r"(?:i )?hope you (?:have|had|enjoy) (?:a |your )?(?:nice|good|great|lovely|wonderful|"
        r"fantastic|pleasant) (?:day|one|weekend|week|evening|afternoon|holiday)",
        r"(?:noch )?(?:einen )?(?:schonen|guten|angenehmen) (?:tag|abend|sonntag|wochenende"
        r"|start)(?: noch)?",
        r"comme toujours|encore merci|merci encore|merci (?:encore )?une fois de plus",
        r"una vez mas|otra vez gracias|gracias de nuevo|grazie ancora|ancora grazie|"
        r"obrigad[oa] mais uma vez|nogmaals (?:bedankt|dank)",
    ),
}

# Chinese/Japanese/Korean protected phrases (substring matches; \S = one word in Korean).
PROTECTED_CJK: dict[str, tuple[str, ...]] = {
    # thanks with words that would otherwise signal: "thanks anyway" (还是), a final particle
    # 呢 after thanks, which cannot ask anything there
    "thanks": (r"还是(?:很|要)?(?:谢谢|感谢)|(?:谢谢|感谢|多谢)(?:你们|您|你|亲)?(?:了|啦|啊)?呢",),
    "ok": (r"嗯呢",),  # colloquial "yes / OK"
    "positive": (r"(?:还|挺|很|确实|真)?不错(?!过)",),  # "not bad" = good
    "closing": (
        r"(?:궁금한|문의할|여쭤볼|질문할)\s?(?:점|건|것|거|사항)(?:은|는|이)?\s?(?:더\s?)?없\S*",
        r"더\s?(?:이상\s?)?(?:문의|질문)(?:할|드릴)?\s?(?:것|건|거|사항)?(?:은|는|이)?\s?없\S*",
        r"(?:회신|답장|답변|연락)(?:은|는)?\s?(?:안|하지\s?않으셔도|안\s?하셔도|주지\s?않으셔도)"
        r"\s?(?:주셔도|하셔도|되|돼|괜찮)\S*",
        r"필요\s?없\S*",
        r"(?:他に|ほかに)(?:は)?(?:特に)?(?:質問|問題|ご相談|用件|聞きたいこと)?(?:は|も)?"
        r"(?:ありません|ございません|ないです|ない|なし)",
        r"(?:ご)?(?:返信|返事)(?:は)?(?:不要|いりません|結構|大丈夫|ご無用)\S*",
        r"(?:不用|不必|无需|不需要)(?:再)?(?:回复|回信|答复)(?:了)?",
        r"没(?:有|啥|什么)?(?:其他|其它|别的)?(?:的)?(?:问题|事情|事)(?:了|啦)",
        r"(?:我的)?(?:问题)?(?:都)?问完了",
        r"(?:^|(?<=[,，]))没(?:有)?(?:了|啦)(?=[,，.。!！~]|$)",
    ),
    "nevermind": (
        r"(?:아무\s?)?문제\s?(?:없|안\s?됩|안\s?돼)\S*",
        r"상관\s?없\S*|괜찮\S*",
        r"(?:問題|支障)(?:は)?(?:ありません|ございません|ない|ないです|なし|無い)",
        r"(?:構い|かまい)ません|大丈夫(?:です|でした)?",
        r"(?:申し訳|すみません|すいません|恐縮|失礼)\S*",
        r"没(?:有)?问题(?:了)?|没关系|没事(?:了|儿)?|没什么(?:了|事)?|不客气|不用(?:了|谢)?"
        r"|不必了|不需要了",
    ),
    "resolved": (
        r"다시\s?\S{0,4}(?:보니|봤더니|보니까|했더니|하니|하니까)",
        r"(?:문제|오류|에러|증상)?(?:가|는|이)?\s?(?:해결|처리|수정|복구|정상화)(?:이|가)?\s?"
        r"(?:됐|되었|됬|완료|잘\s?됐|되어|돼서|되서|되니|되네|된\s?것)\S*",
        r"잘\s?(?:됩니다|돼요|되네요|되었|됐|돼서|되서|되고|나옵니다|나와요|나오네요|나오고|작동|"
        r"받았|받았습니다|도착|들어왔|들어오|왔어요|왔습니다|맞|열려|열리)\S*",
        r"(?:정상|제대로)(?:적으로)?\s?(?:작동|돼|되|나와|나옵|들어|열려|연결)\S*",
        r"(?:解決|解消|完了|復旧)(?:しました|いたしました|できました|した|しております|済み|しています)",
        r"(?:直|治)りました|(?:できる|使える|届く)ように(?:なりました|なった)",
        r"(?:无事|無事|問題なく)[^。!?]*(?:できました|届きました|完了しました|しました|ました|"
        r"ております|ています)",
        r"(?:自己|自分で)(?:解決|解消)\S*|お騒がせ(?:しました|いたしました|して(?:すみません|"
        r"申し訳ありません|しまい))\S*",
        r"(?:问题)?(?:已经|已|都)?(?:解决|搞定|处理好|弄好|修好|恢复(?:正常)?)(?:了|啦)",
        r"(?:已经|已)?(?:好|可以|正常)了",
    ),
    "acceptance": (
        r"(?:좀\s?|조금\s?|많이\s?)?(?:아쉽|섭섭)\S*(?:\s?하지만|\s?그래도)?",
        r"어쩔\s?수\s?없\S*|할\s?수\s?없죠|그럴\s?수\s?있죠",
        r"仕方(?:が)?(?:ない|ありません|ないですね|ないです)|しょうがない|やむを得ない",
        r"残念(?:です|でした)?(?:が|けど|けれど)?",
        r"(?:有点|有些)?(?:遗憾|可惜)|没办法|只能这样|那好吧|那就这样吧",
    ),
    "hypothetical": (
        r"(?:혹시\s?)?[^.!?]*(?:면|시)\s?(?:그때\s?)?(?:다시\s?|또\s?)?(?:연락|문의|메일)\s?"
        r"(?:드릴게요|드리겠습니다|할게요|하겠습니다|드릴께요|드릴께여|드릴게여)",
        r"(?:다음에|나중에|필요하면|필요할\s?때)\s?(?:다시\s?|또\s?)?(?:연락|문의)\s?"
        r"(?:드릴게요|드리겠습니다|할게요|하겠습니다)",
        r"(?:また|今後|何か)[^。!?]*(?:あれば|ありましたら|あった場合は|あったら|起きたら)[^。!?]*"
        r"(?:連絡|問い合わせ|相談)(?:します|いたします|させていただきます|させて頂きます|させて"
        r"いただきます)",
        r"(?:如果|要是|若|万一)[^。!?]*(?:再|还)?(?:联系|找)(?:你们|您)[^。!?]*",
        r"有(?:问题|事|需要)(?:的话)?(?:我|我们)?(?:再|会再)?(?:联系|找|问|咨询)\S*",
    ),
    "farewell": (
        r"좋은\s?(?:하루|주말|저녁|밤|시간|한\s?주|날|오후|아침|휴일|연휴)\S*\s?(?:되세요|보내세요|"
        r"되십시오|보내십시오|되시길|보내시길|되시고|보내시고)\S*(?:\s?바랍니다)?",
        r"수고(?:하세요|하십시오|하셨습니다|많으셨습니다|많으십니다|많으세요|하셨어요|해\s?주셔서)\S*",
        r"다시\s?한\s?번\s?(?:더\s?)?(?:감사|고맙)\S*",
        r"(?:또|다시)\s?이용\S*|앞으로도\s?(?:\S+\s)?(?:자주\s?|잘\s?|계속\s?|많이\s?)?(?:이용|애용|"
        r"부탁)\S*",
        r"(?:今後とも|引き続き|これからも|また)\s?(?:どうぞ|何卒|なにとぞ)?\s?(?:よろしく|宜しく)"
        r"(?:お願い)?(?:いたします|致します|します|申し上げます)?",
        r"^(?:どうぞ|何卒|なにとぞ)?\s?(?:よろしく|宜しく)(?:お願い)?(?:いたします|致します|します|"
        r"申し上げます)?$",
        r"(?:また|今後とも)\S*(?:利用|お世話)(?:させていただきます|します|いたします|になります)",
        r"ありがた(?:い|く)",
        r"再见|拜拜|回头见|下次见",
        r"(?:辛苦|麻烦)(?:你们|您|你)?了",
        r"谢谢(?:你们|您|你)?(?:的)?(?:帮忙|帮助)|感谢(?:你们|您|你)?(?:的)?(?:帮忙|帮助)",
    ),
}

# Signals: anything here (outside protected phrases) vetoes an acknowledgement.
SIGNALS_LATIN: dict[str, tuple[str, ...]] = {
    "question": (
        # interrogatives at the start of a clause
        r"(?:^|, |: )(?:and |but |so |also |ok |okay |oh |then )?(?:how|what|when|where|why|which"
        r"|who|whom|whose|whether|is there|are there|can (?:i|you|we|someone|it|they)|could (?:i|"
        r"you|we|someone|it)|would (?:you|it|that)|will (?:i|you|it|there|my|the|that|this)|do "
        r"(?:you|i|we|they)|does|did (?:you|i|it|they)|should (?:i|we)|may i|have you|has (?:it|"
        r"the|my)|any (?:idea|update|news|chance)|wie|was|wann|warum|wieso|weshalb|welche[rsnm]?|"
        r"wo|konnen sie|konnten sie|kann ich|gibt es|haben sie|comment|quand|pourquoi|quel|quelle"
        r"|quels|quelles|combien|est ce que|pouvez vous|pourriez vous|puis je|y a t il|como|cuando"
        r"|donde|por que|cual|cuanto|cuanta|puede|pueden|podria|podrian|quando|onde|qual|quanto|"
        r"pode|podem|poderia|come|dove|perche|quale|potete|potreste|posso|hoe|wanneer|waar|waarom|"
        r"welke|wat|kunt u|kun je|kunnen jullie)(?= |$)",
        # interrogatives that rarely occur outside a question, anywhere in the sentence
        r"how|why|which|whose|whom|when|where|warum|wann|wieso|pourquoi|quand|cuando|donde"
        r"|por que|perche|quando|waarom|wanneer",
        r"wonder(?:ing)?|curious|(?:let|tell) me know|any (?:update|news)|je me demande|"
        r"ich frage mich|me pregunto",
    ),
    "request": (
        r"please|pls|plz|kindly|(?:i|we) (?:would|d) like|like to|wish to|need|needs|needed|want"
        r"|wants|wanted|hoping|would be (?:much |greatly |very much |really |most )?appreciated|"
        r"looking for|searching|search for|interested in|asap|urgent|urgently|in advance|would "
        r"appreciate|appreciate it if|grateful if|(?:help|assist) (?:me|us)|let me know|can you|"
        r"could you|would you|will you|get me|look for|look into",
        # imperative verbs, unless used as a noun ("thanks for the refund")
        r"(?<!the )(?<!my )(?<!your )(?<!a )(?<!an )(?<!this )(?<!that )(?<!our )(?<!for )"
        r"(?:send|resend|cancel|change|refund|return|replace|exchange|fix|check|book|reserve|find"
        r"|search|show|tell|give|add|remove|delete|transfer|call|order|buy|pay|rent|make|schedule"
        r"|provide|explain|advise|escalate|investigate|reopen|play|try|set|put|pick|choose|select"
        r"|start|use|sign|register|apply|ship|deliver|arrange|swap|switch|upgrade|downgrade|extend"
        r"|renew|reset|unlock|activate|deactivate|verify|contact|email|notify|inform|forward|waive"
        r"|credit|compensate|reimburse)",
        r"bitte|mochte|mochten|brauche|brauchen|benotige|wurde gerne|hatte gerne|wunsche|bitten|"
        r"schicken|senden sie|andern|stornieren|erstatten|erstattung|ruckerstattung|umtauschen|"
        r"prufen|nachsehen|im voraus|vorab|ware dankbar|waren dankbar",
        r"svp|s il vous plait|s il te plait|veuillez|merci de (?!(?:votre|vos|ta|ton|tes|la|le|"
        r"les|l|cette|ce|cet|tout|toute|m avoir|nous avoir|avoir)(?= |$))\w+|merci d avance|par "
        r"avance|je voudrais|voudrais|souhaite|souhaiterais|aimerais|besoin|pouvez|pourriez|"
        r"envoyer|rembourser|remboursement|annuler|modifier|verifier|echanger|serais reconnaissant",
        r"por favor|porfa|necesito|necesitamos|quiero|quisiera|queria|me gustaria|solicito|"
        r"solicitar|envien|enviar|reembolso|cancelar|cambiar|devolver|devolucion|revisar|"
        r"agradeceria|de antemano|preciso|precisamos|quero|gostaria|trocar|verificar|desde ja|"
        r"agradeco desde",
        r"per favore|per piacere|vorrei|ho bisogno|abbiamo bisogno|chiedo|inviare|rimborso|"
        r"annullare|cambiare|sostituire|verificare|in anticipo|sarei grato|sarei grata",
        r"alstublieft|alsjeblieft|aub|ik wil|wij willen|zou u|zouden jullie|nodig|verzoek|sturen|"
        r"terugbetaling|annuleren|wijzigen|controleren|alvast bedankt|bij voorbaat",
    ),
    "problem": (
        r"not|no|never|nothing|neither|nor|none|cannot|unable|still|again|yet|anymore|any more"
        r"|stopped|broken|broke|error|errors|issue|issues|problem|problems|bug|bugs|fail|failed|"
        r"fails|failing|failure|missing|wrong|damaged|defective|faulty|crash|crashes|crashed|"
        r"charged|overcharged|double|twice|lost|late|delay|delayed|stuck|locked|declined|"
        r"rejected|complaint|complain|unfortunately|however|though|although|except|but|same|"
        r"instead|only|incorrect|mistake|leaking|leak|scam|fraud|disputed?",
        r"nicht|kein|keine|keinen|keiner|nie|noch|wieder|erneut|weiterhin|fehler|problem|defekt|"
        r"kaputt|falsch|fehlt|fehlen|leider|aber|jedoch|allerdings|trotzdem|doch",
        r"ne|n|pas|jamais|rien|aucun|aucune|encore|toujours|de nouveau|a nouveau|probleme|erreur|"
        r"panne|casse|defectueux|manque|manquant|mais|cependant|pourtant|toutefois|"
        r"malheureusement|par contre",
        r"no|nunca|nada|ningun|ninguna|todavia|aun|sigue|siguen|sigo|otra vez|de nuevo|"
        r"nuevamente|problema|error|fallo|roto|danado|falta|faltan|pero|sin embargo|aunque|"
        r"lamentablemente|desafortunadamente|nao|nenhum|nenhuma|ainda|continua|de novo|novamente"
        r"|erro|defeito|quebrado|mas|porem|entretanto|infelizmente",
        r"non|mai|niente|nessun|nessuna|ancora|di nuovo|problema|errore|difettoso|rotto|manca|"
        r"mancano|ma|pero|tuttavia|purtroppo",
        r"niet|geen|nooit|niets|nog|weer|opnieuw|probleem|fout|kapot|defect|ontbreekt|maar|"
        r"echter|helaas",
        r"nie|nadal|ale|inte|ikke|ej|men|fortfarande|fortsatt|stadig|endnu",
    ),
    "new_topic": (
        r"another|other|different|separate|separately|unrelated|by the way|btw|one more thing|"
        r"one thing|question|questions|ps|p s|additionally|in addition|new (?:issue|problem"
        r"|question|request|order)",
        r"andere frage|anderes thema|ubrigens|noch eine frage|separat|ausserdem|zusatzlich|frage",
        r"autre question|autre chose|par ailleurs|au fait|sinon|question",
        r"otra pregunta|otra cosa|por cierto|aparte|ademas|pregunta|outra pergunta|outra coisa|"
        r"alias|alem disso|a proposito|pergunta",
        r"altra domanda|un altra cosa|inoltre|domanda",
        r"andere vraag|trouwens|verder nog|vraag",
    ),
}

SIGNALS_CJK: dict[str, tuple[str, ...]] = {
    "question": (
        r"(?:나요|까요|(?:인|한|는|은|된|던)가요|습니까|십니까|ㅂ니까|는지요|을지|ㄹ지|는지|은지|던지)",
        r"어떻게|언제|왜|뭐|무엇|무슨|어디|어느|얼마|몇|누구|어떤|혹시",
        r"でしょうか|ますか|ですか|ませんか|のか|かな|かしら|か$|か。|どう|なぜ|なんで|いつ(?!も)|何(?!卒)"
        r"|どこ|どちら|どれ|いくら|誰|どの",
        r"吗|呢|怎么|为什么|为何|什么|何时|多久|几|多少|哪|是否|能否|可否|可不可以|能不能|有没有"
        r"|是不是",
    ),
    "request": (
        r"주(?:세요|세여|시겠|실\s?수|실래|시면|셨으면|십시오|시기|시길|라|면\s|ㄹ)|줄\s?수|줄래|줘요"
        r"|줘$|부탁|바랍니다|바래요|원합니다|원해요|싶습니다|싶어요|싶은데|싶다|싶고|희망|요청|"
        r"문의(?:드립|드려|드릴|합니다|해요|하고|사항)|가능(?:할까|한가|하면|하신가|할지|한지|여부)|"
        r"확인\s?(?:부탁|바랍|좀|해\s?주)|면\s?감사하겠|알려\s?(?:주|줘)|연락\s?(?:주|바랍|부탁)",
        r"ください|下さい|くださ|ほしい|欲しい|たい(?:です|と思|のです|んです|のですが)?|たく|"
        r"お願い|願います|いただけ(?:ます|ません|れば|ると|ない)|頂け(?:ます|ません|れば|ると)|"
        r"もらえ(?:ます|ません|る|れば)|いただきたい|頂きたい|教えて|確認して|対応して|返金して|"
        r"交換して|送って|手配|希望|要望|依頼|問い合わせ(?:ます|させて|したい)|幸いです|助かります",
        r"请|麻烦|帮我|帮忙|希望|想要|想|需要|要求|申请|处理一下|查一下|看一下|尽快|尽早|催|"
        r"提前感谢|先谢谢|先谢了|"
        # "give / tell / send me", the softened imperative "V一下", "I want / will"
        r"给我|告诉我|发我|(?:我|我们)(?:还)?要(?!是)|一下",
    ),
    "problem": (
        r"(?:^|\s)안\s?(?:돼|되|됩|됐|와|옵|왔|오|들어|나|나와|나옵|보여|보이|열|켜|떠|맞|가|받|"
        r"먹|잡|풀|빠|올|틀)|안돼|안되|않|(?:^|\s)못\s?\S|못(?:해|했|하|받|봤)",
        r"없(?:어|습|네|고|는|었|다|음|으|더)|아직|여전히|계속|또다시|다시|(?:^|\s)또(?:\s|$)|재발"
        r"|반복|오류|에러|문제|실패|불량|고장|누락|파손|깨져|깨졌|잘못|이상(?:해|하|이|한)|틀려|"
        r"틀렸|틀린|빠져|불편|지연|늦어|늦게|중복|두\s?번|이중|그대로|똑같",
        r"ません|ない|なく|なかった|まだ|未だ|やはり|やっぱり|相変わらず|依然|再度|再び|また|"
        r"もう一度|同じ|エラー|不具合|故障|問題|不良|破損|壊れ|おかしい|間違|誤り|不足|遅れ|遅延|"
        r"二重|重複|ず(?:に|、|。|$)",
        r"没有|没|不|还是|仍然|仍|依然|又|再次|重新|还没|尚未|未|问题|错误|故障|失败|无法|坏|"
        r"破损|损坏|少了|缺|漏|异常|重复|多扣|两次",
    ),
    "contrast": (
        r"그런데|근데|하지만|그러나|그래도|다만|그치만|지만|는데요",
        r"(?:^|、)(?:ただ|でも)|しかし|ですが|ますが|けど|けれど|ところが|一方",
        r"但是|但|不过|可是|然而|只是",
    ),
    "new_topic": (
        r"별개|별도|다른\s?(?:문의|질문|건|문제|상품|주문)|추가\s?(?:문의|질문|로)|그리고|또한|참고로"
        r"|하나\s?더|한\s?가지\s?더|궁금한\s?(?:게|것|점)",
        r"別件|ところで|それと|あと、|もう一つ|もうひとつ|追加で|他に|ほかに|別の|新たに|新しく",
        r"另外|还有|顺便|另一个|别的|其他|再问|再咨询|新的",
    ),
}

ACK_LATIN: dict[str, tuple[str, ...]] = {
    "thanks": (
        r"thank(?:s|ks|x)?(?: you| u| ya)?|thx|tks|ty|tysm|thanx|tnx|many thanks|much appreciated"
        r"|(?:i|we) (?:really |truly |greatly |very much |so much |do )?appreciate|appreciated|"
        r"appreciate(?: it| that| this| all)?|"
        r"grateful|thankful|kudos|thansk|thnks|thnx|thankyou|tyvm",
        r"(?:vielen |herzlichen |besten |tausend )?dank(?:e|en)?(?: schon| sehr)?|merci|"
        r"(?:muchas |mil )?gracias|obrigad[oa]|grazie(?: mille)?|bedankt|dank (?:je|u)(?: wel)?|"
        r"tack|takk|tak|dziekuje|dzieki|kiitos|spasibo|danke",
    ),
    "ok": (
        r"ok(?:ay|ey|ie|s)?|oky|k|kk|alright|all right|allright|noted|understood|i see|got it|"
        r"gotcha|makes sense|roger(?: that)?|will do|i understand",
        r"alles klar|in ordnung|verstanden|okay|d accord|entendu|compris|vale|entendido|"
        r"de acuerdo|entendi|combinado|va bene|capito|d accordo|duidelijk|helder|akkoord|"
        r"kein problem|pas de (?:souci|soucis|probleme)|sem problemas?|nessun problema"
        r"|geen probleem",
    ),
    "positive": (
        r"great|perfect|good|fine|cool|excellent|awesome|wonderful|brilliant|fantastic|lovely|nice"
        r"|super|amazing|splendid|terrific|superb|sweet|neat|(?:sounds|seems|looks) (?:very |"
        r"really |so )?(?:good|great|perfect|fine|nice|ok|okay|lovely|wonderful|excellent|right|"
        r"fantastic|awesome)|(?:that|it|this) (?:works|will work|would work|suits me|fits)|"
        r"great news|good news|wow|phew|yay|ah|oh",
        r"gut|prima|toll|perfekt|parfait|tres bien|bien|genial|perfecto|perfeito|perfetto|ottimo|"
        r"goed|top",
    ),
    "affirm": (
        r"(?:that|it|this|i|everything) (?:is|am|would be|will be|was|s|its) (?:ok|okay|fine|good|"
        r"alright|all right) (?:with|to|for|by) (?:me|it|us|that)|yes|yeah|yep|yup|sure|right"
        r"|correct|exactly|i do|do it|ja|genau|oui|si|claro|sim|certo"
        r"|precisamente|esatto",
    ),
    "received": (
        r"(?:have |has )?(?:received|recieved|got|gotten|arrived|came|come through|showed up|turned"
        r" up|delivered|landed)|(?:bien )?recu|erhalten|angekommen|bekommen|recibido|recibi|"
        r"llego|recebi|recebido|chegou|ricevuto|arrivato|arrivata|ontvangen|binnen",
    ),
    "resolved": (
        r"worked|works|working|fixed|solved|resolved|sorted|done|all set|all good|good to go|"
        r"behoben|gelost|geklappt|funktioniert|klappt|regle|resolu|fonctionne|marche|resuelto"
        r"|solucionado|funciona|"
        r"resolvido|risolto|funziona|opgelost|werkt",
    ),
    "farewell": (
        r"(?:good)?bye(?: bye| now| for now)?|see (?:you|ya)(?: later| soon| around)?|take care|"
        r"talk (?:to you )?(?:soon|later)|have a (?:nice|good|great|lovely|wonderful|fantastic|"
        r"pleasant|blessed|good one|nice one) ?(?:day|one|weekend|week|evening|night|afternoon|"
        r"morning|holiday|time)?|(?:best|kind|warm|warmest|many) (?:regards|wishes)|regards|"
        r"sincerely|best|all the best|cheers|^later$|ciao|enjoy (?:your|the) (?:day|weekend)|speak"
        r" soon|until next time|tc",
        r"(?:viele|liebe|beste|freundliche|herzliche) grusse|mit freundlichen grussen|grusse|lg|"
        r"mfg|bis dann|bis bald|tschuss|schones wochenende|cordialement|bien a vous|bonne "
        r"(?:journee|soiree|fin de journee|semaine|continuation)|a bientot|bises|salutations|"
        r"saludos|un saludo|atentamente|hasta luego|buen dia|que tenga un buen dia|feliz dia|"
        r"abracos|abraco|atenciosamente|cumprimentos|ate logo|bom dia|boa tarde|cordiali saluti|"
        r"saluti|buona giornata|a presto|distinti saluti|met vriendelijke groet|groeten|groetjes|"
        r"fijne dag|tot ziens|prettige dag",
    ),
    "praise": (
        r"(?:you|u|team) (?:have been|ve been|were|are|re|is)(?: very| so| really| super| "
        r"extremely| most| truly| incredibly)? (?:helpful|great|awesome|amazing|lovely|kind|the "
        r"best|fantastic|wonderful|brilliant|a star|a lifesaver|quick|fast|patient|fab|stars)"
        r"(?: to (?:deal|work) with)?",
        r"(?:great|excellent|amazing|awesome|fantastic|wonderful|quick|fast|prompt|speedy|super|"
        r"superb|outstanding|top|lovely|kind) (?:service|job|work|support|help|response|reply|"
        r"turnaround|answer|team)",
        r"helpful|lifesaver|life saver|lovely to deal with|a pleasure|(?:very |so |really )?nice of"
        r" you|(?:great|good|nice|fantastic|amazing) job|you made (?:my day|(?:this|that|it|"
        r"everything)(?: so| extremely| really| very)? (?:easy|easier|simple))|(?:i am|i m|we are)"
        r" (?:so |very |really )?(?:happy|glad|pleased|satisfied)(?: with (?:that|it|this|the "
        r"(?:service|result|outcome))| to hear(?: that| it)?)?",
        r"(?:sehr )?hilfreich|tres (?:aimable|gentil)|tres efficace|muy amable|muito gentil|"
        r"gentilissimi|molto gentile|erg behulpzaam",
    ),
    "greeting": (
        r"hi|hello|hey|dear|good (?:morning|afternoon|evening)|greetings|hallo|guten (?:tag|"
        r"morgen|abend)|liebes? \w+ team|bonjour|bonsoir|salut|hola|buenos dias|buenas tardes|ola"
        r"|ciao|buongiorno|buonasera|hoi|goedemiddag|goedemorgen|beste",
    ),
}

ACK_CJK: dict[str, tuple[str, ...]] = {
    "thanks": (
        r"(?:정말|진짜|너무|대단히|매우|늘|항상)?\s?(?:감사|고맙|고마워)\S*|땡큐|ありがと\S*|"
        r"有難う\S*|感謝\S*|助かりました|助かります|恐れ入ります|谢谢\S*|多谢|感谢|谢了|谢啦|感激",
    ),
    "ok": (
        r"(?:^|\s)(?:네+|넵+|넹|예|응|오케이|알겠\S*|알았\S*|그렇군요|그렇구나|그렇네요|"
        r"좋아요|좋습니다|좋네요|좋아|좋군요|완벽\S*|훌륭\S*|다행\S*|잘\s?알겠\S*|이해했\S*|"
        r"이해\s?됐\S*|확인했\S*|확인\s?했\S*|확인\s?완료|확인하였\S*|확인됐\S*|아하|아\s?네|오)"
        r"(?=\s|$|[,.!~])",
        r"承知(?:しました|いたしました|致しました|です)?|了解(?:しました|です|いたしました)?|"
        r"かしこまりました|(?:分|わ)かりました|確認(?:しました|いたしました|できました|致しました)|"
        r"なるほど|はい|了解|好的|好|行|可以|明白(?:了)?|知道了|收到|了解了|(?:清楚|记下|记住)了|嗯|没错|对",
    ),
    "received": (
        r"(?:잘\s?)?(?:받았|받았습니다|수령|도착했|도착하였|들어왔|입금\s?됐|입금\s?확인)\S*|"
        r"(?:受け取|受領|届き|届い|拝受|受け取り)\S*|(?:已)?(?:收到|到账|到了|收货)(?:了)?",
    ),
    "resolved": (
        r"(?:해결|해결됐|고쳐졌|됐어요|됐네요|됐습니다|되었습니다|되네요|됩니다|잘됐)\S*|"
        r"(?:できました|使えました|使えるようになりました|つながりました|届きました|反映されました)|"
        r"(?:解决|搞定|成功|好使|能用)(?:了)?",
    ),
    "farewell": (
        r"(?:안녕히\s?(?:계세요|계십시오)|또\s?뵐게요|또\s?봬요)|(?:드림|올림|배상)$|"
        r"(?:では|それでは)?(?:失礼(?:いたします|します))|(?:敬具|以上)|祝好|此致|敬礼|"
        r"(?:좋은|즐거운)\s?\S+\s?(?:되세요|보내세요)",
    ),
    "praise": (
        r"(?:친절|신속|빠른|빠르게|꼼꼼|자세|상세)\S*|덕분\S*|최고\S*|(?:丁寧|迅速|素早|早速|親切)\S*"
        r"|(?:耐心|及时|专业|贴心|高效|周到)\S*",
    ),
    "greeting": (
        r"안녕하세요|안녕하십니까|수고\s?많으십니다|(?:いつも)?(?:大変)?お世話になって(?:おります|"
        r"います)|こんにちは|お疲れ様(?:です)?|您好|你好|老师好",
    ),
}

# Tokens that carry no content in an acknowledgement clause.
FILLER = frozenset(
 re.findall(
 r"\S+",
 """
 i me my mine myself we us our you your yours u ya guys team folks everyone all everybody
 sir madam a an the this that these those it its is are was were be been being am have has
 had do did so very much really truly lot lots bunch million ton tons heaps loads again too
 as well just now today tonight morning afternoon evening time for to with and of in on at
 from by about up oh ah hi hey hello there here then also both quick quickly prompt fast
 speedy swift kind kindly patience help helping assistance support response reply replies
 answer answers info information explanation explaining effort efforts everything anything
 stuff sorting quite pretty indeed definitely certainly absolutely totally super extremely
 most more once always finally already way appreciated getting back dealing
 speedily promptly dear friends lady man mate buddy some bit little der die das ein eine
 einen ich wir sie ihnen ihre ihr euch mir uns und fur mit von zu sehr viel vielen
 herzlichen besten schnelle schnell hilfe antwort unterstutzung nochmal nochmals mal es ist
 war alles je j nous vous votre vos mon ma mes le la les l un une de du des et pour avec
 tres bien beaucoup aide reponse rapide rapidite reactivite c est ce cette tout tous yo
 nosotros usted ustedes su sus mi mis el los las una y para por con muy mucho muchas muchos
 ayuda respuesta rapida todo eu nos voce voces seu sua meu minha o os um uma e pela pelo
 muito muita ajuda resposta io noi voi lei il lo gli di per molto molte mille vostra vostro
 aiuto risposta ik wij jullie uw het een en voor met heel erg veel hulp antwoord snelle hat
 hast habe
 """,
 )
)
KNOWN_WORDS = FILLER  # stop words of the supported Latin-script languages

# Korean / Japanese / Chinese filler (removed before measuring leftover content).
FILLER_CJK = re.compile(
    r"(?:정말|진짜|너무|많이|매우|대단히|항상|늘|다시|한번|또|아|오|와|음|저|저희|제가|저도|"
    r"고객님|담당자님|상담사님|매니저님|선생님|님|요|도|은|는|이|가|을|를|에|께|께서|의|들|"
    r"\^\^|"
    r"本当に|誠に|大変|どうも|とても|いつも|早速|色々|いろいろ|丁寧な|ご丁寧に|ご対応|ご連絡|ご返信|"
    r"です|ます|でした|ました|ございます|ございました|いただき|頂き|して|くれて|の|は|が|を|に|"
    r"も|で|と|ね|よ|わ|ー|"
    r"非常|十分|特别|真是|真的|太|很|了|的|啊|呀|哈|吧|啦|你们|您们|你|您|我|我们|亲爱的|亲|都|也|哦|"
    r"嗯)"
)

# ----------------------------------------------------------------------------- normalisation
_FOLD = {
    c: unicodedata.normalize("NFKD", chr(c)).encode("ascii", "ignore").decode() or chr(c)
    for c in range(0xC0, 0x250)
}
_FOLD.update({ord("ß"): "ss", ord("æ"): "ae", ord("ø"): "o", ord("œ"): "oe", ord("đ"): "d"})
_FOLD.update({ord(q): "'" for q in "’‘`´ʼ"})
_FOLD.update({ord(q): '"' for q in "“”„«»"})

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
    "thanks", "closing", "decline", "nevermind", "hypothetical", "farewell", "praise",
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

    def __init__(self, latin: dict[str, tuple[str, ...]], cjk: dict[str, tuple[str, ...]]):
        def alternation(lex: dict[str, tuple[str, ...]], nfkc: bool) -> str:
            groups = []
            for cat in sorted(lex, key=_ORDER.index):
                pats = [unicodedata.normalize("NFKC", p) if nfkc else p for p in lex[cat]]
                body = "|".join(pats) if nfkc else _by_first_letter(pats)
                groups.append(f"(?P<{cat}>{body})")
            return "|".join(groups)

        self.latin = re.compile(f"(?<![a-z0-9])(?:{alternation(latin, False)})(?![a-z0-9])")
        self.cjk = re.compile(alternation(cjk, True))

    def _patterns(self, text: str) -> list[re.Pattern[str]]:
        out = []
        if _HAS_LATIN.search(text):
            out.append(self.latin)
        if _CJK_CHAR.search(text):
            out.append(self.cjk)
        return out

    def mark(self, text: str) -> str:
        """Replace every phrase by its category marker."""
        for pattern in self._patterns(text):
            text = pattern.sub(lambda m: f" {MARK[m.lastgroup or 'ok']} ", text)
        return text

    def find(self, text: str) -> list[tuple[str, str]]:
        """(category, matched text) of every phrase."""
        return [
            (m.lastgroup or "", m.group()) for p in self._patterns(text) for m in p.finditer(text)
        ]


_HAS_LATIN = re.compile(r"[a-z]")
_PROTECTED = _Lexicon(PROTECTED_LATIN, PROTECTED_CJK)
_SIGNALS = _Lexicon(SIGNALS_LATIN, SIGNALS_CJK)
_ACK = _Lexicon(ACK_LATIN, ACK_CJK)


def fold(text: str) -> str:
    """NFKC, lower case, Latin accents folded, quotes unified."""
    return unicodedata.normalize("NFKC", text).lower().translate(_FOLD)


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


def _expand(sentence: str) -> str:
    if " '" in sentence or " n" in sentence or " s" in sentence or " m" in sentence:
        sentence = _SPLIT_CONTRACTION.sub(_join_contraction, sentence)
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
    """The clause starts (after filler) with a thanks marker: "thanks for X".

    A trailing thanks ("East part of town thank you") does not make the words before it
    gratitude: they are an answer or a request, politely closed.
    """
    words = [w for w in clause.split() if w not in FILLER]
    return bool(words) and words[0][0] == MARK["thanks"]


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
        masked = _PROTECTED.mark(sentence)
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
    for clause in clauses:
        marks = {CAT_OF[c] for c in clause if c in CAT_OF}
        categories |= marks
        content, other = _clause_content(clause, latin_names)
        if (marks - WEAK) and (not content or _thanks_at_edge(clause)):
            full += 1  # a clause led or closed by thanks is gratitude as a whole
        elif content:
            soft += not marks
            partial += bool(marks)
            other_script |= other
            leftovers.extend(content)
    cats = frozenset(categories)
    if not full:
        return AckResult(False, 0.0, ("no acknowledgement vocabulary",), cats)
    if "affirm" in cats and not cats & LICENSING:
        return AckResult(False, 0.0, ("affirmative answer may confirm a pending action",), cats)
    label = "gratitude" if cats <= {"thanks", "greeting"} else "acknowledgement"
    if not soft and not partial:
        conf = 0.97 if cats - {"ok", "greeting"} else 0.93
        return AckResult(True, conf, (f"only {label} after quote stripping: {shown!r}",), cats)
    if cats & LICENSING and not other_script and soft <= max(2, full) and _short(leftovers, text):
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
