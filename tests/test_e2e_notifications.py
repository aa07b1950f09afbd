"""notifications/1.0 between real daemons: one business (role = "business", its topic
catalogue from config.toml's `[notifications] topics`, an array of inline tables) and
three customers, over TCP on 127.0.0.1, through the admin API only.

What it proves, end to end:
* the catalogue reaches each customer when the relationship starts;
* opt-in both ways: the business API refuses a notify to a non-subscriber (409
  not-subscribed); a customer that unsubscribed stops receiving (409 again); a notify
  sent around the business's check (a raw notify via POST /v1/messages, as a business
  whose mirror is out of sync would) is dropped by the customer's agent: it is in no
  message list and no event of the customer's, and the business sees `failed` with
  the customer's code;
* status: queued -> ... -> delivered -> read with receipts on; delivered stays
  delivered when the customer reads with receipts off;
* a broadcast reaches every subscriber (and only them) from one call; its progress ends
  done with per-recipient outcomes;
* the customer's rate limit is enforced by the business (429 rate-limit-reached) and by
  the customer's agent (a raw notify above it: failed, rate-limited);
* the `p2p notifications` CLI against the daemons.
"""

from __future__ import annotations

import json
import threading

import pytest

from daemon_harness import ApiError, Cluster, connect_pair, log_problems, wait_for

pytestmark = pytest.mark.slow

NOTIFY = "https://p2p.example/notifications/1.0/notify"
TOPICS = [{"id": "orders", "title": "Orders", "purpose": "your orders' progress", "default_urgency": "high"},
          {"id": "offers", "title": "Offers", "purpose": "deals"},
          {"id": "service-status", "title": "Service status", "purpose": "outages"}]


class Events:
    """A daemon's SSE stream, collected by a thread."""

    def __init__(self, daemon) -> None:
        self.items: list[dict] = []
        self.api = daemon.api.clone()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for e in self.api.events(timeout=120):
                self.items.append(e)
        except Exception:  # noqa: BLE001 - the daemon stopped: the stream ends
            pass

    def named(self, name: str) -> list[dict]:
        return [e for e in list(self.items) if e["event"] == name]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("notif")) as cluster:
        business = cluster.add("shop", label="Acme Shop", config={"role": "business",
                                                                  "notifications": {"topics": TOPICS}}).start()
        customers = [cluster.add(f"c{i}", label=f"Customer {i}").start() for i in range(3)]
        rels = [connect_pair(business, c) for c in customers]
        events = [Events(c) for c in customers] + [Events(business)]  # events[3]: the business's
        yield business, customers, rels, events
        for daemon in (business, *customers):
            if daemon.running:
                assert daemon.stop() == 0, daemon.log_tail()
            assert not log_problems(daemon.log_text()), daemon.log_tail(80)


def subs_path(rel: str) -> str:
    return f"/relationships/{rel}/subscriptions"


def status(business, nid: str) -> dict:
    return business.api.request("GET", f"/notifications/{nid}")


def wait_status(business, nid: str, want: str) -> dict:
    def check():
        try:
            n = status(business, nid)
        except ApiError as exc:
            if exc.status != 404:  # a raw notify has a row only once refused
                raise
            return None
        return n["status"] == want and n
    return wait_for(check, timeout=15, what=f"notification {nid} {want}")


def notify(business, rel: str, topic: str = "orders", **more) -> dict:
    return business.api.request("POST", "/notifications", {"relationship": rel, "topic": topic,
                                                           "title": more.pop("title", "Hello"),
                                                           "body": more.pop("body", "text"), **more})


def raw_notify(business, rel: str, topic: str) -> dict:
    """A notify that skips the business's own check (its mirror out of sync)."""
    return business.api.send(rel, {"topic": topic, "title": "unasked", "body": "spam", "urgency": "normal"},
                             type=NOTIFY)


