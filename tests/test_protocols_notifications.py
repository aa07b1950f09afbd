"""notifications/1.0 (spec/16): the customer's Subscriptions and the business's Audience
talking through bytes, the rate limit on both sides, the outbound status table over
every transition, body round trips against the CDDL, mutations, and the vectors."""

import json
import pathlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cddl_schema import check
from p2p.core import message
from p2p.core.errors import BadArgument, RemoteError, StateError
from p2p.core.message import Message
from p2p.core.protocols import notifications as N

NOW = 1_764_320_000
BIZ, CUS = "did:example:business", "did:example:customer"
TOPICS = (N.Topic("orders", "Your orders", "Shipping of what you bought.", "normal"),
          N.Topic("offers.weekly", "Weekly offers", "Our offers, once a week.", "low"),
          N.Topic("security", "Security alerts", "Sign-ins and account changes.", "critical"))
VECTORS = pathlib.Path(__file__).resolve().parent.parent / "interop" / "vectors" / "notifications"


def wire(msg: Message, now: int | None = None) -> Message:
    return message.decode(message.encode(msg), now=now)


def setup(topics=("orders",), rate=N.RateLimit(3, 3600)):
    """A business that offered TOPICS and a customer that opted into `topics`."""
    aud, cat = N.Audience().offer(TOPICS, id="cat", frm=BIZ, to=CUS, now=NOW)
    subs = N.Subscriptions().receive_catalogue(wire(cat))
    subs, sub = subs.subscribe(topics, rate_limit=rate, id="sub", frm=CUS, to=BIZ, now=NOW)
    return aud.receive(wire(sub)), subs


def notify(aud, topic="orders", now=NOW, mid="n1", **kw):
    return aud.notify(topic=topic, title="Parcel", text="On its way.", urgency=kw.pop("urgency", "normal"),
                      id=mid, frm=BIZ, to=CUS, now=now, **kw)


def test_subscribe_is_mirrored():
    aud, subs = setup(("orders", "security"))
    assert aud.topics == subs.topics == {"orders", "security"}
    assert aud.rate_limit == subs.rate_limit == N.RateLimit(3, 3600) and aud.revision == subs.revision == 1
    subs2, un = subs.unsubscribe(["security"], id="u", frm=CUS, to=BIZ, now=NOW)
    aud2 = aud.receive(wire(un))
    assert aud2.topics == subs2.topics == {"orders"} and aud2.revision == 2
    assert aud2.receive(wire(un)) == aud2  # a duplicate (same revision) changes nothing
    subs3, prefs = subs2.preferences(id="p", frm=CUS, to=BIZ, now=NOW, rate_limit=N.RateLimit(1, 86400))
    # the snapshot repairs a mirror that missed everything
    fresh = N.Audience(catalogue=aud.catalogue).receive(wire(prefs))
    assert fresh.topics == subs3.topics and fresh.rate_limit == N.RateLimit(1, 86400) and fresh.revision == 3
    # A customer whose counter went back (a restored backup) resynchronises with a
    # snapshot: it applies whatever its revision, and later changes count from it.
    behind, snap = N.Subscriptions(catalogue=subs3.catalogue).preferences(id="p0", frm=CUS, to=BIZ, now=NOW)
    assert snap.body["revision"] == 1 < fresh.revision
    resynced = fresh.receive(wire(snap))
    assert resynced.topics == frozenset() and resynced.revision == 1
    behind, sub = behind.subscribe(["orders"], id="s2", frm=CUS, to=BIZ, now=NOW)
    assert resynced.receive(wire(sub)).topics == {"orders"}


