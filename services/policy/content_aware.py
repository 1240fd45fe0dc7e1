"""tidydesk's policy: read the reply before touching the ticket.

1. Auto-replies never reopen.
2. A reply that only thanks / confirms / says goodbye (multilingual, see `ack`) acknowledges:
   the ticket stays solved.
3. Otherwise the reply is compared with the ticket (see `topic`): content the ticket never
   mentioned - above all a self-contained new request - makes it a `split` (new linked ticket);
   the bar is lower a month after the close, and a new-topic marker ("separately", "別件")
   counts towards it. So does a new order id where the ticket had others.
4. Everything else reopens; so does anything uncertain, because a wrongly parked request is the
   worst outcome.
"""

from __future__ import annotations

from tidydesk.policy import ack, topic
from tidydesk.policy.base import Decision, FollowUp, TicketView, Verdict

LOW_OVERLAP = 0.2  # share of the reply's content units found in the ticket


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
        if ev.new_ids and ev.ticket_has_ids and ev.overlap < LOW_OVERLAP:
            return self._decision(
                "split", 0.7, why, f"new reference {ev.new_ids[0]} not in the ticket{after}"
            )
        held = topic.held_back(ev, age)
        if held is None:
            margin = topic.score(ev) - topic.split_threshold(age)
            return self._decision(
                "split", min(0.6 + margin / 2, 0.9), why, _topic_reason(ev) + after
            )
        reasons = [why, held]
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
    new = f"{ev.novelty:.0%} of its content"
    if ev.ask_novelty:
        new += f" and {ev.ask_novelty:.0%} of what it asks"
    reason = f"new topic: {new} not in the ticket"
    if ev.request:
        reason += ", a new request" + (" for a new thing" if ev.new_referent else "")
    if ev.shared:
        reason += f" (shared: {', '.join(ev.shared)})"
    if ev.new_topic_marker:
        reason += f"; new-topic marker {ev.new_topic_marker!r}"
    return reason
