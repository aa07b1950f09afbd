"""A first session with the real `p2p` command, as the README tells a new user to run it.

Two agents on one machine: a shop and its customer, each with its own home and
ports. Every step runs the `p2p` executable (or `python -m p2p.cli` when it is not
installed) in a subprocess with P2P_HOME set, exactly as typed in a shell, and checks
what it prints. The README section "A first session" is this session.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from daemon_harness import BASIC, Cluster, wait_for

pytestmark = pytest.mark.slow

# The README's shop, once it is a business.
BUSINESS_CONFIG = {
    "role": "business",
    "notifications": {"topics": [{"id": "orders", "title": "Your orders",
                                  "purpose": "shipping and delivery of what you bought"}]},
    "terms": {"accept": ["p2p:terms:service-only", "p2p:terms:no-third-party", "p2p:terms:delete-on-revoke"]},
}


def p2p(daemon, *args, ok=True):
    result = daemon.run_cli(*args, check=False)
    if ok:
        assert result.returncode == 0, f"p2p {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
    return result


def _basic(messages):
    return [m for m in messages if m["type"] == BASIC]


def test_first_session(tmp_path):
    with Cluster(tmp_path) as cluster:
        shop = cluster.add("shop", label="Acme Shop")
        bea = cluster.add("bea", label="Bea")

        # p2p init: a new agent, its DID printed.
        for agent in (shop, bea):
            out = agent.init()
            assert "did:peer:2" in out, out
            assert (agent.home / "agent.db").exists()
            assert stat.S_IMODE(os.stat(agent.home).st_mode) == 0o700
            # A second init refuses to replace the identity.
            again = p2p(agent, "init", ok=False)
            assert again.returncode != 0 and "already" in (again.stdout + again.stderr).lower()

        # Commands before the daemon runs say so, and fail with their own exit code.
        down = p2p(shop, "status", ok=False)
        assert down.returncode == 3 and "not running" in down.stderr

        # p2p daemon (in the background; the harness waits for its API).
        shop.start()
        bea.start()
        status = p2p(shop, "status").stdout
        assert "did:peer:2" in status and f"127.0.0.1:{shop.p2p_port}" in status
        assert "role         customer" in status  # the default side

        # The shop invites; the first line is the URL, alone.
        invite = p2p(shop, "invite", "--label", "Acme Shop", "--no-qr").stdout
        url = invite.splitlines()[0]
        assert url.startswith("p2p:") or url.startswith("https:"), invite
        assert "one-time invitation" in invite

        # Bea accepts and is connected.
        accepted = p2p(bea, "accept", url).stdout
        assert accepted.startswith("connected:"), accepted
        assert "Acme Shop" in accepted

        conns = p2p(bea, "connections").stdout
        assert "Acme Shop" in conns and "active" in conns
        wait_for(lambda: "active" in p2p(shop, "connections").stdout, timeout=10, what="shop's connection")
        shop_conns = json.loads(p2p(shop, "connections", "--json").stdout)
        assert len(shop_conns) == 1 and shop_conns[0]["their_label"] == "Bea"

        # Ping, by the name the peer gave itself.
        pong = p2p(bea, "ping", "Acme Shop").stdout
        assert pong.startswith("pong from") and " ms" in pong

        # Bea writes; the shop reads its inbox and answers in the same thread.
        sent = p2p(bea, "send", "Acme Shop", "Hello! Has order 1234 shipped?").stdout
        assert sent.startswith("queued ")
        msg_id = sent.split()[1]
        inbox = wait_for(lambda: (lambda o: o if "order 1234" in o else None)(p2p(shop, "inbox").stdout),
                         timeout=15, what="the shop's inbox")
        assert "Bea" in inbox
        received = _basic(json.loads(p2p(shop, "inbox", "--json").stdout))
        assert [m["id"] for m in received] == [msg_id]
        thid = received[0]["thid"]
        reply = p2p(shop, "send", "Bea", "Yes, it left this morning.", "--thread", thid).stdout
        assert reply.startswith("queued ") and thid in reply

        thread = wait_for(lambda: (lambda o: o if "left this morning" in o else None)(p2p(bea, "thread", thid).stdout),
                          timeout=15, what="the reply in Bea's thread")
        lines = thread.splitlines()
        assert len(lines) == 2 and "order 1234" in lines[0] and "left this morning" in lines[1]
        assert lines[0].split()[2] == "me"  # Bea's own message

        # Export: the whole record, a private file.
        out = p2p(bea, "export", "-o", "bea-export.json").stdout
        assert out.startswith("exported 1 connection(s) and ") and "bea-export.json" in out
        path = bea.home / "bea-export.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        doc = json.loads(path.read_text())
        assert doc["format"] == "p2p-export"
        (record,) = doc["relationships"]
        assert record["relationship"]["their_label"] == "Acme Shop"
        conversation = _basic(record["messages"])
        assert [m["body"]["content"] for m in conversation] == [
            "Hello! Has order 1234 shipped?", "Yes, it left this morning."]
        assert [m["direction"] for m in conversation] == ["out", "in"]

        for agent in (shop, bea):
            assert agent.stop() == 0
        # A clean stop removes api.json, so the next command says "not running".
        assert not (shop.home / "api.json").exists()
        assert p2p(shop, "status", ok=False).returncode == 3

        # The README goes on: the shop becomes a business (role, catalogue, terms policy).
        shop.extra_config = BUSINESS_CONFIG
        shop.write_config()
        shop.start()
        bea.start()
        assert "role         business" in p2p(shop, "status").stdout
        subs = wait_for(lambda: (lambda o: o if "orders" in o else None)(
            p2p(bea, "notifications", "subscriptions", "Acme Shop").stdout), timeout=20, what="the catalogue")
        assert "Your orders" in subs and "shipping and delivery" in subs  # offered to an existing customer

        proffer = p2p(bea, "terms", "proffer", "Acme Shop", "service-only", "no-third-party").stdout
        assert proffer.startswith("proffered to Acme Shop")
        agreement = wait_for(lambda: (lambda o: o if "accepted" in o else None)(
            p2p(bea, "terms", "list", "Acme Shop").stdout), timeout=15, what="the agreement")
        assert agreement.startswith("* ") and "no-third-party, service-only" in agreement

        subscribed = p2p(bea, "notifications", "subscribe", "Acme Shop", "orders").stdout
        assert subscribed.splitlines()[1].split()[:2] == ["orders", "yes"]
        wait_for(lambda: p2p(shop, "notifications", "send", "Bea", "orders", "Order 1234 shipped",
                             "It left the warehouse this morning.", ok=False).returncode == 0,
                 timeout=15, what="the shop's mirror of the subscription")
        listing = wait_for(lambda: (lambda o: o if "received" in o else None)(
            p2p(bea, "notifications", "list").stdout), timeout=15, what="the notification")
        assert "Order 1234 shipped: It left the warehouse this morning." in listing
        # a topic Bea did not choose is refused by the shop's own agent
        refused = p2p(shop, "notifications", "send", "Bea", "offers", "Sale", ok=False)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr

        opened = p2p(bea, "tickets", "open", "Acme Shop", "Scratched lid", "--text", "The lid arrived scratched.")
        ticket = opened.stdout.split()[0]
        assert "open" in opened.stdout and "Scratched lid" in opened.stdout
        wait_for(lambda: ticket in p2p(shop, "tickets", "list").stdout, timeout=15, what="the ticket at the shop")
        replied = p2p(shop, "tickets", "reply", ticket, "Sorry! A new lid is on its way.").stdout
        assert "waiting_on_customer" in replied
        shown = wait_for(lambda: (lambda o: o if "new lid" in o else None)(p2p(bea, "tickets", "show", ticket).stdout),
                         timeout=15, what="the reply at Bea")
        assert "me    open: Scratched lid / The lid arrived scratched." in shown

        issued = p2p(shop, "ownership", "issue", "Bea", "Kettle K2", "SN-20931", "--purchased", "2026-11-20",
                     "--warranty-end", "2028-11-20").stdout
        assert "issued" in issued and "Kettle K2 #SN-20931" in issued
        held = wait_for(lambda: (lambda o: o if "active" in o else None)(p2p(bea, "ownership", "list").stdout),
                        timeout=15, what="the record at Bea")
        assert "Kettle K2 #SN-20931  bought 2026-11-20, warranty to 2028-11-20" in held
        recall = p2p(shop, "ownership", "update", "recall", "Kettle K2", "Lid hinge may break",
                     "--range", "SN-20000", "SN-29999").stdout
        assert recall.startswith("update ") and "sent to 1 owner(s)" in recall
        wait_for(lambda: any(m["type"].endswith("/ownership/1.0/update")
                             for m in json.loads(p2p(bea, "inbox", "--json").stdout)), timeout=15, what="the recall")
        assert p2p(bea, "mute", "Acme Shop").stdout.startswith("muted Acme Shop")


def test_cli_names_the_peer_and_keeps_protocol_traffic_out_of_the_inbox(tmp_path):
    with Cluster(tmp_path) as cluster:
        shop = cluster.add("shop", label="Acme Shop").start()
        bea = cluster.add("bea", label="Bea").start()
        url = p2p(shop, "invite", "--no-qr").stdout.splitlines()[0]
        problems = []
        accepted = p2p(bea, "accept", url).stdout
        if not accepted.startswith("connected: Acme Shop"):
            problems.append(accepted)
        pong = p2p(bea, "ping", "Acme Shop").stdout
        if not pong.startswith("pong from Acme Shop"):
            problems.append(pong)
        p2p(bea, "send", "Acme Shop", "hello")
        inbox = wait_for(lambda: json.loads(p2p(shop, "inbox", "--json").stdout), timeout=15, what="inbox")
        if [m["type"] for m in inbox] != [BASIC]:
            problems.append([m["type"] for m in inbox])
        assert not problems, problems
