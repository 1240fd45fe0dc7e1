"""tidydesk's policy: read the reply before touching the ticket.

1. Auto-replies never reopen.
2. A reply that only thanks / confirms / says goodbye (multilingual, see `ack`) acknowledges:
   the ticket stays solved.
3. Otherwise the reply is compared with the ticket (see `topic`): an explicit new-topic marker
   ("separately", "別件", "另外"), a new order id where the ticket had others, or - weeks after the
   close - no shared topic with the ticket makes it a `split` (new linked ticket).
4. Everything else reopens; so does anything uncertain, because a wrongly parked request is the
   worst outcome.
"""

from __future__ import annotations

from services.policy import ack, topic
from services.policy.base import Decision, FollowUp, TicketView, Verdict

LONG_AFTER = 30.0  # days: replies later than this need shared topic words to reopen
MEDIUM_AFTER = 14.0  # days: from here a reply with no shared topic at all is split
LOW_OVERLAP = 0.2  # share of the reply's content units found in the ticket
NO_OVERLAP = 0.1
MIN_UNITS = 4  # fewer content units than this ("any update?") says too little to split on


class ContentAware:
    """Multilingual acknowledgement detection + new-topic detection."""

    name = "content-aware"
    version = "1"

    def _decision(self, verdict: Verdict, confidence: float, *reasons: str) -> Decision:
        return Decision(
            verdict=verdict,
            confidence=round(confidence, 3),
            reasons=tuple(reasons),
            policy=self.name,
            version=self.version,
        )

    def decide(self, ticket: TicketView, message: FollowUp) -> Decision:
        if message.auto:
            return self._decision("acknowledge", 1.0, "auto-reply")
        reply = message.reply if message.reply.strip() else message.body
        found = ack.detect(reply, message.sender)
        if found.is_ack:
            return self._decision("acknowledge", found.confidence, *found.reasons)

        why = found.reasons[0] if found.reasons else "not only an acknowledgement"
        text = topic.ticket_text(ticket.subject, [(m.author, m.text) for m in ticket.messages])
        ev = topic.compare(reply, text)
        age = ticket.closed_days_ago
        after = f", {age:g} days after close" if age is not None else ""
        if ev.shared_ids:
            return self._decision(
                "reopen", 0.9, why, f"mentions the ticket's reference {ev.shared_ids[0]}"
            )
        if ev.new_topic_marker:
            return self._decision(
                "split", 0.8, why, f"new-topic marker {ev.new_topic_marker!r}{after}"
            )
        if ev.new_ids and ev.ticket_has_ids and ev.overlap < LOW_OVERLAP:
            return self._decision(
                "split", 0.7, why, f"new reference {ev.new_ids[0]} not in the ticket{after}"
            )
        if age is not None and ev.units >= MIN_UNITS and not ev.back_reference:
            if age > LONG_AFTER and ev.overlap < LOW_OVERLAP:
                return self._decision(
                    "split",
                    0.6 + min(age, 180.0) / 900 + (LOW_OVERLAP - ev.overlap),
                    why,
                    _topic_reason(ev) + after,
                )
            if age > MEDIUM_AFTER and ev.overlap < NO_OVERLAP and not ev.continuation_marker:
                return self._decision("split", 0.55, why, _topic_reason(ev) + after)
        reasons = [why]
        if ev.shared:
            reasons.append(f"shares topic words with the ticket: {', '.join(ev.shared)}")
        if ev.back_reference:
            reasons.append(f"refers back to the earlier exchange: {ev.back_reference!r}")
        elif ev.continuation_marker:
            reasons.append(f"continuation marker {ev.continuation_marker!r}")
        if age is None:
            reasons.append("ticket content or close time unknown: reopen")
        marked = ev.back_reference or ev.continuation_marker
        confidence = 0.55 + min(ev.overlap, 0.5) * 0.6 + (0.1 if marked else 0)
        return self._decision("reopen", min(confidence, 0.95), *reasons)


def _topic_reason(ev: topic.TopicEvidence) -> str:
    if not ev.shared:
        return "no shared topic with the ticket"
    return f"little shared topic with the ticket ({ev.overlap:.0%}: {', '.join(ev.shared)})"