def test_notify_reaches_the_customer_with_actions_and_links():
    aud, subs = setup()
    aud, msg = notify(aud, links=[N.Link("Track", "https://shop.example/t/1")],
                      actions=[N.Action("ok", "Thanks"), N.Action("call-me", "Call me")], expires_time=NOW + 60)
    assert check("notif-notify", message.encode(msg)) == []
    subs, d = subs.receive_notify(wire(msg, NOW), now=NOW)
    assert d.deliver and d.alert and d.error is None
    assert d.notification.actions[1] == N.Action("call-me", "Call me") and d.notification.expires_time == NOW + 60
    reply = subs.action(d.notification, "call-me", id="a", frm=CUS, to=BIZ, now=NOW)
    assert check("notif-action-reply", message.encode(reply)) == []
    assert N.parse_action(wire(reply), N.parse_notify(wire(msg))) == "call-me"
    with pytest.raises(BadArgument):
        subs.action(d.notification, "refund", id="a", frm=CUS, to=BIZ, now=NOW)
    assert subs.read_receipt(d.notification, id="r", frm=CUS, to=BIZ, now=NOW) is None  # off by default
    read = subs.with_read_receipts(True).read_receipt(d.notification, id="r", frm=CUS, to=BIZ, now=NOW)
    assert N.parse_read(wire(read)) == "n1" and check("notif-read", message.encode(read)) == []


def test_business_refuses_locally():
    aud, _ = setup()
    with pytest.raises(N.NotSubscribed):
        notify(aud, topic="security")
    with pytest.raises(BadArgument):
        notify(aud, topic="raffle")
    with pytest.raises(BadArgument):
        notify(aud, urgency="urgent")
    for i in range(3):
        aud, _ = notify(aud, now=NOW + i, mid=f"n{i}")
    with pytest.raises(N.RateLimitReached):
        notify(aud, now=NOW + 10)
    aud, _ = notify(aud, now=NOW + 3600, mid="later")  # the first left the window


def _forged(topic: str, **body) -> Message:
    return Message(id="x", type=N.NOTIFY_TYPE, frm=BIZ, to=(CUS,), created_time=NOW,
                   body={"topic": topic, "title": "t", "body": "", "urgency": "low", **body})


@pytest.mark.parametrize("msg, code", [
    (_forged("security"), "unsolicited-notification"),
    (_forged("raffle"), "unknown-topic"),
    (_forged("orders", urgency="urgent"), "invalid-field"),
    (_forged("orders", links=[{"title": "x", "url": "http://shop.example"}]), "invalid-field"),
    (_forged("orders", actions=[{"id": "a", "label": "A"}, {"id": "a", "label": "B"}]), "invalid-field"),
    (_forged("orders", title=""), "invalid-field"),
    (Message(id="x", type=N.NOTIFY_TYPE, body={"topic": "orders", "title": "t", "body": "", "urgency": "low"}),
     "missing-field"),
])
def test_customer_drops_and_reports(msg, code):
    _, subs = setup()
    after, d = subs.receive_notify(msg, now=NOW)
    assert not d.deliver and d.notification is None and d.error.code == code
    assert after == subs  # a refused notify leaves no trace in the state


def test_muted_topic_arrives_without_alert():
    aud, subs = setup(("orders", "security"))
    subs = subs.mute("security")
    _, msg = notify(aud, topic="security")
    _, d = subs.receive_notify(wire(msg), now=NOW)
    assert d.deliver and not d.alert
    with pytest.raises(StateError):
        subs.mute("offers.weekly")


def test_customer_rate_limit_and_backdating():
    _, subs = setup(rate=N.RateLimit(2, 3600))
    for i in range(2):
        subs, d = subs.receive_notify(_forged("orders"), now=NOW)
        assert d.deliver
    subs2, d = subs.receive_notify(_forged("orders"), now=NOW + 5)
    assert d.error.code == "rate-limited" and subs2 == subs
    # Backdated (but not stale): it counts at the last accepted time, not in an old window.
    old = Message(id="o", type=N.NOTIFY_TYPE, frm=BIZ, to=(CUS,), created_time=NOW - 5 * 86400,
                  body={"topic": "orders", "title": "t", "body": "", "urgency": "low"})
    assert subs.receive_notify(old, now=NOW + 5)[1].error.code == "rate-limited"
    _, fresh = setup(rate=N.RateLimit(2, 3600))
    for _ in range(2):
        fresh, d = fresh.receive_notify(old, now=NOW)
        assert d.deliver
    assert fresh.last_time == NOW - 5 * 86400
    assert fresh.receive_notify(old, now=NOW)[1].error.code == "rate-limited"
    stale = Message(id="s", type=N.NOTIFY_TYPE, frm=BIZ, to=(CUS,), created_time=NOW - N.MAX_NOTIFY_AGE - 1,
                    body={"topic": "orders", "title": "t", "body": "", "urgency": "low"})
    assert fresh.receive_notify(stale, now=NOW)[1].error.code == "message-expired"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 5000)), min_size=1, max_size=30))
