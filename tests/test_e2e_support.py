"""support/1.0 end to end: a business daemon (role = "business") and two customer
daemons, real processes over TCP, driven only through the admin API and the `p2p`
command (tests/daemon_harness.py).

What it proves: a ticket opened by each side goes through its whole life (the
customer's: assign, a reply with an inline attachment, waiting on the customer, the
customer's reply, resolve, rate, close; the business's: the customer's reply, resolve,
reopen, resolve, close), and after every step both sides hold the same history (the
same message ids in the same order) and the same state; the other customer sees none
of it; out-of-turn actions are 409 state-error, oversized inline attachments 413,
unknown tickets 404, raw support messages through POST /v1/messages 400; tickets and
their histories survive a restart; `p2p tickets` drives the same routes.
"""

from __future__ import annotations

import base64
import json

import pytest

from daemon_harness import ApiError, Cluster, connect_pair, log_problems, wait_for

pytestmark = pytest.mark.slow

SUPPORT = "https://p2p.example/support/1.0"
PHOTO = bytes(range(256)) * 16  # 4 KiB


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("support")) as cluster:
        biz = cluster.add("shop", label="Acme Shop", config={"role": "business"}).start()
        alice = cluster.add("alice", label="Alice").start()
        bob = cluster.add("bob", label="Bob").start()
        rels = {"alice": connect_pair(biz, alice), "bob": connect_pair(biz, bob)}
        yield biz, alice, bob, rels
        for daemon in (biz, alice, bob):
            if daemon.running:
                assert daemon.stop() == 0, daemon.log_tail()
            assert not log_problems(daemon.log_text()), daemon.log_tail(80)


def ticket(daemon, tid: str, rel: str) -> dict:
    return daemon.api.request("GET", f"/tickets/{tid}", query={"relationship": rel})


def ids(t: dict) -> list[str]:
    return [m["id"] for m in t["history"]]


def in_step(biz, customer, tid: str, rels: tuple[str, str], state: str) -> tuple[dict, dict]:
    """Wait until both sides hold the same history in `state`; return both views."""
    def both():
        try:
            tb, tc = ticket(biz, tid, rels[0]), ticket(customer, tid, rels[1])
        except ApiError as exc:
            if exc.code == "unknown-ticket":  # not delivered yet
                return None
            raise
        return (tb, tc) if ids(tb) == ids(tc) and tb["state"] == tc["state"] == state else None
    return wait_for(both, timeout=15, interval=0.05, what=f"both sides in {state} with one history")


def act(daemon, tid: str, action: str, body: dict | None = None, rel: str | None = None) -> dict:
    return daemon.api.request("POST", f"/tickets/{tid}/{action}", body or {}, query={"relationship": rel})


def test_a_ticket_the_customer_opens_goes_through_its_whole_life(shop):
    biz, alice, bob, rels = shop
    rb, rc = rels["alice"]
    t = alice.api.request("POST", "/tickets", {"relationship": rc, "subject": "Kettle does not heat",
                                               "text": "It clicks off after a second.", "category": "repairs",
                                               "priority": "high"})
    tid = t["id"]
    assert (t["state"], t["opened_by"], t["message_id"]) == ("open", "customer", tid)
    tb, tc = in_step(biz, alice, tid, rels["alice"], "open")
    assert (tb["opened_by"], tb["subject"], tb["priority"]) == ("customer", "Kettle does not heat", "high")
    steps = []  # (history ids, state) after every step, as both sides saw it

    def step(state):
        tb, tc = in_step(biz, alice, tid, rels["alice"], state)
        steps.append((ids(tb), state))
        return tb, tc

    act(biz, tid, "assign", {"assignee": "Sam (repairs)"})
    tb, tc = step("open")
    assert tb["assignee"] == tc["assignee"] == "Sam (repairs)"
    act(biz, tid, "reply", {"text": "Here is how to reset it.", "attachments": [
        {"filename": "reset.png", "media_type": "image/png", "base64": base64.b64encode(PHOTO).decode()}]})
    tb, tc = step("waiting_on_customer")
    got = tc["history"][-1]["attachments"][0]
    assert bytes.fromhex(got["data"]["bytes"]) == PHOTO and got["filename"] == "reset.png"
    act(biz, tid, "status", {"status": "waiting_on_customer", "note": "please try the reset"})
    step("waiting_on_customer")
    act(alice, tid, "reply", {"text": "Reset done, still broken."})
    step("waiting_on_business")
    act(biz, tid, "resolve", {"text": "A new one is on its way."})
    step("resolved")
    act(alice, tid, "rate", {"score": 5, "comment": "great"})
    tb, tc = step("resolved")
    assert tb["rating"] == tc["rating"] == {"score": 5, "comment": "great"}
    act(alice, tid, "close", {"reason": "solved"})
    tb, tc = step("closed")
    assert [m["type"].rsplit("/", 1)[-1] for m in tb["history"]] == [
        "open", "assign", "reply", "status", "reply", "resolve", "rate", "close"]
    assert [len(h) for h, _ in steps] == [2, 3, 4, 5, 6, 7, 8]  # one message per step, in step
    assert [m["direction"] for m in tb["history"]] == ["in", "out", "out", "out", "in", "out", "in", "in"]
    # Listing; the other customer has nothing of it.
    assert [x["id"] for x in biz.api.request("GET", "/tickets", query={"relationship": rb})["tickets"]] == [tid]
    assert bob.api.request("GET", "/tickets")["tickets"] == []
    closed = alice.api.request("GET", "/tickets", query={"state": "closed"})["tickets"]
    assert [x["id"] for x in closed] == [tid]
    record = biz.api.request("GET", f"/relationships/{rb}/record")
    assert [x["history"] for x in record["tickets"]] == [ids(tb)]