def mirrored(business, rel_b: str, topic: str) -> bool:
    """True once the business would notify on `topic` (checked with a listing filter
    on a notify it cannot build: the 409 says not yet)."""
    try:
        n = notify(business, rel_b, topic, title="probe")
    except ApiError as exc:
        if exc.code == "not-subscribed":
            return False
        raise
    return n


def test_catalogue_and_opt_in(shop):
    business, customers, rels, events = shop
    for c, (rel_b, rel_c) in zip(customers, rels):
        view = wait_for(lambda: (v := c.api.request("GET", subs_path(rel_c)))["catalogue"] and v, timeout=15,
                        what="the catalogue")
        assert [t["id"] for t in view["catalogue"]] == ["orders", "offers", "service-status"]
        assert view["subscribed"] == [] and view["read_receipts"] is False
    assert business.api.request("GET", "/notifications/topics")["topics"][0]["default_urgency"] == "high"
    with pytest.raises(ApiError) as err:
        notify(business, rels[0][0])
    assert (err.value.status, err.value.code) == (409, "not-subscribed")
    with pytest.raises(ApiError) as err:
        notify(business, rels[0][0], "no-such-topic")
    assert err.value.status == 400


def test_status_with_and_without_read_receipts(shop):
    business, customers, rels, events = shop
    (b0, c0), (b1, c1) = rels[0], rels[1]
    customers[0].api.request("POST", subs_path(c0), {"subscribe": ["orders", "offers"], "read_receipts": True})
    customers[1].api.request("POST", subs_path(c1), {"subscribe": ["orders", "offers"]})
    first = wait_for(lambda: mirrored(business, b0, "orders"), timeout=15, what="c0's opt-in mirrored")
    wait_status(business, first["id"], "delivered")
    n1 = wait_for(lambda: mirrored(business, b1, "orders"), timeout=15, what="c1's opt-in mirrored")
    assert n1["status"] == "queued" and n1["broadcast"] is None

    # c0 reads with receipts on: read at the business, in order queued ... read.
    got = customers[0].api.request("POST", f"/notifications/{first['id']}/read", {})
    assert got["receipt"] is not None
    wait_status(business, first["id"], "read")
    # c1 reads with receipts off: the business still says delivered.
    wait_status(business, n1["id"], "delivered")
    got = customers[1].api.request("POST", f"/notifications/{n1['id']}/read", {})
    assert got["receipt"] is None and got["status"] == "read"
    customers[1].api.ping(c1)  # per-relationship order: anything c1 sent before is processed
    business.api.ping(b1)
    assert status(business, n1["id"])["status"] == "delivered"
    listing = business.api.request("GET", "/notifications", query={"relationship": b0, "status": "read"})
    assert [n["id"] for n in listing["notifications"]] == [first["id"]]


def test_broadcast_reaches_every_subscriber(shop):
    business, customers, rels, events = shop
    (b0, c0), (b1, c1), (b2, c2) = rels
    customers[2].api.request("POST", subs_path(c2), {"subscribe": ["service-status"]})
    wait_for(lambda: mirrored(business, b0, "offers") and mirrored(business, b1, "offers"), timeout=15,
             what="offers mirrored")
    out = business.api.request("POST", "/notifications/broadcast",
                               {"topic": "offers", "title": "Sale", "body": "10% off",
                                "actions": [{"id": "show", "label": "Show me"}]})
    assert out["recipients"] == 2 and out["skipped"] == {}  # c2 never opted into offers
    progress = wait_for(lambda: (p := business.api.request("GET", f"/notifications/broadcasts/{out['id']}"))["done"]
                        and p, timeout=20, what="the broadcast done")
    assert progress["counts"]["delivered"] == 2 and progress["recipients"] == 2
    page = business.api.request("GET", f"/notifications/broadcasts/{out['id']}/recipients")
    assert sorted(r["relationship"] for r in page["recipients"]) == sorted([b0, b1])
    assert all(r["status"] == "delivered" and r["notification"] for r in page["recipients"])
    for c in customers[:2]:
        received = c.api.request("GET", "/notifications", query={"topic": "offers"})["notifications"]
        assert len(received) == 2 and received[-1]["status"] == "received"  # the probe, the broadcast
        # what the customer's application shows: the notify's own content
        assert (received[-1]["title"], received[-1]["body"]) == ("Sale", "10% off")
        assert received[-1]["actions"] == [{"id": "show", "label": "Show me"}]
    assert not customers[2].api.request("GET", "/notifications", query={"topic": "offers"})["notifications"]


