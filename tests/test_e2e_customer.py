"""Customer control end to end (spec/13 §13.10): a business daemon and two customer
daemons, real processes over TCP, driven through the admin API and the `p2p` command.

What it proves: a customer that mutes a business still receives, keeps and shows its
messages, but without an alert (the other customer's arrive with one), and unmuting
brings alerts back; `p2p export` of a relationship holds its full record: the messages
in both directions plus the agreement (with the signed record), the ticket (with its
history), the ownership record (with its signed COSE bytes) and the notification
settings, as the business also holds them.
"""

from __future__ import annotations

import json
import threading

import pytest

from daemon_harness import BASIC, Cluster, connect_pair, log_problems, wait_for

pytestmark = pytest.mark.slow

SHOP_CONFIG = {
    "role": "business",
    "notifications": {"topics": [{"id": "orders", "title": "Orders", "purpose": "your orders' progress",
                                  "default_urgency": "normal"}]},
    "terms": {"accept": ["p2p:terms:service-only", "p2p:terms:no-third-party"]},
}


class Events:
    """A customer's event stream, read in a thread, from before the test acts."""

    def __init__(self, daemon) -> None:
        self.items: list[dict] = []
        self.api = daemon.api.clone()
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.ready.wait(10)

    def _read(self) -> None:
        stream = self.api.events(timeout=60)
        self.ready.set()
        try:
            for e in stream:
                self.items.append(e)
        except Exception:  # the daemon stopped at the end of the test
            pass

    def received(self) -> list[dict]:
        return [e for e in self.items if e["event"] == "message.received" and e["message"]["type"] == BASIC]


def test_mute_keeps_messages_without_alerts_and_export_holds_the_record(tmp_path):
    with Cluster(tmp_path) as cluster:
        shop = cluster.add("shop", config=SHOP_CONFIG).start()
        alice = cluster.add("alice").start()
        bob = cluster.add("bob").start()
        shop_alice, alice_shop = connect_pair(shop, alice)
        shop_bob, bob_shop = connect_pair(shop, bob)

        out = alice.run_cli("mute", alice_shop).stdout
        assert out.startswith("muted ")
        alice_events, bob_events = Events(alice), Events(bob)
        shop.api.send(shop_alice, {"content": "your parcel left"})
        shop.api.send(shop_bob, {"content": "your parcel left"})
        wait_for(lambda: alice_events.received() and bob_events.received(), timeout=20, what="both messages")
        assert [e["alert"] for e in alice_events.received()] == [False]
        assert [e["alert"] for e in bob_events.received()] == [True]
        # muted is not hidden: the message is in alice's inbox
        assert [m["body"]["content"] for m in alice.api.messages(relationship=alice_shop, type=BASIC)] == [
            "your parcel left"]
        alice.run_cli("unmute", alice_shop)
        shop.api.send(shop_alice, {"content": "delivered"})
        wait_for(lambda: len(alice_events.received()) == 2, timeout=20, what="the second message")
        assert alice_events.received()[1]["alert"] is True

        # Give the relationship a record in every protocol, then export it.
        agreement = alice.api.request("POST", f"/relationships/{alice_shop}/agreements",
                                      {"terms": ["p2p:terms:service-only"]})
        wait_for(lambda: alice.api.request("GET", f"/agreements/{agreement['id']}",
                                           query={"relationship": alice_shop})["state"] == "accepted",
                 timeout=20, what="the agreement")
        ticket = alice.api.request("POST", "/tickets", {"relationship": alice_shop, "subject": "Scratched lid",
                                                        "text": "It arrived scratched."})
        wait_for(lambda: shop.api.request("GET", "/tickets", query={"relationship": shop_alice})["tickets"],
                 timeout=20, what="the ticket at the shop")
        record = shop.api.request("POST", "/ownership/records", {
            "relationship": shop_alice, "model": "K-100", "serial": "SN-1", "purchased": "2026-11-01",
            "warranty_end": "2028-11-01"})
        wait_for(lambda: alice.api.request("GET", "/ownership/records")["records"], timeout=20,
                 what="the ownership record at alice")
        wait_for(lambda: alice.api.request("GET", f"/relationships/{alice_shop}/subscriptions")["catalogue"],
                 timeout=20, what="the catalogue")
        alice.api.request("POST", f"/relationships/{alice_shop}/subscriptions", {"subscribe": ["orders"]})

        target = tmp_path / "alice-shop.json"
        alice.run_cli("export", alice_shop, "-o", str(target))
        doc = json.loads(target.read_text())
        (rel,) = doc["relationships"]
        assert rel["relationship"]["id"] == alice_shop
        contents = [m["body"].get("content") for m in rel["messages"] if m["type"] == BASIC]
        assert contents == ["your parcel left", "delivered"]
        (a,) = rel["agreements"]
        assert a["state"] == "accepted" and a["record"] and a["terms"] == ["p2p:terms:service-only"]
        (t,) = rel["tickets"]
        assert t["id"] == ticket["id"] and t["subject"] == "Scratched lid" and ticket["id"] in t["history"]
        (o,) = rel["ownership"]
        assert o["id"] == record["id"] and o["signed"] == record["signed"]
        assert rel["notifications"]["subscribed"] == ["orders"]
        # The business holds the same agreement record, byte for byte.
        shop_side = shop.api.request("GET", f"/relationships/{shop_alice}/record")
        assert shop_side["agreements"][0]["record"] == a["record"]
        for d in (shop, alice, bob):
            assert not log_problems(d.log_text()), d.name
