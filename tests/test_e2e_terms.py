"""terms/1.0 end to end: two real daemons (business and customer) over TCP, driven
through the admin API and the `p2p` command only.

What it proves:
* A business whose policy rejects a term the customer proffers is refused everything
  but connection upkeep by a customer that requires an agreement (`[terms] require =
  true`): its basic messages and notifications come back as problem reports
  (agreement-required; the notification's status is failed) and never reach the
  customer's application, while trust ping (exempt) and revoke (connect/1.0) still work.
* An accepted agreement gives both sides the byte-identical signed record, and the
  business's later messages carry its hash (x-agreement) and are taken.
* The CLI lists the roster and the agreements.
"""

from __future__ import annotations

import json

import pytest

from daemon_harness import BASIC, ApiError, Cluster, connect_pair, log_problems, wait_for
from p2p.core import message
from p2p.core.protocols import terms
from p2p.home import DB_NAME
from p2p.store import SQLiteStore

pytestmark = pytest.mark.slow

T = "p2p:terms:"
PROBLEM = "https://didcomm.org/report-problem/2.0/problem-report"
BUSINESS_TERMS = {"accept": [T + "no-third-party", T + "no-tracking", T + "delete-on-revoke"],
                  "alternatives": {T + "service-only": T + "service-and-improvement"},
                  "reject": [T + "data-copy"]}
TOPICS = [{"id": "offers", "title": "Offers", "purpose": "discounts"}]


def _agreement(api, aid, rel, state):
    def check():
        a = api.request("GET", f"/agreements/{aid}", query={"relationship": rel})
        return a if a["state"] == state else None
    return wait_for(check, timeout=15, what=f"agreement {aid} {state}")


def _problems(api, rel):
    return {m["pthid"]: m for m in api.messages(relationship=rel, direction="in", type=PROBLEM)}


def _basic_in(api, rel):
    return api.messages(relationship=rel, direction="in", type=BASIC)