def test_what_the_business_may_send_the_customer_accepts_however_late(steps):
    """Both sides count by created_time, so delivery delay never makes an honest
    business exceed the limit in the customer's eyes."""
    aud, subs = setup(rate=N.RateLimit(3, 600))
    t, arrival, sent = NOW, NOW, []
    for i, (gap, delay) in enumerate(steps):
        t += gap
        try:
            aud, msg = notify(aud, now=t, mid=f"n{i}")
        except N.RateLimitReached:
            continue
        sent.append(msg)
        arrival = max(arrival, t + delay)  # delivery is in order (spec/12)
        subs, d = subs.receive_notify(wire(msg), now=arrival)
        assert d.deliver, d.error


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(N.Status))
@pytest.mark.parametrize("event", list(N.StatusEvent))
def test_every_status_transition(status, event):
    expected = N.STATUS_TRANSITIONS[status].get(event)
    if expected is None:
        with pytest.raises(StateError, match=f"{status.value} notification cannot take {event.value}"):
            N.next_status(status, event)
    else:
        assert N.next_status(status, event) is expected


def test_terminal_statuses():
    assert {s for s, row in N.STATUS_TRANSITIONS.items() if not row} == {N.Status.READ, N.Status.FAILED,
                                                                         N.Status.EXPIRED}


# --- round trips and mutations -----------------------------------------------------------------

tokens = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
texts = st.text(max_size=40)
titles = st.text(min_size=1, max_size=40)
labels = st.text(min_size=1, max_size=16)  # at most 64 UTF-8 bytes, the label limit
urgency = st.sampled_from(N.URGENCIES)


@st.composite
def catalogues(draw):
    ids = draw(st.lists(tokens, min_size=1, max_size=6, unique=True))
    return tuple(N.Topic(i, draw(titles), draw(texts), draw(urgency)) for i in ids)


@settings(max_examples=150, deadline=None)
@given(catalogues(), st.data())
def test_round_trip_of_every_body(cat, data):
    aud, msg = N.Audience().offer(cat, id="c", frm=BIZ, to=CUS, now=NOW)
    assert check("notif-catalogue", message.encode(msg)) == []
    subs = N.Subscriptions().receive_catalogue(wire(msg))
    assert subs.catalogue == cat
    chosen = data.draw(st.lists(st.sampled_from([t.id for t in cat]), min_size=1, unique=True))
    rate = N.RateLimit(data.draw(st.integers(1, N.MAX_RATE)), data.draw(st.integers(N.MIN_WINDOW, N.MAX_WINDOW)))
    subs, sub = subs.subscribe(chosen, rate_limit=rate, id="s", frm=CUS, to=BIZ, now=NOW)
    assert check("notif-subscribe", message.encode(sub)) == []
    change = N.parse_change(wire(sub))
    assert change == N.Change("subscribe", 1, tuple(chosen), rate)
    aud = aud.receive(wire(sub))
    links = [N.Link(data.draw(titles), "https://" + data.draw(tokens)) for _ in range(data.draw(st.integers(0, 3)))]
    actions = [N.Action(i, data.draw(labels)) for i in data.draw(st.lists(tokens, max_size=3, unique=True))]
    aud, note = aud.notify(topic=chosen[0], title=data.draw(titles), text=data.draw(texts), urgency=data.draw(urgency),
                           links=links, actions=actions, id="n", frm=BIZ, to=CUS, now=NOW)
    assert check("notif-notify", message.encode(note)) == []
    parsed = N.parse_notify(wire(note))
    assert (parsed.links, parsed.actions, parsed.topic) == (tuple(links), tuple(actions), chosen[0])
    subs, un = subs.unsubscribe(chosen[:1], id="u", frm=CUS, to=BIZ, now=NOW)
    assert check("notif-unsubscribe", message.encode(un)) == []
    subs, pr = subs.preferences(id="p", frm=CUS, to=BIZ, now=NOW)
    assert check("notif-preferences", message.encode(pr)) == []
    assert aud.receive(wire(un)).receive(wire(pr)).topics == subs.topics


