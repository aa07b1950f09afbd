"""support/1.0 (spec/18-support.md): the ticket state machine over every (state, event,
side), bodies and attachments, rebuild from history, withdrawal after a refusal, CDDL,
and mutation of encoded messages."""

import hashlib
import itertools
import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cddl_schema import check
from p2p.core import message
from p2p.core.errors import (
    BadArgument,
    InvalidField,
    LocalError,
    MissingField,
    RemoteError,
    SenderMismatch,
    StateError,
)
from p2p.core.message import Attachment, Message
from p2p.core.protocols import support
from p2p.core.protocols.support import (
    TRANSITIONS,
    AttachmentTooLarge,
    Event,
    IllegalTransition,
    Side,
    State,
    Ticket,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
CUST = "did:peer:2.Vz6Mkcustomer.Ez6LScustomer"
BIZ = "did:peer:2.Vz6Mkbusiness.Ez6LSbusiness"
NOW = 1_764_320_000
C, B = Side.CUSTOMER, Side.BUSINESS
DID = {C: CUST, B: BIZ}

_counter = itertools.count()


def mk(name, body, side, *, thid="t-1", id=None, attachments=(), now=NOW):
    frm = DID[side]
    return Message(id=id or f"m-{next(_counter)}", type=support.message_type(name), body=body, frm=frm,
                   to=(DID[C if side is B else B],), thid=None if name == "open" else thid, created_time=now,
                   attachments=tuple(attachments))


def opening(side=C):
    return mk("open", {"subject": "Kettle", "text": "It does not heat"}, side, id="t-1")


# One message per event, from a given side (bodies that are valid in every state).
EVENT_BODIES = {
    Event.REPLY: ("reply", {"text": "hello"}),
    Event.ASSIGN: ("assign", {"assignee": "Sam"}),
    Event.WAIT_ON_CUSTOMER: ("status", {"status": "waiting_on_customer"}),
    Event.WAIT_ON_BUSINESS: ("status", {"status": "waiting_on_business"}),
    Event.RESOLVE: ("resolve", {}),
    Event.CLOSE: ("close", {}),
    Event.REOPEN: ("reopen", {}),
    Event.RATE: ("rate", {"score": 3}),
}


def event_msg(event, side):
    name, body = EVENT_BODIES[event]
    return mk(name, body, side)


# A path from nothing to each state: (event, side) steps after the customer's open.
PATHS = {
    State.OPEN: [],
    State.WAITING_ON_CUSTOMER: [(Event.REPLY, B)],
    State.WAITING_ON_BUSINESS: [(Event.REPLY, C)],
    State.RESOLVED: [(Event.RESOLVE, B)],
    State.CLOSED: [(Event.RESOLVE, B), (Event.CLOSE, B)],
    State.REOPENED: [(Event.RESOLVE, B), (Event.REOPEN, C)],
}


def history_to(state):
    return [opening()] + [event_msg(e, s) for e, s in PATHS[state]]


def ticket_in(state, ours):
    t = Ticket.rebuild(history_to(state), customer=CUST, business=BIZ, ours=ours)
    assert t.state is state
    return t


def snapshot(t):
    return (t.state, t.id, t.subject, t.assignee, t.rating, t.history)


# --- the table -------------------------------------------------------------------------


def test_table_shape():
    # Only the business resolves, assigns and sets a status; only the customer rates.
    for (state, event, side), nxt in TRANSITIONS.items():
        if event in (Event.RESOLVE, Event.ASSIGN, Event.WAIT_ON_CUSTOMER, Event.WAIT_ON_BUSINESS):
            assert side is B
        if event is Event.RATE:
            assert side is C and state in (State.RESOLVED, State.CLOSED) and nxt is state
    assert not any(s is State.CLOSED and e is not Event.RATE for s, e, _ in TRANSITIONS)


@pytest.mark.parametrize("state, event, side", [
    (s, e, sd) for s in State for e in EVENT_BODIES for sd in Side])
def test_every_transition_remote_and_local(state, event, side):
    expected = TRANSITIONS.get((state, event, side))
    # Remote: the peer (`side`) sends it, the other side applies it.
    receiver = ticket_in(state, C if side is B else B)
    before = snapshot(receiver)
    msg = event_msg(event, side)
    if expected is None:
        with pytest.raises(IllegalTransition) as exc:
            receiver.apply(msg)
        assert exc.value.code == "illegal-transition" and state.value in exc.value.detail
        assert snapshot(receiver) == before
    else:
        change = receiver.apply(msg)
        assert (change.before, change.after, change.event, change.side) == (state, expected, event, side)
        assert receiver.state is expected and receiver.history[-1] is msg
    # Local: `side` itself tries to send it.
    sender = ticket_in(state, side)
    before = snapshot(sender)
    if expected is None:
        with pytest.raises(StateError):
            sender.apply(msg, remote=False)
        assert snapshot(sender) == before
    else:
        assert sender.apply(msg, remote=False).after is expected


def test_open_only_first():
    t = Ticket(customer=CUST, business=BIZ, ours=B)
    with pytest.raises(IllegalTransition, match="before the open"):
        t.apply(event_msg(Event.REPLY, C))
    assert t.state is None and t.history == ()
    t.apply(opening())
    with pytest.raises(LocalError):  # another open is another ticket: routing is the caller's job
        t.apply(mk("open", {"subject": "x", "text": ""}, C, id="t-2"))


def test_builders_walk_a_ticket_on_both_sides():
    c = Ticket(customer=CUST, business=BIZ, ours=C)
    b = Ticket(customer=CUST, business=BIZ, ours=B)
    steps = [
        (c, lambda: c.open(id="t-9", now=NOW, subject="Broken lid", text="", category="repairs", priority="urgent")),
        (b, lambda: b.assign(id="a", now=NOW, assignee="Sam")),
        (b, lambda: b.reply(id="b", now=NOW, text="Photo please?")),
        (c, lambda: c.reply(id="c", now=NOW, text="Here", attachments=(
            support.inline_attachment("p", b"\x89PNG", media_type="image/png"),))),
        (b, lambda: b.set_status("waiting_on_customer", id="d", now=NOW, note="parts ordered")),
        (b, lambda: b.resolve(id="e", now=NOW, text="Fixed")),
        (c, lambda: c.reopen(id="f", now=NOW, text="Not fixed")),
        (b, lambda: b.resolve(id="g", now=NOW)),
        (c, lambda: c.rate(2, id="h", now=NOW, comment="slow")),
        (c, lambda: c.close(id="i", now=NOW, reason="done")),
        (c, lambda: c.rate(4, id="j", now=NOW)),
    ]
    for sender, build in steps:
        msg = build()
        receiver = b if sender is c else c
        receiver.apply(message.decode(message.encode(msg)))
        assert receiver.state is sender.state
    assert c.state is State.CLOSED and c.rating == support.Rating(4) and b.rating == support.Rating(4)
    assert (b.subject, b.category, b.priority, c.assignee) == ("Broken lid", "repairs", "urgent", "Sam")
    assert [m.id for m in c.history] == [m.id for m in b.history]
    again = Ticket.rebuild(b.history, customer=CUST, business=BIZ, ours=B)
    assert snapshot(again) == snapshot(b)


def test_local_misuse():
    c = Ticket(customer=CUST, business=BIZ, ours=C)
    with pytest.raises(StateError):
        c.reply(id="x", now=NOW, text="before open")
    c.open(id="t-1", now=NOW, subject="s")
    with pytest.raises(StateError):
        c.resolve(id="y", now=NOW)  # the customer never resolves
    with pytest.raises(StateError):
        c.rate(5, id="z", now=NOW)
    with pytest.raises(BadArgument):
        c.reply(id="z", now=NOW, text="")
    assert c.state is State.OPEN and len(c.history) == 1
    with pytest.raises(BadArgument):
        Ticket(customer=CUST, business=CUST, ours=C)


def test_sides_and_duplicates():
    b = Ticket(customer=CUST, business=BIZ, ours=B)
    b.apply(opening())
    with pytest.raises(SenderMismatch):
        b.apply(mk("reply", {"text": "x"}, B))  # our own DID arriving as a peer's message
    stranger = Message(id="s", type=support.message_type("reply"), body={"text": "x"}, frm="did:peer:2.mallory",
                       thid="t-1")
    with pytest.raises(SenderMismatch):
        b.apply(stranger)
    reply = mk("reply", {"text": "x"}, C)
    assert b.apply(reply).after is State.WAITING_ON_BUSINESS
    assert b.apply(reply) is None and len(b.history) == 2  # duplicate (from, id): no effect


# --- bodies and attachments ------------------------------------------------------------


@pytest.mark.parametrize("name, body, code", [
    ("open", {"text": "x"}, "missing-field"),
    ("open", {"subject": "", "text": "x"}, "invalid-field"),
    ("open", {"subject": "s" * 257, "text": "x"}, "invalid-field"),
    ("open", {"subject": "s"}, "missing-field"),
    ("open", {"subject": "s", "text": "x", "priority": "asap"}, "invalid-field"),
    ("open", {"subject": "s", "text": "x", "category": ""}, "invalid-field"),
    ("open", {"subject": 1, "text": "x"}, "invalid-field"),
    ("reply", {}, "missing-field"),
    ("reply", {"text": ""}, "invalid-field"),
    ("reply", {"text": "x" * 16385}, "invalid-field"),
    ("assign", {}, "missing-field"),
    ("status", {"status": "resolved"}, "invalid-field"),
    ("status", {}, "missing-field"),
    ("rate", {}, "missing-field"),
    ("rate", {"score": 0}, "invalid-field"),
    ("rate", {"score": True}, "invalid-field"),
    ("rate", {"score": "5"}, "invalid-field"),
    ("rate", {"score": 5, "comment": "c" * 1025}, "invalid-field"),
    ("close", {"reason": 7}, "invalid-field"),
])
def test_bad_bodies(name, body, code):
    msg = mk(name, body, C, id="t-1" if name == "open" else None)
    with pytest.raises(RemoteError) as exc:
        support.parse(msg)
    assert exc.value.code == code


def test_thread_fields():
    with pytest.raises(MissingField):
        support.parse(mk("reply", {"text": "x"}, C, thid=None))
    with pytest.raises(InvalidField):
        support.parse(Message(id="o", type=support.message_type("open"), body={"subject": "s", "text": ""},
                              frm=CUST, thid="other"))
    with pytest.raises(InvalidField):
        support.parse(Message(id="o", type=support.message_type("shout"), body={}, frm=CUST, thid="t"))
    with pytest.raises(InvalidField):
        support.parse(Message(id="o", type="https://p2p.example/other/1.0/open", body={}, frm=CUST))
    assert support.ticket_id(opening()) == "t-1" and support.ticket_id(event_msg(Event.REPLY, C)) == "t-1"


def link(**kw):
    data = {"links": ["https://files.example/a"], "hash": hashlib.blake2b(b"a", digest_size=32).digest()}
    return Attachment(id=kw.pop("id", "l"), data={**data, **kw.pop("data", {})}, **{"byte_count": 10, **kw})


def test_attachment_limits():
    ok = [support.inline_attachment("a", b"\x00" * 40_000), support.inline_attachment("b", b"\x00" * 25_536)]
    support.parse(mk("reply", {"text": "x"}, C, attachments=ok))  # exactly 65536 in total
    over = ok + [support.inline_attachment("c", b"\x00")]
    with pytest.raises(AttachmentTooLarge) as exc:
        support.parse(mk("reply", {"text": "x"}, C, attachments=over))
    assert exc.value.code == "attachment-too-large"
    support.parse(mk("reply", {"text": "x"}, C, attachments=[link(byte_count=support.MAX_LINKED_BYTES)]))
    for bad, code in [
        ([link(byte_count=support.MAX_LINKED_BYTES + 1)], "invalid-field"),
        ([Attachment(id="l", data={"links": ["https://f.example/a"], "hash": b"\x00" * 32})], "missing-field"),
        ([link(data={"links": ["ftp://f.example/a"]})], "invalid-field"),
        ([link(data={"links": ["https://"]})], "invalid-field"),
        ([link(data={"links": ["https://f.example/" + "a" * 2100]})], "invalid-field"),
        ([link(data={"links": ["https://f.example/a"] * 5})], "invalid-field"),
        ([Attachment(id="c", data={"cbor": {"a": 1}})], "invalid-field"),
        ([support.inline_attachment(f"a{i}", b"") for i in range(9)], "invalid-field"),
    ]:
        with pytest.raises(RemoteError) as exc:
            support.parse(mk("reply", {"text": "x"}, C, attachments=bad))
        assert exc.value.code == code, bad
    with pytest.raises(InvalidField, match="carries none"):
        support.parse(mk("rate", {"score": 5}, C, attachments=[support.inline_attachment("a", b"x")]))


def test_sending_oversized_attachment_is_local_error():
    c = Ticket(customer=CUST, business=BIZ, ours=C)
    with pytest.raises(BadArgument, match="attachment-too-large"):
        c.open(id="t-1", now=NOW, subject="s", attachments=[support.inline_attachment("a", b"\x00" * 65_537)])
    assert c.state is None and c.history == ()


# --- concurrency: a refused message is withdrawn ---------------------------------------


def test_concurrent_resolve_and_reply_converge_after_withdrawal():
    shared = history_to(State.WAITING_ON_CUSTOMER)
    c = Ticket.rebuild(shared, customer=CUST, business=BIZ, ours=C)
    b = Ticket.rebuild(shared, customer=CUST, business=BIZ, ours=B)
    resolve = b.resolve(id="res", now=NOW)  # both send at the same time
    reply = c.reply(id="rep", now=NOW, text="any news?")
    more = c.reply(id="rep2", now=NOW, text="hello?")
    c.apply(resolve)  # waiting_on_business -> resolved: fine for the customer
    with pytest.raises(IllegalTransition):
        b.apply(reply)  # resolved: a reply is refused; the business answers with a problem report
    assert c.state is State.RESOLVED and b.state is State.RESOLVED
    assert c.withdraw("rep") == ("rep",)  # rep2 was sent before the resolve arrived and is still legal here...
    assert [m.id for m in c.history][2:] == ["rep2", "res"] and c.state is State.RESOLVED
    # ...but the business will refuse it too: withdrawing it converges the histories.
    with pytest.raises(IllegalTransition):
        b.apply(more)
    c.withdraw("rep2")
    assert [m.id for m in c.history] == [m.id for m in b.history] and c.state is b.state is State.RESOLVED
    with pytest.raises(LocalError):
        c.withdraw("res")  # not ours


def test_withdraw_cascades_to_later_own_messages():
    c = Ticket.rebuild(history_to(State.RESOLVED), customer=CUST, business=BIZ, ours=C)
    c.reopen(id="ro", now=NOW)
    c.reply(id="r1", now=NOW, text="still broken")
    assert c.withdraw("ro") == ("ro", "r1")  # without the reopen, the reply is illegal too
    assert c.state is State.RESOLVED


# --- hypothesis: random walks, rebuild, mutation ------------------------------------------

steps = st.lists(st.tuples(st.sampled_from(list(EVENT_BODIES)), st.sampled_from(list(Side))), max_size=25)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_random_walk_both_sides_agree_and_rebuild(walk):
    c = Ticket(customer=CUST, business=BIZ, ours=C)
    b = Ticket(customer=CUST, business=BIZ, ours=B)
    first = opening()
    c.apply(first, remote=False)
    b.apply(first)
    for event, side in walk:
        sender, receiver = (c, b) if side is C else (b, c)
        msg = event_msg(event, side)
        legal = (sender.state, event, side) in TRANSITIONS
        before = snapshot(sender)
        if legal:
            sender.apply(msg, remote=False)
            receiver.apply(message.decode(message.encode(msg)))
        else:
            with pytest.raises(StateError):
                sender.apply(msg, remote=False)
            assert snapshot(sender) == before
            with pytest.raises(IllegalTransition):
                receiver.apply(msg)
        assert c.state is b.state
    for t in (c, b):
        assert snapshot(Ticket.rebuild(t.history, customer=CUST, business=BIZ, ours=t.ours)) == snapshot(t)


def _mutations(data: bytes):
    yield data[:-1]
    yield data + b"\x00"
    for i in range(0, len(data), max(1, len(data) // 40)):
        for bit in (0x01, 0x80):
            yield data[:i] + bytes([data[i] ^ bit]) + data[i + 1:]


@pytest.mark.parametrize("state", list(State))
def test_mutated_messages_raise_remote_errors_only(state):
    base = ticket_in(state, B)
    for event in EVENT_BODIES:
        data = message.encode(event_msg(event, C))
        for bad in _mutations(data):
            t = Ticket.rebuild(base.history, customer=CUST, business=BIZ, ours=B)
            before = snapshot(t)
            try:
                t.apply(message.decode(bad))
            except RemoteError:
                assert snapshot(t) == before
            except LocalError:
                # a mutated thid names another ticket: the caller routed it here
                assert snapshot(t) == before


@given(st.binary(max_size=200))
def test_random_bytes_raise_remote_errors_only(data):
    t = ticket_in(State.OPEN, B)
    try:
        t.apply(message.decode(data))
    except RemoteError:
        pass


# --- CDDL ----------------------------------------------------------------------------------


def test_built_messages_match_cddl():
    c = Ticket(customer=CUST, business=BIZ, ours=C)
    b = Ticket(customer=CUST, business=BIZ, ours=B)
    pairs = []

    def sent(rule, msg):
        (b if msg.frm == CUST else c).apply(msg)
        pairs.append((rule, msg))

    sent("support-open", c.open(id="t-1", now=NOW, subject="s", text="t", priority="low", attachments=[
        support.inline_attachment("a", b"x"), support.linked_attachment(
            "b", ["https://f.example/b"], hash=b"\x01" * 32, byte_count=5)]))
    sent("support-reply", b.reply(id="r", now=NOW, text="x"))
    sent("support-assign", b.assign(id="a", now=NOW, assignee="Sam"))
    sent("support-status", b.set_status("waiting_on_business", id="s", now=NOW))
    sent("support-resolve", b.resolve(id="v", now=NOW))
    sent("support-rate", c.rate(5, id="q", now=NOW, comment="ok"))
    sent("support-reopen", c.reopen(id="o", now=NOW, text="again"))
    sent("support-close", c.close(id="c", now=NOW))
    for rule, msg in pairs:
        data = message.encode(msg)
        assert check(rule, data) == [], rule
        assert check("support-message", data) == []
        assert check("msg-message", data) == []
    # the schema can fail
    assert check("support-rate", message.encode(mk("rate", {"score": 6}, C))) != []
    assert check("support-reply", message.encode(mk("reply", {"text": "x"}, C, thid=None))) != []


def test_vectors_cover_the_required_rejections():
    vectors = [json.loads(p.read_text()) for p in sorted((ROOT / "interop" / "vectors" / "customer").glob("*.json"))]
    support_vectors = [v for v in vectors if v["op"] == "support_apply"]
    codes = {v["expect"]["error"] for v in support_vectors if v["reject"]}
    assert {"illegal-transition", "attachment-too-large", "invalid-field", "sender-mismatch"} <= codes
    # Each vector replays through an independent path: decode the hex, rebuild the ticket.
    for v in support_vectors:
        r = v["request"]
        ours = Side(r["ours"])
        history = [message.decode(bytes.fromhex(h)) for h in r["history"]]
        t = Ticket.rebuild(history, customer=r["customer"], business=r["business"], ours=ours)
        msg = message.decode(bytes.fromhex(r["message"]))
        if v["reject"]:
            with pytest.raises(RemoteError) as exc:
                t.apply(msg)
            assert exc.value.code == v["expect"]["error"]
        else:
            assert t.apply(msg).after.value == v["expect"]["state"]