def test_required_terms_refused_then_accepted(tmp_path):
    with Cluster(tmp_path) as cluster:
        shop = cluster.add("business", label="Acme Shop",
                           config={"role": "business", "terms": BUSINESS_TERMS,
                                   "notifications": {"topics": TOPICS}}).start()
        bea = cluster.add("customer", label="Bea").start()
        rel_s, rel_b = connect_pair(shop, bea)
        # The customer opts into a topic while it requires nothing yet ...
        wait_for(lambda: bea.api.request("GET", f"/relationships/{rel_b}/subscriptions")["catalogue"],
                 timeout=15, what="the catalogue")
        bea.api.request("POST", f"/relationships/{rel_b}/subscriptions", {"subscribe": ["offers"]})
        first = shop.api.request("POST", "/notifications", {"relationship": rel_s, "topic": "offers",
                                                            "title": "hello", "body": "welcome"})
        wait_for(lambda: shop.api.request("GET", f"/notifications/{first['id']}")["status"] == "delivered",
                 timeout=15, what="the first notification delivered")
        # ... then requires an agreement on every relationship (config, restart).
        bea.stop()
        bea.extra_config = {"terms": {"require": True}}
        bea.write_config()
        bea.start()
        roster = bea.api.request("GET", "/terms/roster")
        assert roster["require"] is True and len(roster["terms"]) == 8
        assert shop.api.request("GET", "/terms/roster")["policy"]["reject"] == [T + "data-copy"]

        # --- refused: the business's policy rejects a term ----------------------------------
        proffer = bea.api.request("POST", f"/relationships/{rel_b}/agreements",
                                  {"terms": [T + "no-tracking", T + "data-copy"]})
        assert proffer["state"] == "proffered"
        rejected = _agreement(bea.api, proffer["id"], rel_b, "rejected")
        assert "data-copy" in rejected["reason"] and rejected["record"] is None
        assert _agreement(shop.api, proffer["id"], rel_s, "rejected")["role"] == "business"

        sent = shop.api.send(rel_s, {"content": "buy now"})
        note = shop.api.request("POST", "/notifications", {"relationship": rel_s, "topic": "offers",
                                                           "title": "sale", "body": "50% off"})
        wait_for(lambda: sent["thid"] in _problems(shop.api, rel_s), timeout=15, what="a problem report")
        assert _problems(shop.api, rel_s)[sent["thid"]]["body"]["code"] == "e.p.req.agreement-required"
        failed = wait_for(lambda: (n := shop.api.request("GET", f"/notifications/{note['id']}"))["status"] == "failed"
                          and n, timeout=15, what="the notification failed")
        assert failed["status"] == "failed"
        # exempt: keeping the relationship alive
        assert shop.api.ping(rel_s, timeout=10)["rtt_ms"] > 0
        assert _basic_in(bea.api, rel_b) == []
        received = bea.api.messages(relationship=rel_b, direction="in", protocol="true")
        assert note["id"] not in {m["id"] for m in received} and sent["id"] not in {m["id"] for m in received}

        # --- accepted: the same record on both sides, later messages carry its hash ---------
        ok = bea.api.request("POST", f"/relationships/{rel_b}/agreements",
                             {"terms": [T + "no-third-party", T + "no-tracking"]})
        mine = _agreement(bea.api, ok["id"], rel_b, "accepted")
        theirs = _agreement(shop.api, ok["id"], rel_s, "accepted")
        assert mine["record"] == theirs["record"] and mine["hash"] == theirs["hash"] and mine["in_force"]
        listing = bea.api.request("GET", f"/relationships/{rel_b}/agreements")
        assert listing["in_force"] == ok["id"] and listing["required"] is True
        assert [a["state"] for a in listing["agreements"]] == ["rejected", "accepted"]

        later = shop.api.send(rel_s, {"content": "thanks for agreeing"})
        got = wait_for(lambda: _basic_in(bea.api, rel_b), timeout=15, what="the bound message")
        assert [m["id"] for m in got] == [later["id"]]
        record = bea.api.request("GET", f"/relationships/{rel_b}/record")
        assert [a["record"] for a in record["agreements"]][-1] == mine["record"]

        # --- the CLI ---------------------------------------------------------------------------
        out = json.loads(bea.run_cli("terms", "list", rel_b, "--json").stdout)
        assert out["in_force"] == ok["id"]
        text = bea.run_cli("terms", "show", ok["id"]).stdout
        assert "accepted (in force)" in text and mine["record"] in text
        assert "no-tracking" in bea.run_cli("terms", "roster").stdout
        bad = bea.run_cli("terms", "proffer", rel_b, "no-such-term", check=False)
        assert bad.returncode == 1 and "unknown-term" in bad.stderr
        with pytest.raises(ApiError) as e:
            bea.api.request("POST", f"/agreements/{ok['id']}/accept")
        assert e.value.status == 409 and e.value.code == "state-error"

        # --- connection messages are never refused: the business can still revoke -----------
        bea.api.request("POST", f"/agreements/{ok['id']}/withdraw", {"reason": "done"})
        _agreement(shop.api, ok["id"], rel_s, "withdrawn")
        shop.api.revoke(rel_s, reason="closing")
        wait_for(lambda: bea.api.relationship(rel_b)["state"] == "revoked", timeout=15, what="the revoke")
        for d in (shop, bea):
            assert d.stop() == 0, d.log_tail()
            assert not log_problems(d.log_text()), d.log_tail(80)
        # The customer's archive holds the business's message as it came: bound, critically,
        # to the agreement's hash (read from the store: the API does not show extensions).
        with SQLiteStore(bea.home / DB_NAME) as store:
            msg = message.decode(store.get_archived(later["id"], direction="in").plaintext,
                                 understood=terms.UNDERSTOOD)
        assert msg.extensions[terms.X_AGREEMENT].hex() == mine["hash"] and terms.X_AGREEMENT in msg.crit