def test_cddl_can_fail():
    aud, _ = setup()
    _, msg = notify(aud)
    m = cbor2.loads(message.encode(msg))
    m["body"]["urgency"] = "urgent"
    assert check("notif-notify", message.encode(message.parse_map(m))) != []


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_notify_is_a_remote_error_or_a_valid_decision(data):
    aud, subs = setup()
    _, msg = notify(aud, links=[N.Link("Track", "https://shop.example/t/1")], actions=[N.Action("ok", "Thanks")])
    raw = bytearray(message.encode(msg))
    how = data.draw(st.sampled_from(["flip", "truncate", "append"]))
    if how == "flip":
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=8))
    try:
        got = message.decode(bytes(raw), now=NOW)
    except RemoteError:
        return
    _, d = subs.receive_notify(got, now=NOW)  # must not raise: a decision either way
    assert d.deliver or isinstance(d.error, RemoteError)


# --- vectors ------------------------------------------------------------------------------------


def test_notification_vectors_independently():
    vectors = {p.stem.split("-", 1)[1]: json.loads(p.read_text()) for p in VECTORS.glob("*.json")}
    assert sum(v["op"].startswith("notif_") for v in vectors.values()) >= 20
    assert sum(v["op"].startswith("notif_") and v["reject"] for v in vectors.values()) >= 8
    sub = cbor2.loads(bytes.fromhex(vectors["notif-subscribe"]["expect"]["message"]))
    assert sub["body"] == {"topics": ["orders", "security"], "revision": 1,
                           "rate_limit": {"max": 5, "window": 3600}}
    note = cbor2.loads(bytes.fromhex(vectors["notif-notify"]["expect"]["message"]))
    assert note["type"] == N.NOTIFY_TYPE and note["body"]["urgency"] == "normal"
    assert [a["id"] for a in note["body"]["actions"]] == ["ok", "call-me"]
    assert note["created_time"] == vectors["notif-notify"]["request"]["now"]


def test_text_limits_count_utf8_bytes_like_the_cddl():
    # 16 four-byte characters fill the 64-byte label limit; one more character is over it
    ok = N.Action("a", "\U0001F600" * 16)
    aud, _ = N.Audience().offer((N.Topic("t", "T", "", "low"),), id="c", frm=BIZ, to=CUS, now=NOW)
    aud = aud.receive(wire(N.Subscriptions().receive_catalogue(wire(
        N.Audience().offer((N.Topic("t", "T", "", "low"),), id="c", frm=BIZ, to=CUS, now=NOW)[1]))
        .subscribe(["t"], id="s", frm=CUS, to=BIZ, now=NOW)[1]))
    _, note = aud.notify(topic="t", title="x", text="", urgency="low", actions=[ok], id="n", frm=BIZ, to=CUS, now=NOW)
    assert check("notif-notify", message.encode(note)) == []
    with pytest.raises(BadArgument):
        aud.notify(topic="t", title="x", text="", urgency="low", actions=[N.Action("a", "\U0001F600" * 16 + "x")],
                   id="n2", frm=BIZ, to=CUS, now=NOW)
