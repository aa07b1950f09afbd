"""notifications/1.0 in the daemon (p2p/services/notifications.py), with in-process
agents: one business (role = "business") and customers, each a real Agent with its
own home (real SQLite) and listener on 127.0.0.1.

What these tests prove: the catalogue reaches a new customer and a changed one reaches
every customer; opt-in is enforced by the business (not-subscribed) and, when the
business's mirror is out of sync, by the customer's agent, which drops the notify (no
archive row, no message.received) and reports it, so the business sees `failed`; the
status goes queued -> delivered -> read only with receipts on; quick replies reach the
business and only offered ones can be sent; mute keeps the notify but without an
alert; broadcasts reach every subscriber in one call and skip those whose rate limit is
used up; the state codecs round-trip; the [notifications] config is checked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio
from hypothesis import given, strategies as st

from p2p.core.errors import BadArgument, StateError
from p2p.core.protocols import notifications as core
from p2p.home import Config, ConfigError
from p2p.services import notifications as svc
from p2p.store import notifications as nstore

from test_agent import Running

TOPICS = [{"id": "orders", "title": "Orders", "purpose": "your orders' progress", "default_urgency": "high"},
          {"id": "offers", "title": "Offers", "purpose": "deals, at most weekly"},
          {"id": "service-status", "title": "Service status", "purpose": "outages"}]


def cfg(tmp_path: Path, name: str, **kw) -> Config:
    return Config(home=tmp_path / name, listen_host="127.0.0.1", listen_port=0, advertise_host="127.0.0.1",
                  label=name, **kw)


async def until(predicate, timeout: float = 15):
    with trio.fail_after(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await trio.sleep(0.02)


class Shop:
    """A business and its customers, connected."""

    def __init__(self, nursery, tmp_path, customers: int = 1, topics=TOPICS, customer_config=None) -> None:
        self.nursery, self.tmp_path, self.n, self.topics = nursery, tmp_path, customers, topics
        self.customer_config = customer_config or {}
        self.events: list[dict] = []

    async def start(self) -> Shop:
        services = {"notifications": {"topics": self.topics}} if self.topics else {}
        self.rb = Running(self.nursery, cfg(self.tmp_path, "shop", role="business", services=services))
        self.business = await self.rb.start()
        self.nursery.start_soon(self._collect, self.business, "shop")
        self.customers, self.rel_at_shop, self.rel_at_customer = [], [], []
        for i in range(self.n):
            r = Running(self.nursery, cfg(self.tmp_path, f"c{i}",
                                          services={"notifications": dict(self.customer_config)}))
            c = await r.start()
            self.nursery.start_soon(self._collect, c, f"c{i}")
            invitation = await self.business.create_invitation()
            rel_c = await c.accept_invitation(invitation["url"])

            async def listed():
                return [r for r in await self.business.list_relationships(state="active")
                        if r["their_did"] == rel_c["our_did"]]
            rel_b = (await until(listed))[0]
            self.customers.append(c)
            self.rel_at_shop.append(rel_b["id"])
            self.rel_at_customer.append(rel_c["id"])
        return self

    async def _collect(self, agent, who: str) -> None:
        async with agent.subscribe(buffer=100_000) as channel:
            async for e in channel:
                self.events.append({**e, "who": who})

    def ev(self, who: str, name: str) -> list[dict]:
        return [e for e in self.events if e["who"] == who and e["event"] == name]

    def bs(self):
        return self.business.service("notifications")

    def cs(self, i: int = 0):
        return self.customers[i].service("notifications")

    async def subscribe(self, i: int, topics: list[str], **more) -> dict:
        out = await self.cs(i).update_subscriptions(self.rel_at_customer[i], subscribe=topics, **more)

        async def mirrored():
            blob = nstore.load_state(self.business.store, self.rel_at_shop[i])
            return blob and set(topics) <= svc.decode_audience(blob, svc._Catalogues()).topics
        await until(mirrored)
        return out

    async def status_is(self, nid: str, status: str) -> dict:
        async def check():
            n = await self.bs().notification(nid)
            return n if n["status"] == status else None
        return await until(check)


@pytest.fixture
async def shop_factory(nursery, tmp_path):
    async def make(**kw) -> Shop:
        return await Shop(nursery, tmp_path, **kw).start()
    return make


# --- codecs and config --------------------------------------------------------------------------

_topic_ids = st.sampled_from(["orders", "offers", "service-status"])
_catalogue = tuple(core.Topic(t["id"], t["title"], t["purpose"], t.get("default_urgency", "normal")) for t in TOPICS)


@given(st.frozensets(_topic_ids), st.none() | st.builds(core.RateLimit, st.integers(1, 10_000),
                                                         st.integers(60, 2_592_000)),
       st.integers(0, 2**63 - 1), st.lists(st.integers(0, 2**40), max_size=20), st.frozensets(_topic_ids),
       st.booleans())
def test_state_codecs_round_trip(topics, rate, revision, times, muted, receipts):
    a = core.Audience(_catalogue, topics, rate, revision, tuple(times))
    assert svc.decode_audience(svc.encode_audience(a), svc._Catalogues()) == a
    s = core.Subscriptions(_catalogue, topics, muted, rate, receipts, revision, tuple(times), max(times, default=0))
    assert svc.decode_subscriptions(svc.encode_subscriptions(s), svc._Catalogues()) == s


def test_catalogue_from_the_api_is_checked():
    assert [t.id for t in svc.parse_topics(TOPICS)] == ["orders", "offers", "service-status"]
    assert svc.parse_topics(TOPICS)[1].default_urgency == "normal"  # filled in
    for bad in ("orders", [{"id": "Orders", "title": "x"}], [{"id": "a", "title": "x", "colour": 1}],
                [{"id": "a", "title": "x"}, {"id": "a", "title": "y"}], [{"id": "a", "title": ""}],
                [{"id": "a", "title": "x", "default_urgency": "urgent"}]):
        with pytest.raises(BadArgument):
            svc.parse_topics(bad)


async def test_config_is_checked(tmp_path):
    from p2p.agent import Agent
    bad = [({"role": "business", "services": {"notifications": {"topics": [{"id": "Bad Id", "title": "x"}]}}},
            "topics"),
           ({"role": "business", "services": {"notifications": {"topics": "orders"}}}, "topics is a list of"),
           ({"services": {"notifications": {"topics": TOPICS}}}, "business"),
           ({"services": {"notifications": {"colour": 1}}}, "unknown"),
           ({"services": {"notifications": {"read_receipts": "yes"}}}, "read_receipts")]
    for i, (kw, words) in enumerate(bad):
        with pytest.raises(ConfigError, match=words):
            Agent.open(cfg(tmp_path, f"bad{i}", **kw)).close()
    ok = Agent.open(cfg(tmp_path, "ok", role="business", services={"notifications": {"topics": TOPICS}}))
    try:
        assert [t["id"] for t in (await ok.service("notifications").topics())["topics"]] == \
            ["orders", "offers", "service-status"]
    finally:
        ok.close()


# --- the protocol between agents -----------------------------------------------------------------


async def test_opt_in_status_read_receipts_actions_and_mute(shop_factory):
    shop = await shop_factory(customers=1)
    bs, cs = shop.bs(), shop.cs()
    rel_b, rel_c = shop.rel_at_shop[0], shop.rel_at_customer[0]

    # The catalogue arrived with the relationship.
    view = await until(lambda: _catalogue_arrived(cs, rel_c))
    assert [t["id"] for t in view["catalogue"]] == ["orders", "offers", "service-status"]
    assert shop.ev("c0", "notification.catalogue")

    # No opt-in: the business refuses to build it.
    with pytest.raises(core.NotSubscribed):
        await bs.notify(rel_b, "orders", "Shipped", "Your order shipped")
    with pytest.raises(BadArgument):
        await bs.notify(rel_b, "unknown-topic", "x", "y")

    await shop.subscribe(0, ["orders"])
    assert shop.ev("shop", "subscription.changed")[-1]["topics"] == ["orders"]
    n = await bs.notify(rel_b, "orders", "Shipped", "Your order shipped", actions=[
        {"id": "track", "label": "Track it"}, {"id": "stop", "label": "Stop these"}],
        links=[{"title": "Order", "url": "https://shop.example/o/1"}])
    assert n["status"] == "queued" and n["topic"] == "orders"
    await shop.status_is(n["id"], "delivered")
    got = await until(lambda: _received(shop.customers[0], n["id"]))
    assert got["body"]["urgency"] == "high"  # the topic's default
    received = [e for e in shop.ev("c0", "message.received") if e["message"]["id"] == n["id"]]
    assert received and received[0]["alert"] is True

    # Receipts are off by default: reading sends nothing and the status stays delivered.
    r = await cs.read(n["id"])
    assert r["receipt"] is None and r["status"] == "read"
    await trio.sleep(0.3)
    assert (await bs.notification(n["id"]))["status"] == "delivered"

    # A quick reply: only one the notify offered.
    with pytest.raises(BadArgument):
        await cs.act(n["id"], "refund")
    answered = await cs.act(n["id"], "track")
    assert answered["action"] == "track"
    with pytest.raises(StateError):
        await cs.act(n["id"], "stop")  # once
    await until(lambda: _has_action(bs, n["id"]))
    assert shop.ev("shop", "notification.action")[-1]["action"] == "track"

    # Receipts on: the next one becomes read at the business.
    await cs.update_subscriptions(rel_c, read_receipts=True)
    n2 = await bs.notify(rel_b, "orders", "Delivered", "It is at your door")
    await until(lambda: _received(shop.customers[0], n2["id"]))
    r2 = await cs.read(n2["id"])
    assert r2["receipt"] is not None
    await shop.status_is(n2["id"], "read")
    statuses = [e["status"] for e in shop.ev("shop", "notification.status") if e["id"] == n2["id"]]
    assert statuses[0] == "queued" and statuses[-1] == "read"

    # Mute: still delivered and kept, but without an alert.
    await cs.update_subscriptions(rel_c, mute=["orders"])
    n3 = await bs.notify(rel_b, "orders", "Quiet", "muted")
    await until(lambda: _received(shop.customers[0], n3["id"]))
    muted = [e for e in shop.ev("c0", "message.received") if e["message"]["id"] == n3["id"]]
    assert muted and muted[0]["alert"] is False
    with pytest.raises(StateError):
        await cs.update_subscriptions(rel_c, mute=["offers"])  # not subscribed

    listed = await bs.notifications(relationship=rel_b)
    assert [x["id"] for x in listed["notifications"]] == [n["id"], n2["id"], n3["id"]]
    assert [x["id"] for x in (await bs.notifications(status="read"))["notifications"]] == [n2["id"]]
    exported = await shop.business.relationship_record(rel_b)
    assert len(exported["notifications"]["sent"]) == 3
    exported_c = await shop.customers[0].relationship_record(rel_c)
    assert exported_c["notifications"]["received"] == {"count": 3, "read": 2, "answered": 1}

    # Opt-out: the business's mirror follows and refuses again.
    await cs.update_subscriptions(rel_c, unsubscribe=["orders"])

    async def opted_out():
        try:
            await bs.notify(rel_b, "orders", "x", "y")
        except core.NotSubscribed:
            return True
        return False
    await until(opted_out)


async def test_an_out_of_sync_business_cannot_reach_the_customer(shop_factory):
    shop = await shop_factory(customers=1)
    bs = shop.bs()
    rel_b, rel_c = shop.rel_at_shop[0], shop.rel_at_customer[0]
    await until(lambda: _catalogue_arrived(shop.cs(), rel_c))
    await shop.subscribe(0, ["orders"])
    # Corrupt the business's mirror: it believes the customer opted into offers too.
    a = svc.decode_audience(nstore.load_state(shop.business.store, rel_b), svc._Catalogues())
    with shop.business.store.atomic():
        nstore.save_states(shop.business.store, [(rel_b, svc.encode_audience(
            dataclasses.replace(a, topics=a.topics | {"offers"})))], shop.business.now())
    n = await bs.notify(rel_b, "offers", "50% off", "unsolicited")
    failed = await shop.status_is(n["id"], "failed")
    assert failed["refused"] == "unsolicited-notification"
    assert any(e["id"] == n["id"] and e["status"] == "failed" for e in shop.ev("shop", "notification.status"))
    # The customer's application never saw it.
    c = shop.customers[0]
    assert not [m for m in await c.messages(relationship=rel_c, limit=1000) if m["id"] == n["id"]]
    assert not [e for e in shop.ev("c0", "message.received") if e["message"]["id"] == n["id"]]
    assert (await shop.cs().notifications())["notifications"] == []


async def test_broadcast_and_rate_limits(shop_factory):
    shop = await shop_factory(customers=3)
    bs = shop.bs()
    for i in range(3):
        await until(lambda i=i: _catalogue_arrived(shop.cs(i), shop.rel_at_customer[i]))
    await shop.subscribe(0, ["offers"])
    await shop.subscribe(1, ["offers"], rate_limit={"max": 1, "window": 3600})
    await shop.subscribe(2, ["orders"])  # not a subscriber of offers: not a recipient
    b = await bs.broadcast("offers", "Sale", "Everything 10% off")
    assert b["recipients"] == 2 and b["skipped"] == {}

    async def done():
        p = await bs.broadcast_status(b["id"])
        return p if p["done"] else None
    progress = await until(done)
    assert progress["counts"]["delivered"] == 2 and progress["recipients"] == 2
    page = await bs.broadcast_recipients(b["id"])
    assert sorted(r["relationship"] for r in page["recipients"]) == sorted(shop.rel_at_shop[:2])
    assert {r["status"] for r in page["recipients"]} == {"delivered"}

    # Customer 1's limit (1 per hour) is used up: skipped, and a direct notify is refused.
    b2 = await bs.broadcast("offers", "Sale 2", "More")
    assert b2["recipients"] == 1 and b2["skipped"] == {"rate-limit-reached": 1}
    with pytest.raises(core.RateLimitReached):
        await bs.notify(shop.rel_at_shop[1], "offers", "x", "y")
    page = await bs.broadcast_recipients(b2["id"], limit=1)
    rest = await bs.broadcast_recipients(b2["id"], after=page["next_after"])
    both = page["recipients"] + rest["recipients"]
    assert rest["next_after"] is None and len(both) == 2
    assert {r["relationship"]: r["status"] for r in both}[shop.rel_at_shop[1]] == "skipped"

    # A catalogue change reaches every customer; opt-ins to dropped topics are void.
    out = await bs.set_topics([TOPICS[0]])
    assert out["offered_to"] == 3
    await until(lambda: _catalogue_is(shop.cs(0), shop.rel_at_customer[0], ["orders"]))
    assert (await shop.cs(0).subscriptions(shop.rel_at_customer[0]))["subscribed"] == []
    with pytest.raises(BadArgument):
        await bs.broadcast("offers", "gone", "gone")


async def _catalogue_arrived(cs, rel_c):
    view = await cs.subscriptions(rel_c)
    return view if view["catalogue"] else None


async def _catalogue_is(cs, rel_c, ids):
    return [t["id"] for t in (await cs.subscriptions(rel_c))["catalogue"]] == ids


async def _received(agent, mid):
    found = [m for m in await agent.messages(type=core.NOTIFY_TYPE, limit=1000) if m["id"] == mid]
    return found[0] if found else None


async def _has_action(bs, nid):
    return (await bs.notification(nid))["action"] == "track"


async def test_a_catalogue_changed_in_the_config_reaches_existing_customers(shop_factory):
    shop = await shop_factory(topics=TOPICS[:1])
    cs, rel_c = shop.cs(0), shop.rel_at_customer[0]
    await until(lambda: _catalogue_is(cs, rel_c, ["orders"]))
    await shop.rb.stop()
    shop.rb.cfg = dataclasses.replace(shop.rb.cfg, services={"notifications": {"topics": TOPICS}})
    business = await shop.rb.start()
    await until(lambda: _catalogue_is(cs, rel_c, ["orders", "offers", "service-status"]))
    # the same catalogue at the next start is not offered again
    await shop.rb.stop()
    business = await shop.rb.start()
    await trio.sleep(0.5)
    sent = await business.messages(type=core.CATALOGUE_TYPE, direction="out")
    assert len(sent) == 2