def test_a_ticket_the_business_opens_goes_through_its_whole_life(shop):
    biz, alice, bob, rels = shop
    rb, rc = rels["bob"]
    tid = biz.api.request("POST", "/tickets", {"relationship": rb, "subject": "Your parcel came back",
                                               "text": "Is your address right?"})["id"]
    tb, tc = in_step(biz, bob, tid, rels["bob"], "open")
    assert tc["opened_by"] == "business"
    act(bob, tid, "reply", {"text": "New address: 1 Main St"})
    in_step(biz, bob, tid, rels["bob"], "waiting_on_business")
    act(biz, tid, "resolve", {"text": "Sent again."})
    in_step(biz, bob, tid, rels["bob"], "resolved")
    act(bob, tid, "reopen", {"text": "Still nothing arrived."})
    in_step(biz, bob, tid, rels["bob"], "reopened")
    act(biz, tid, "resolve", {"text": "Tracking number 123."})
    in_step(biz, bob, tid, rels["bob"], "resolved")
    act(bob, tid, "close")
    tb, tc = in_step(biz, bob, tid, rels["bob"], "closed")
    assert [m["type"].rsplit("/", 1)[-1] for m in tc["history"]] == [
        "open", "reply", "resolve", "reopen", "resolve", "close"]
    assert alice.api.request("GET", "/tickets", query={"relationship": rels["alice"][1]})["tickets"][0]["id"] != tid


def test_refusals_through_the_api(shop):
    biz, alice, bob, rels = shop
    rb, rc = rels["alice"]
    tid = alice.api.request("POST", "/tickets", {"relationship": rc, "subject": "Another one"})["id"]
    in_step(biz, alice, tid, rels["alice"], "open")
    for daemon, action, body in ((alice, "resolve", {}), (alice, "assign", {"assignee": "me"}),
                                 (alice, "rate", {"score": 3}), (biz, "close", {}), (biz, "rate", {"score": 1})):
        with pytest.raises(ApiError) as err:
            act(daemon, tid, action, body)
        assert (err.value.status, err.value.code) == (409, "state-error"), action
    big = base64.b64encode(bytes(65_537)).decode()
    with pytest.raises(ApiError) as err:
        act(alice, tid, "reply", {"text": "photo", "attachments": [{"base64": big}]})
    assert (err.value.status, err.value.code) == (413, "attachment-too-large")
    with pytest.raises(ApiError) as err:
        act(alice, tid, "reply", {"text": "photo", "attachments": [{"base64": "%%%"}]})
    assert (err.value.status, err.value.code) == (400, "bad-argument")
    with pytest.raises(ApiError) as err:
        act(alice, tid, "reply", {"text": "x", "extra": 1})
    assert (err.value.status, err.value.code) == (400, "invalid-field")
    with pytest.raises(ApiError) as err:
        ticket(alice, "no-such-ticket", rc)
    assert (err.value.status, err.value.code) == (404, "unknown-ticket")
    with pytest.raises(ApiError) as err:  # the generic send cannot bypass the ticket
        alice.api.send(rc, {}, type=f"{SUPPORT}/close", thid=tid)
    assert err.value.status == 400
    with pytest.raises(ApiError) as err:
        alice.api.request("GET", "/tickets", query={"state": "nonsense"})
    assert err.value.status == 400
    tb, tc = in_step(biz, alice, tid, rels["alice"], "open")
    assert len(tb["history"]) == 1  # nothing of the above reached the ticket


def test_tickets_survive_a_restart_and_the_cli_drives_them(shop, tmp_path):
    biz, alice, bob, rels = shop
    rb, rc = rels["alice"]
    attachment = tmp_path / "log.txt"
    attachment.write_bytes(b"error 42\n")
    out = alice.run_cli("tickets", "open", rc, "Display flickers", "--text", "since the update",
                        "--attach", str(attachment), "--json")
    tid = json.loads(out.stdout)["id"]
    before = in_step(biz, alice, tid, rels["alice"], "open")
    biz.stop()
    alice.stop()
    biz.start()
    alice.start()
    after = (ticket(biz, tid, rb), ticket(alice, tid, rc))
    assert [ids(t) for t in after] == [ids(t) for t in before] and after[0]["state"] == "open"
    digest = "ab" * 32
    biz.run_cli("tickets", "reply", tid, "Please send a video.", "--link", "https://shop.example/upload",
                "--hash", digest, "--size", "1000")
    tb, tc = in_step(biz, alice, tid, rels["alice"], "waiting_on_customer")
    assert tc["history"][-1]["attachments"][0]["data"] == {"links": ["https://shop.example/upload"], "hash": digest}
    text = alice.run_cli("tickets", "show", tid).stdout
    assert "Display flickers" in text and "waiting_on_customer" in text and "log.txt: 9 bytes inline" in text
    biz.run_cli("tickets", "resolve", tid, "--text", "firmware 2.1 fixes it")
    in_step(biz, alice, tid, rels["alice"], "resolved")
    bad = alice.run_cli("tickets", "resolve", tid, check=False)
    assert bad.returncode == 1 and "state-error" in bad.stderr
    alice.run_cli("tickets", "rate", tid, "4")
    listed = json.loads(biz.run_cli("tickets", "list", "--state", "resolved", "--json").stdout)
    assert tid in [x["id"] for x in listed["tickets"]]
    wait_for(lambda: ticket(biz, tid, rb)["rating"], timeout=15, what="the rating")
