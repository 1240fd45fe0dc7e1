"""The threading engine on the in-memory adapters (same code as the service)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidydesk.common import parking
from tidydesk.common.events import (
    AutoRecorded,
    MessageHeld,
    MessageReceived,
    MessageThreaded,
    TicketSolved,
)
from tidydesk.common.memory import InMemoryEventStore, InMemoryIndex
from tidydesk.common.store import message_key
from tidydesk.threading.engine import Options, Threader
from tidydesk.tickets.tokens import reply_address, token_ticket

DATA = Path(__file__).resolve().parents[1] / "data" / "threading"
NOW = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
SECRET = b"k" * 32


def msg(mid: str, *, sender: str = "kim@example.com", subject: str = "Broken kettle",
        reply: str = "My kettle model KT-200 stopped heating.", refs: tuple[str, ...] = (),
        mailbox: str = "support@shop.example") -> MessageReceived:
    return MessageReceived(message_id=mid, digest=mid, mailbox=mailbox, sender=sender,
                           subject=subject, reply=reply, in_reply_to=refs[-1:],
                           references=refs)


def threader(**options: object) -> Threader:
    return Threader(InMemoryEventStore(), InMemoryIndex(), Options(**options),  # type: ignore[arg-type]
                    SECRET)


async def test_new_ticket_then_reply_by_headers() -> None:
    t = threader()
    first = await t.thread(msg("a"), NOW)
    assert first and first.method == "new"
    reply = await t.thread(msg("b", refs=("a",)), NOW)
    assert reply and reply.ticket_id == first.ticket_id and reply.method == "in-reply-to"
    assert (await t.store.load(first.ticket_id)).number == 1
    assert await t.thread(msg("b", refs=("a",)), NOW) is None  # never threaded twice


async def test_reply_before_parent_joins_one_ticket() -> None:
    t = threader()
    reply = await t.thread(msg("child", refs=("root", "parent")), NOW)
    parent = await t.thread(msg("parent", refs=("root",)), NOW)
    root = await t.thread(msg("root"), NOW)
    assert reply and parent and root
    assert reply.ticket_id == parent.ticket_id == root.ticket_id
    assert root.method == "out-of-order"


async def test_references_chain_with_gaps_finds_the_known_ancestor() -> None:
    t = threader()
    first = await t.thread(msg("m1"), NOW)
    later = await t.thread(msg("m9", refs=("m1", "m2-missing", "m3-missing")), NOW)
    assert first and later and later.ticket_id == first.ticket_id
    assert later.method == "references"


async def test_self_reference_and_huge_references_are_harmless() -> None:
    t = threader()
    loop = await t.thread(msg("self", refs=("self",)), NOW)
    assert loop and loop.method == "new"
    many = tuple(f"x{i}" for i in range(10_000))
    big = await t.thread(msg("big", refs=many, sender="lee@example.com"), NOW)
    assert big and big.method == "new"


async def test_subject_number_needs_a_participant() -> None:
    t = threader()
    first = await t.thread(msg("n1"), NOW)
    assert first
    number = (await t.store.load(first.ticket_id)).number
    own = await t.thread(msg("n2", subject=f"Re: [#{number}] kettle", reply="Any news?"), NOW)
    assert own and own.ticket_id == first.ticket_id and own.method == "subject-number"
    stranger = await t.thread(msg("n3", sender="eve@evil.example",
                                  subject=f"[#{number}] please attach"), NOW)
    assert isinstance(stranger, MessageHeld) and stranger.ticket_id == first.ticket_id
    assert "neither the requester" in stranger.reason
    spoof = await t.thread(msg("n4", sender="support@shop.example",
                               subject=f"[#{number}] close it"), NOW)
    assert isinstance(spoof, MessageHeld) and "support address" in spoof.reason
    ticket = await t.store.load(first.ticket_id)
    assert [m.message_id for m in ticket.messages] == ["n1", "n2"]
    assert set(ticket.held) == {"n3", "n4"}


async def test_reply_token_address_is_verified() -> None:
    t = threader()
    first = await t.thread(msg("r1"), NOW)
    assert first
    address = reply_address(SECRET, first.ticket_id, "support@shop.example")
    assert token_ticket(SECRET, address.replace("shop.example", "other.example")) is None
    assert token_ticket(SECRET, address) == first.ticket_id
    forged = address[:-len("@shop.example") - 1] + "0@shop.example"
    assert token_ticket(SECRET, forged) is None
    joined = await t.thread(msg("r2", sender="kim.alias@example.com", mailbox=address,
                                subject="other words", reply="see above"), NOW)
    assert joined and joined.ticket_id == first.ticket_id and joined.method == "reply-token"


async def test_in_reply_to_another_tenant_is_not_followed() -> None:
    t = threader()
    theirs = await t.thread(msg("o1", mailbox="help@other.example"), NOW)
    ours = await t.thread(msg("o2", refs=("o1",), mailbox="support@shop.example"), NOW)
    assert theirs and ours and ours.ticket_id != theirs.ticket_id
    assert ours.method == "new"  # Message-IDs are indexed per tenant


async def test_fresh_mail_about_the_open_issue_joins_by_content() -> None:
    t = threader()
    first = await t.thread(msg("c1", subject="Order 5521-A arrived damaged",
                               reply="Order 5521-A arrived with a cracked screen."), NOW)
    chaser = await t.thread(msg("c2", subject="Still waiting about my order",
                                reply="I still have no answer about order 5521-A with the "
                                      "cracked screen."), NOW + timedelta(days=2))
    other = await t.thread(msg("c3", subject="Invoice address change",
                               reply="Please change the billing address on my account to "
                                     "12 Elm Street."), NOW + timedelta(days=2))
    assert first and chaser and other
    assert chaser.ticket_id == first.ticket_id and chaser.method == "content"
    assert other.ticket_id != first.ticket_id and other.method == "new"


@pytest.mark.parametrize("same_domain", [False, True])
async def test_a_colleagues_chaser_joins_by_content_only_with_same_domain(
        same_domain: bool) -> None:
    t = threader(same_domain=same_domain)
    first = await t.thread(msg("d1", sender="ann@acme.example",
                               subject="Order 5521-A arrived damaged",
                               reply="Order 5521-A arrived with a cracked screen."), NOW)
    chaser = await t.thread(msg("d2", sender="bob@acme.example",
                                subject="Still waiting about our order",
                                reply="We still have no answer about order 5521-A with the "
                                      "cracked screen."), NOW + timedelta(days=2))
    assert first and chaser
    assert (chaser.ticket_id == first.ticket_id) is same_domain
    assert (await t.index.get("q:@acme.example") is not None) is same_domain


async def test_solved_tickets_are_not_joined_by_content() -> None:
    t = threader()
    first = await t.thread(msg("s1", reply="Order 77-B arrived damaged."), NOW)
    assert first
    await t.store.decide(first.ticket_id,
                         lambda _: [(TicketSolved(ticket_id=first.ticket_id), "solve")])
    again = await t.thread(msg("s2", reply="Order 77-B arrived damaged, still."), NOW)
    assert again and again.ticket_id != first.ticket_id


async def test_out_of_order_with_a_gap_moves_the_early_replies() -> None:
    t = threader(content_join=False)
    late = await t.thread(msg("g2", refs=("g1",)), NOW)  # does not name the root g0
    root = await t.thread(msg("g0"), NOW)
    middle = await t.thread(msg("g1", refs=("g0",)), NOW)
    assert late and root and middle and isinstance(middle, MessageThreaded)
    live = middle.ticket_id
    assert live == root.ticket_id  # the early reply follows its ancestor's ticket
    gone = late.ticket_id
    moved = await t.store.load(gone)
    assert moved.status == "merged" and moved.merged_into == live
    ticket = await t.store.load(live)
    assert sorted(m.message_id for m in ticket.messages) == ["g0", "g1", "g2"]
    assert await t.thread(msg("g2", refs=("g1",)), NOW) is None  # redelivery: no-op


async def test_gap_from_a_stranger_is_moved_but_held() -> None:
    t = threader()
    late = await t.thread(msg("s2", refs=("s1",), sender="eve@evil.example"), NOW)
    root = await t.thread(msg("s0", sender="lee@example.com", reply="Totally unrelated"), NOW)
    middle = await t.thread(msg("s1", refs=("s0",), sender="eve@evil.example"), NOW)
    assert late and root and middle
    assert isinstance(middle, MessageHeld) and middle.ticket_id == root.ticket_id
    ticket = await t.store.load(root.ticket_id)  # moved, but held: eve is not a participant
    assert [m.message_id for m in ticket.messages] == ["s0"] and set(ticket.held) == {
        "s1", "s2"}


async def test_cc_makes_a_participant_and_reply_token_authorises() -> None:
    t = threader()
    first = await t.thread(msgspec.structs.replace(msg("c0"), cc=("ann@example.com",)), NOW)
    assert first
    ann = await t.thread(msg("c1", refs=("c0",), sender="ann@example.com"), NOW)
    assert isinstance(ann, MessageThreaded) and ann.ticket_id == first.ticket_id
    token = reply_address(SECRET, first.ticket_id, "support@shop.example")
    other = await t.thread(msg("c2", sender="bob@else.example", mailbox=token), NOW)
    assert isinstance(other, MessageThreaded) and other.method == "reply-token"


async def test_same_mail_to_two_tenants_opens_one_ticket_each() -> None:
    t = threader()
    ours = await t.thread(msg("x1"), NOW)
    theirs = await t.thread(msg("x1", mailbox="help@other.example"), NOW)
    assert ours and theirs and ours.ticket_id != theirs.ticket_id
    assert (await t.store.load(theirs.ticket_id)).mailbox == "help@other.example"
    reply = await t.thread(msg("x2", refs=("x1",), mailbox="help@other.example"), NOW)
    assert reply and reply.ticket_id == theirs.ticket_id
    assert await t.thread(msg("x1", mailbox="help@other.example"), NOW) is None
    assert [m.message_id for m in (await t.store.load(ours.ticket_id)).messages] == ["x1"]


async def test_two_early_replies_that_link_both_ways_join_once() -> None:
    """Two tickets each holding an ancestor of the other's mail: one move, no cycle."""
    t = threader(content_join=False)
    a = await t.thread(msg("b1", refs=("b0",)), NOW)  # claims b0
    b = await t.thread(msg("a1", refs=("a0",)), NOW)  # claims a0
    assert a and b
    await t.move(a.ticket_id, b.ticket_id, "test")
    await t.move(b.ticket_id, a.ticket_id, "test")  # the pair was decided: no reverse move
    assert await t.live(a.ticket_id) == await t.live(b.ticket_id) == b.ticket_id
    assert not (await t.store.load(b.ticket_id)).moved