def test_unsubscribed_customer_stops_receiving(shop):
    business, customers, rels, events = shop
    (b0, c0) = rels[0]
    customers[0].api.request("POST", subs_path(c0), {"unsubscribe": ["offers"]})

    def refused():
        try:
            notify(business, b0, "offers")
        except ApiError as exc:
            return exc.code == "not-subscribed" and exc.status == 409
        return False
    wait_for(refused, timeout=15, what="the opt-out mirrored")
    out = business.api.request("POST", "/notifications/broadcast", {"topic": "offers", "title": "Again", "body": "x"})
    assert out["recipients"] == 1  # c1 only


def test_unsolicited_notify_never_reaches_the_customer(shop):
    business, customers, rels, events = shop
    b2, c2 = rels[2]
    raw = raw_notify(business, b2, "offers")  # c2 only opted into service-status
    failed = wait_status(business, raw["id"], "failed")
    assert failed["refused"] == "unsolicited-notification"
    customers[2].api.ping(c2)
    seen = [m["id"] for m in customers[2].api.messages(relationship=c2, protocol="true")]
    assert raw["id"] not in seen
    assert not customers[2].api.request("GET", "/notifications", query={"topic": "offers"})["notifications"]
    assert all(raw["id"] not in json.dumps(e) for e in events[2].items)
    # The business heard of it: a notification.status event with the customer's code.
    wait_for(lambda: [e for e in events[3].named("notification.status")
                      if e["id"] == raw["id"] and e["status"] == "failed" and e["error"] == "unsolicited-notification"],
             timeout=10, what="the failed event")


def test_rate_limit_enforced_by_both_sides(shop):
    business, customers, rels, events = shop
    b2, c2 = rels[2]
    view = customers[2].api.request("POST", subs_path(c2), {"rate_limit": {"max": 1, "window": 3600}})
    assert view["rate_limit"] == {"max": 1, "window": 3600} and len(view["sent"]) == 1
    wait_for(lambda: [e for e in events[3].named("subscription.changed")
                      if e["relationship"] == b2 and e["rate_limit"] == {"max": 1, "window": 3600}],
             timeout=15, what="the limit mirrored")
    first = notify(business, b2, "service-status")
    with pytest.raises(ApiError) as err:
        notify(business, b2, "service-status")
    assert (err.value.status, err.value.code) == (429, "rate-limit-reached")
    wait_status(business, first["id"], "delivered")
    # Around the business's check, the customer's agent refuses it.
    raw = raw_notify(business, b2, "service-status")
    failed = wait_status(business, raw["id"], "failed")
    assert failed["refused"] == "rate-limited"
    assert raw["id"] not in [m["id"] for m in customers[2].api.messages(relationship=c2)]


def test_cli(shop):
    business, customers, rels, events = shop
    b0, c0 = rels[0]
    out = json.loads(customers[0].run_cli("notifications", "subscriptions", c0, "--json").stdout)
    assert out["subscribed"] == ["orders"]
    customers[0].run_cli("notifications", "mute", c0, "orders")
    assert customers[0].api.request("GET", subs_path(c0))["muted"] == ["orders"]
    sent = json.loads(business.run_cli("notifications", "send", b0, "orders", "Shipped", "on its way",
                                       "--action", "track=Track it", "--json").stdout)
    assert sent["status"] == "queued"
    text = business.run_cli("notifications", "show", sent["id"]).stdout
    assert sent["id"] in text and "orders" in text
    failed = business.run_cli("notifications", "send", rels[2][0], "orders", "x", check=False)
    assert failed.returncode == 1 and "not-subscribed" in failed.stderr
