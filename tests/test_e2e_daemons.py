"""Two real daemons on 127.0.0.1: a business (A) and a customer (B).

Real processes, real TCP, real SQLite files; the tests speak only the admin API
(tests/daemon_harness.py). What they prove, end to end:

* invitation -> accept -> both sides hold one active relationship; trust ping works;
* 1,000 messages each way at once, over 10 conversation threads, sent in batches: each
  arrives exactly once (ids and counts), in send order within its thread, and every
  sender-side copy ends "delivered" (receipted);
* SIGTERM both, queue on A while B is down, restart B: relationships survive, the
  queued messages arrive, none twice;
* revoke from B: A's later sends fail, and after restarting both the relationship is
  still revoked on both sides.

The tests share one pair of daemons (module fixture) and run in file order; each one
still checks only what it did itself, so any one of them can run alone.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

from daemon_harness import BASIC, ApiError, Cluster, connect_pair, log_problems, wait_for

pytestmark = pytest.mark.slow

THREADS = 10
PER_DIRECTION = 1000
BATCH = 50


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("e2e")) as cluster:
        a = cluster.add("business", label="Acme Shop").start()
        b = cluster.add("customer", label="Bea").start()
        rel_a, rel_b = connect_pair(a, b)
        yield a, b, rel_a, rel_b
        for daemon in (a, b):
            if daemon.running:
                assert daemon.stop() == 0, daemon.log_tail()
            assert not log_problems(daemon.log_text()), daemon.log_tail(80)


def _inbound(daemon, rel, **query):
    """Basic messages received on `rel` (trust pings and the like are not counted)."""
    return daemon.api.messages(relationship=rel, direction="in", type=BASIC, **query)


def test_invitation_accept_and_ping(pair):
    a, b, rel_a, rel_b = pair
    ra, rb = a.api.relationship(rel_a), b.api.relationship(rel_b)
    assert ra["state"] == rb["state"] == "active"
    assert ra["role"] == "inviter" and rb["role"] == "invitee"
    # Each side's peer DID is the other side's pairwise DID: one relationship, two views.
    assert ra["their_did"] == rb["our_did"] and rb["their_did"] == ra["our_did"]
    assert ra["our_did"] != a.api.status()["did"]  # pairwise, not the public agent DID
    pong = b.api.ping(rel_b, timeout=10)
    assert 0 < pong["rtt_ms"] < 5000
    pong = a.api.ping(rel_a, timeout=10)
    assert 0 < pong["rtt_ms"] < 5000


def _send_conversations(sender, rel, tag, results, errors):
    """PER_DIRECTION messages over THREADS threads: one opener per thread, the rest in
    batches interleaving the threads. Records (thid, n, id) in send order."""
    try:
        api = sender.api.clone()
        sent = []
        thids = []
        for t in range(THREADS):
            opener = api.send(rel, {"content": f"{tag} thread {t} #0", "n": 0, "t": t})
            thids.append(opener["thid"])
            sent.append((opener["thid"], 0, opener["id"]))
        rest = [(t, n) for n in range(1, PER_DIRECTION // THREADS) for t in range(THREADS)]
        for start in range(0, len(rest), BATCH):
            chunk = rest[start:start + BATCH]
            items = [{"body": {"content": f"{tag} thread {t} #{n}", "n": n, "t": t}, "thid": thids[t]}
                     for t, n in chunk]
            answers = api.send_many(rel, items)
            assert len(answers) == len(items)
            for (t, n), answer in zip(chunk, answers):
                assert answer["thid"] == thids[t] and answer["state"] == "queued"
                sent.append((thids[t], n, answer["id"]))
        api.close()
        results[tag] = sent
    except BaseException as exc:  # surfaced by the main thread
        errors.append(exc)


def _check_received(receiver, rel, sent, tag):
    got = wait_for(lambda: (lambda m: m if len(m) >= len(sent) else None)(_inbound(receiver, rel)),
                   timeout=90, interval=0.25, what=f"{len(sent)} messages at {receiver.name}")
    got = [m for m in got if m["body"].get("content", "").startswith(tag)]
    ids = [m["id"] for m in got]
    # Exactly once: same ids, same count, nothing twice.
    assert len(ids) == len(set(ids)) == len(sent)
    assert set(ids) == {mid for _, _, mid in sent}
    # Per-thread order: within each thread, the receiver's cursor order is the send
    # order, and the sender's seq numbers rise with it.
    cursors = [m["cursor"] for m in got]
    assert cursors == sorted(cursors)
    by_thread = defaultdict(list)
    for m in got:
        by_thread[m["thid"]].append(m)
    assert len(by_thread) == THREADS
    expected = defaultdict(list)
    for thid, n, mid in sent:
        expected[thid].append(mid)
    for thid, messages in by_thread.items():
        assert [m["id"] for m in messages] == expected[thid]
        assert [m["body"]["n"] for m in messages] == list(range(PER_DIRECTION // THREADS))
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # The thread view agrees with the listing for one thread.
    one = next(iter(by_thread))
    thread = [m for m in receiver.api.thread(one) if m["direction"] == "in"]
    assert [m["id"] for m in thread] == expected[one]


def test_1000_messages_each_way_exactly_once_in_thread_order(pair):
    a, b, rel_a, rel_b = pair
    results, errors = {}, []
    workers = [threading.Thread(target=_send_conversations, args=(a, rel_a, "from-a", results, errors)),
               threading.Thread(target=_send_conversations, args=(b, rel_b, "from-b", results, errors))]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not errors, errors
    _check_received(b, rel_b, results["from-a"], "from-a")
    _check_received(a, rel_a, results["from-b"], "from-b")
    # Receipts came back: every sender-side copy ends delivered.
    for sender, rel, tag in ((a, rel_a, "from-a"), (b, rel_b, "from-b")):
        mine = {mid for _, _, mid in results[tag]}

        def all_delivered(sender=sender, rel=rel, mine=mine):
            out = [m for m in sender.api.messages(relationship=rel, direction="out") if m["id"] in mine]
            return len(out) == len(mine) and all(m["state"] == "delivered" for m in out)

        wait_for(all_delivered, timeout=30, interval=0.25, what=f"receipts at {sender.name}")
    elapsed = time.monotonic() - start
    print(f"2 x {PER_DIRECTION} messages delivered and receipted in {elapsed:.1f} s")
    assert a.api.relationship(rel_a)["outbox_pending"] == 0
    assert b.api.relationship(rel_b)["outbox_pending"] == 0


def test_restart_keeps_relationships_and_delivers_what_was_queued(pair):
    a, b, rel_a, rel_b = pair
    before_a, before_b = a.api.relationship(rel_a), b.api.relationship(rel_b)
    assert a.stop() == 0
    assert b.stop() == 0
    a.start()
    # B is down: A accepts and keeps the messages.
    queued = a.api.send_many(rel_a, [{"body": {"content": f"while you were away {i}", "i": i}}
                                     for i in range(40)])
    queued_ids = [m["id"] for m in queued]
    time.sleep(1.0)  # at least one failed dial
    pending = [m for m in a.api.messages(relationship=rel_a, direction="out") if m["id"] in set(queued_ids)]
    assert {m["state"] for m in pending} <= {"queued", "sent"}
    assert a.api.relationship(rel_a)["outbox_pending"] == 40
    b.start()
    # Relationships survive, unchanged, on both sides.
    for daemon, rel, before in ((a, rel_a, before_a), (b, rel_b, before_b)):
        after = daemon.api.relationship(rel)
        for key in ("id", "our_did", "their_did", "state", "role", "label", "their_label"):
            assert after[key] == before[key], key
    # The queued messages arrive (A's dial backoff is at most a few seconds by now).
    wanted = set(queued_ids)

    def arrived():
        got = [m for m in _inbound(b, rel_b) if m["id"] in wanted]
        return got if len(got) == len(wanted) else None

    got = wait_for(arrived, timeout=60, interval=0.25, what="queued messages after B's restart")
    assert [m["id"] for m in got] == queued_ids  # in order, once each
    assert [m["body"]["i"] for m in got] == list(range(40))
    wait_for(lambda: a.api.relationship(rel_a)["outbox_pending"] == 0, timeout=30, what="A's receipts")
    # And the link works both ways after the restart.
    assert b.api.ping(rel_b, timeout=10)["rtt_ms"] > 0


def test_revoke_refuses_later_sends_and_survives_restart(pair):
    a, b, rel_a, rel_b = pair
    last = b.api.send(rel_b, {"content": "goodbye"})
    wait_for(lambda: any(m["id"] == last["id"] for m in _inbound(a, rel_a)), timeout=30, what="last message")
    revoked = b.api.revoke(rel_b, reason="customer left")
    assert revoked["state"] == "revoked"
    # B refuses to send on it at once.
    with pytest.raises(ApiError) as info:
        b.api.send(rel_b, {"content": "after revoke"})
    assert info.value.status == 409 and info.value.code == "relationship-revoked"
    # A learns of the revocation (B tells it) and then refuses too; whatever A had
    # queued never reaches B.
    wait_for(lambda: a.api.relationship(rel_a)["state"] == "revoked", timeout=30, interval=0.2,
             what="A to learn of the revocation")
    with pytest.raises(ApiError) as info:
        a.api.send(rel_a, {"content": "please come back"})
    assert info.value.status == 409 and info.value.code == "relationship-revoked"
    with pytest.raises(ApiError) as info:
        a.api.ping(rel_a, timeout=2)
    assert info.value.code == "relationship-revoked"
    count_b = len(_inbound(b, rel_b))
    # Both restarted: still revoked, still refusing.
    assert a.stop() == 0 and b.stop() == 0
    a.start()
    b.start()
    assert a.api.relationship(rel_a)["state"] == "revoked"
    assert b.api.relationship(rel_b)["state"] == "revoked"
    assert [r["id"] for r in b.api.relationships(state="active")] == []
    for daemon, rel in ((a, rel_a), (b, rel_b)):
        with pytest.raises(ApiError) as info:
            daemon.api.send(rel, {"content": "zombie"})
        assert info.value.status == 409
    time.sleep(1.0)
    assert len(_inbound(b, rel_b)) == count_b


def test_more_relationships_than_the_connection_cap(tmp_path):
    """A business has many more customers than open connections: with a listener cap of
    20, customers 21..25 must still be able to connect (and old ones to reach it)."""
    with Cluster(tmp_path) as cluster:
        shop = cluster.add("shop", config={"limits": {"max_connections": 20, "max_handshaking": 10}}).start()
        customer = cluster.add("customer").start()
        rels = []
        for _ in range(25):
            rels.append(customer.api.accept(shop.api.invite()["url"])["id"])
        first = customer.api.send(rels[0], {"content": "still there?"})
        wait_for(lambda: any(m["id"] == first["id"] for m in shop.api.messages(direction="in", type=BASIC)),
                 timeout=20, what="a message on the oldest relationship")