async def test_a_reply_claiming_its_parent_meanwhile_leaves_no_orphan_claim() -> None:
    """x1 claims its unseen parent x0 for a new ticket; before x1 claims itself, its reply
    x2 claims x1 for another ticket: x1 joins x2's, and x0's claim follows it there."""
    class Racing(InMemoryIndex):
        async def claim(self, key: str, value: str) -> str:
            got = await super().claim(key, value)
            if key.endswith("|x0") and hook:
                await t.thread(hook.pop(), NOW)
            return got

    t = Threader(InMemoryEventStore(), Racing(), Options(content_join=False), SECRET)
    hook = [msg("x2", refs=("x1",))]
    x1 = await t.thread(msg("x1", refs=("x0",)), NOW)
    x0 = await t.thread(msg("x0"), NOW)
    assert x1 and x0 and await t.live(x0.ticket_id) == await t.live(x1.ticket_id)
    ticket = await t.store.load(await t.live(x0.ticket_id))
    assert sorted(m.message_id for m in ticket.messages) == ["x0", "x1", "x2"]


async def test_a_move_finished_twice_adopts_once() -> None:
    t = threader(content_join=False)
    a, b, c = [await t.thread(msg(f"d{i}"), NOW) for i in range(3)]
    assert a and b and c
    await t.move(a.ticket_id, b.ticket_id, "test")
    await t.move(b.ticket_id, c.ticket_id, "test")  # carries a's messages on
    await t._adopt(await t.store.load(a.ticket_id))  # a late instance finishing a's move
    ticket = await t.store.load(c.ticket_id)
    assert sorted(m.message_id for m in ticket.messages) == ["d0", "d1", "d2"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_arrival_order_gives_the_in_order_partition(data: st.DataObject) -> None:
    """Small threads (In-Reply-To only, References only, full, with missing messages)."""
    threads = []
    for c in range(data.draw(st.integers(1, 3))):
        parents = [None] + [data.draw(st.integers(0, i - 1)) for i in range(1, data.draw(
            st.integers(1, 5)))]
        style = data.draw(st.sampled_from(["irt", "refs", "both"]))
        missing = data.draw(st.sets(st.integers(1, len(parents) - 1))) if len(parents) > 2 \
            else set()
        for i, p in enumerate(parents):
            chain: list[str] = []
            while p is not None:
                chain.insert(0, f"c{c}m{p}")
                p = parents[p]
            m = MessageReceived(
                message_id=f"c{c}m{i}", digest=f"c{c}m{i}", mailbox="support@shop.example",
                sender=f"u{c}@example.com", subject=f"Case {c}",
                in_reply_to=tuple(chain[-1:]) if style != "refs" else (),
                references=tuple(chain) if style != "irt" else ())
            if i not in missing:
                threads.append((c, m))
    order = data.draw(st.permutations(threads))

    async def partition(mails: list[tuple[int, MessageReceived]]) -> set[frozenset[str]]:
        t = threader(content_join=False)
        for _, m in mails:
            await t.thread(m, NOW)
        groups: dict[str, set[str]] = {}
        for _, m in mails:
            value = await t.index.get(message_key(m.mailbox, m.message_id))
            assert value
            tid = await t.live(value.partition("|")[0])
            assert (await t.store.load(tid)).has_message(m.message_id)
            groups.setdefault(tid, set()).add(m.message_id)
        return {frozenset(g) for g in groups.values()}

    assert asyncio.run(partition(list(order))) == asyncio.run(partition(threads))


async def test_machine_mail_and_weak_evidence_open_new_tickets() -> None:
    t = threader()
    first = await t.thread(msg("r1", subject="Order 5521-A arrived damaged",
                               reply="Order 5521-A arrived with a cracked screen."), NOW)
    bot = MessageReceived(message_id="r2", digest="r2", mailbox="support@shop.example",
                          sender="kim@example.com", subject="Any update on order 5521-A?",
                          reply="Following up on order 5521-A.", auto="Precedence: bulk")
    auto = await t.thread(bot, NOW + timedelta(hours=1))
    weak = await t.thread(msg("r3", subject="Cracked screen",
                              reply="The screen arrived cracked, what can be done?"),
                          NOW + timedelta(hours=2))
    assert first and auto and weak
    assert isinstance(auto, AutoRecorded) and auto.ticket_id is None  # opens no ticket
    assert auto.method == "auto"
    into = await t.thread(msgspec.structs.replace(bot, message_id="r4", in_reply_to=("r1",)),
                          NOW)
    assert isinstance(into, MessageThreaded) and into.ticket_id == first.ticket_id
    assert into.auto
    assert weak.ticket_id != first.ticket_id and weak.method == "new"


async def test_per_mailbox_threshold_still_decides() -> None:
    strict = Options.parse("", "0.55,support@shop.example=0.999", False)
    assert strict.threshold_for("support+x@shop.example") == 0.999
    t = threader(thresholds=strict.thresholds)
    first = await t.thread(msg("p1", subject="Order 5521-A arrived damaged",
                               reply="Order 5521-A arrived with a cracked screen."), NOW)
    chaser = await t.thread(msg("p2", subject="Still waiting about order 5521-A",
                                reply="Still waiting about order 5521-A."), NOW)
    assert first and chaser and chaser.ticket_id != first.ticket_id
    assert chaser.related == first.ticket_id
    assert any("below the threshold" in r for r in chaser.reasons)


# Real archives (tests/data/threading/SOURCE.md): content joining never below headers alone.
ARCHIVE_WRONG_JOINS = {"perceval-lists.mbox": 0, "emailnetwork-inbox.mbox": 0}


def test_content_joining_never_worse_than_headers_on_real_archives() -> None:
    from eval.thread_partition import MODES, evaluate

    for name, allowed in ARCHIVE_WRONG_JOINS.items():
        res = evaluate(str(DATA / name), MODES[:2])
        for part in ("dev", "held-out"):
            headers, content = res[(MODES[0][0], part)], res[(MODES[1][0], part)]
            assert content[2] >= headers[2], (name, part)
            assert content[3] <= allowed, (name, part)


async def test_auto_reply_waits_for_the_mail_it_answers_then_joins_its_ticket() -> None:
    t = threader(auto_wait=60.0)
    ooo = MessageReceived(message_id="o2", digest="o2", mailbox="support@shop.example",
                          sender="kim@example.com", subject="Out of office", in_reply_to=("o1",),
                          reply="I am out of the office until Monday.", auto="Auto-Submitted")
    now = datetime.now(UTC)
    with pytest.raises(parking.Later):  # the parent may be a moment behind: ask again later
        await t.thread(ooo, now)
    first = await t.thread(msg("o1", subject="Printer broken", reply="Room 4 shows E13."), now)
    joined = await t.thread(ooo, now)
    assert isinstance(joined, MessageThreaded) and first and joined.ticket_id == first.ticket_id
    late = msgspec.structs.replace(ooo, message_id="o3", in_reply_to=("never-seen",))
    recorded = await t.thread(late, now - timedelta(seconds=61))  # waited long enough
    assert isinstance(recorded, AutoRecorded) and recorded.ticket_id is None


def test_offline_duplicate_names_the_ticket_of_the_first(tmp_path: Path) -> None:
    """`tidydesk thread`: a second mail with a Message-ID already threaded reports where the
    first one went (the index is keyed per tenant)."""
    from tidydesk.offline_thread import thread_mbox

    mail = ("From a@b Mon Jan  1 00:00:00 2024\nFrom: ann@example.com\nTo: help@example.com\n"
            "Subject: printer\nMessage-ID: <dup@example.com>\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\n\nThe printer jams.\n\n")
    box = tmp_path / "dup.mbox"
    box.write_text(mail * 2)
    first, second = asyncio.run(thread_mbox(str(box)))
    assert first.method == "new" and first.ticket
    assert (second.method, second.ticket) == ("duplicate", first.ticket)


async def test_one_mail_delivered_twice_at_once_is_threaded_once() -> None:
    """Two instances take the same new mail at once: the one that claims its id second
    must not open the ticket again (the first does not read the ticket it opens)."""
    store, index = InMemoryEventStore(), InMemoryIndex()
    a, b = (Threader(store, index, Options(), SECRET) for _ in range(2))
    results = await asyncio.gather(*(t.thread(msg("twice"), NOW) for t in (a, b)))
    done = [r for r in results if r is not None]
    assert len(done) == 1 and done[0].method == "new"
    ticket = await store.load(done[0].ticket_id)
    assert [m.message_id for m in ticket.messages] == ["twice"] and ticket.number
