"""The SQLite store: schema versions, file modes, exactly-once inbound, ordered
and retried outbound, revocation, and durability across reopen and SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from p2p.store import (
    DuplicateId,
    DuplicateMessageId,
    Incoming,
    InvitationKind,
    InvitationState,
    OutboxState,
    Outgoing,
    RelationshipRevoked,
    RelationshipState,
    SchemaTooNew,
    SQLiteStore,
    StoreError,
    UnknownRelationship,
)
from p2p.store import sqlite as store_sqlite

ROOT = Path(__file__).resolve().parent.parent


def add_rel(store, rid="rel-a", secret=b"S" * 32, their="did:peer:2.them", now=100):
    return store.add_relationship(
        id=rid, our_did=f"did:peer:2.us-{rid}", their_did=their, their_ed25519=b"E" * 32,
        their_x25519=b"X" * 32, our_secret=secret, now=now, endpoint="tcp://h:1", label=rid,
    )


def out(mid, rid="rel-a", thread="th", payload=b"p", **kw):
    return Outgoing(message_id=mid, relationship_id=rid, thread_id=thread, payload=payload, **kw)


def inc(mid, sender="did:peer:2.them", rid="rel-a", payload=b"body"):
    return Incoming(relationship_id=rid, sender_did=sender, message_id=mid, thread_id="th",
                    type="https://didcomm.org/basicmessage/2.0/message", payload=payload)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "home" / "agent.db"


@pytest.fixture
def store(path):
    with SQLiteStore(path) as s:
        yield s


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


# --- opening, migrations, modes --------------------------------------------------


def test_new_file_is_migrated_to_latest_in_wal_mode(store):
    assert store.schema_version == store_sqlite.SCHEMA_VERSION >= 1
    assert {"settings", "identity", "relationships", "invitations", "outbox", "inbox"} <= set(
        store.db.table_names())
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_synchronous_full_and_bad_value(path):
    with SQLiteStore(path, synchronous="full") as s:
        assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(StoreError):
        SQLiteStore(path, synchronous="off")


def test_reopen_keeps_data_and_does_not_remigrate(path):
    with SQLiteStore(path) as s:
        add_rel(s)
        s.set_setting("endpoint", "tcp://0.0.0.0:7000")
        s.set_identity("did:key:z6Mk", b"sealed-key-set", now=1)
        s.enqueue_many([out("m1")], now=5)
    with SQLiteStore(path) as s:
        assert s.schema_version == store_sqlite.SCHEMA_VERSION
        assert s.get_relationship("rel-a").our_secret == b"S" * 32
        assert s.get_setting("endpoint") == "tcp://0.0.0.0:7000"
        assert s.get_identity().secret == b"sealed-key-set"
        assert [e.message_id for e in s.due(5, 10)] == ["m1"]


def test_newer_schema_is_refused_and_left_untouched(path):
    SQLiteStore(path).close()
    with sqlite3.connect(path) as c:
        c.execute(f"PRAGMA user_version = {store_sqlite.SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew, match="schema version"):
        SQLiteStore(path)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == store_sqlite.SCHEMA_VERSION + 1


def test_failed_migration_rolls_back_whole_step(path, monkeypatch):
    SQLiteStore(path).close()
    good = store_sqlite.MIGRATIONS
    bad = (len(good) + 1, "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;")
    monkeypatch.setattr(store_sqlite, "MIGRATIONS", good + (bad,))
    monkeypatch.setattr(store_sqlite, "SCHEMA_VERSION", bad[0])
    with pytest.raises(StoreError, match=f"migration {bad[0]} failed"):
        SQLiteStore(path)
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == len(good)
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
    # A fixed migration then applies on the next open.
    monkeypatch.setattr(store_sqlite, "MIGRATIONS", good + ((bad[0], "CREATE TABLE later (x INTEGER);"),))
    with SQLiteStore(path) as s:
        assert s.schema_version == bad[0] and "later" in s.db.table_names()


def test_files_are_private_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "new" / "dir" / "agent.db"
        with SQLiteStore(path) as s:
            add_rel(s)  # a write, so -wal and -shm exist
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert p.exists() and mode(p) == 0o600, p
            assert mode(path.parent) == 0o700
    finally:
        os.umask(old)


def test_loose_existing_file_is_tightened(path):
    SQLiteStore(path).close()
    os.chmod(path, 0o644)
    with SQLiteStore(path):
        assert mode(path) == 0o600


def test_sqlite_store_implements_the_protocol():
    import inspect

    from p2p.store import Store

    names = [n for n, v in vars(Store).items() if callable(v) and not n.startswith("_")]
    assert len(names) > 30
    for n in names:
        want = inspect.signature(getattr(Store, n))
        got = inspect.signature(getattr(SQLiteStore, n))
        assert list(got.parameters) == list(want.parameters), n
        assert [p.kind for p in got.parameters.values()] == [p.kind for p in want.parameters.values()], n


# --- settings, identity ---------------------------------------------------------------


def test_settings_and_identity(store):
    assert store.get_setting("x") is None
    for v in ("text", 42, b"\x00bytes"):
        store.set_setting("x", v)
        assert store.get_setting("x") == v and type(store.get_setting("x")) is type(v)
    store.delete_setting("x")
    assert store.get_setting("x") is None
    with pytest.raises(StoreError):
        store.set_setting("x", True)
    assert store.get_identity() is None
    first = store.set_identity("did:key:a", b"k1", now=10)
    second = store.set_identity("did:key:a", b"k2", now=20)
    assert (second.secret, second.created_at, second.updated_at) == (b"k2", first.created_at, 20)


# --- relationships ------------------------------------------------------------------------


def test_relationship_lookup_update_and_duplicates(store):
    r = add_rel(store)
    assert r.state is RelationshipState.ACTIVE and r.endpoint == "tcp://h:1"
    assert store.relationship_by_our_did(r.our_did) == r
    assert store.relationships_with("did:peer:2.them") == [r]
    with pytest.raises(DuplicateId):
        add_rel(store)
    u = store.update_relationship("rel-a", now=200, endpoint="tcp://h:2")
    assert (u.endpoint, u.label, u.updated_at) == ("tcp://h:2", "rel-a", 200)
    assert store.update_relationship("rel-a", now=201, label="Alice").label == "Alice"
    with pytest.raises(UnknownRelationship):
        store.update_relationship("nope", now=1, label="x")


def test_revoke_deletes_key_material_and_stays_revoked_after_reopen(path):
    secret = os.urandom(32)
    with SQLiteStore(path) as s:
        add_rel(s, "before", secret=b"B" * 32)
        add_rel(s, secret=secret)
        add_rel(s, "after", secret=b"A" * 32)
        s.enqueue_many([out("m1"), out("m2")], now=1)
        s.record_received_many([inc("in1")], now=1)
        assert secret in path.read_bytes() + Path(f"{path}-wal").read_bytes()
        assert s.revoke_relationship("rel-a", now=300) == ["m1", "m2"]
        # Not in the database file, not in the WAL, not in free space.
        on_disk = path.read_bytes() + Path(f"{path}-wal").read_bytes()
        assert secret not in on_disk
        assert s.get_relationship("before").our_secret == b"B" * 32  # neighbours untouched
        assert s.get_relationship("after").our_secret == b"A" * 32
        assert s.revoke_relationship("rel-a", now=301) == []
    with SQLiteStore(path) as s:
        r = s.get_relationship("rel-a")
        assert r.state is RelationshipState.REVOKED and r.our_secret is None
        assert r.their_did == "did:peer:2.them"  # still recognisable, to refuse its traffic
        assert [x.id for x in s.list_relationships(RelationshipState.ACTIVE)] == ["before", "after"]
        with pytest.raises(RelationshipRevoked):
            s.enqueue_many([out("m3")], now=2)
        with pytest.raises(RelationshipRevoked):
            s.record_received_many([inc("in2")], now=2)
        m1 = s.get_outbox("m1")
        assert (m1.state, m1.payload, m1.last_error) == (OutboxState.FAILED, None, "relationship revoked")
        assert s.due(10**9, 10) == [] and s.pending_count("rel-a") == 0
        # The schema itself refuses a revoked row with keys.
        with pytest.raises(sqlite3.IntegrityError):
            s.db.execute("UPDATE relationships SET our_secret = x'00' WHERE id = 'rel-a'")
    with pytest.raises(UnknownRelationship):
        with SQLiteStore(path) as s:
            s.revoke_relationship("nope", now=1)


# --- invitations ----------------------------------------------------------------------------


def test_invitations(store):
    one = store.add_invitation(id="i1", kind=InvitationKind.ONE_TIME, blob=b"signed", now=10, expires_at=100)
    assert (one.state, one.use_count) == (InvitationState.OPEN, 0)
    with pytest.raises(DuplicateId):
        store.add_invitation(id="i1", kind=InvitationKind.ONE_TIME, blob=b"x", now=10)
    used = store.use_invitation("i1", now=20)
    assert (used.state, used.use_count) == (InvitationState.USED, 1)
    assert store.use_invitation("i1", now=21) is None
    store.add_invitation(id="m", kind="multi-use", blob=b"signed", now=10, expires_at=100)
    assert [store.use_invitation("m", now=t).use_count for t in (20, 30, 99)] == [1, 2, 3]
    assert store.use_invitation("m", now=100) is None  # expired at 100
    store.add_invitation(id="r", kind=InvitationKind.MULTI_USE, blob=b"s", now=10)
    assert store.revoke_invitation("r") and not store.revoke_invitation("r")
    assert store.use_invitation("r", now=11) is None and store.use_invitation("ghost", now=11) is None
    assert [i.id for i in store.list_invitations(InvitationState.OPEN)] == ["m"]


# --- outbox -------------------------------------------------------------------------------------


def test_enqueue_assigns_increasing_seq_per_relationship(path):
    with SQLiteStore(path) as s:
        add_rel(s, "a")
        add_rel(s, "b")
        seqs = s.enqueue_many([out("a1", "a"), out("b1", "b"), out("a2", "a"), out("a3", "a")], now=1)
        assert seqs == [1, 1, 2, 3]
        assert s.enqueue_many([out("b2", "b"), out("a4", "a")], now=2) == [2, 4]
        # Sequence numbers do not restart when finished messages are pruned.
        s.mark_acked_many("a", ["a1", "a2", "a3", "a4"])
        assert s.prune_outbox(before=10) == 4
    with SQLiteStore(path) as s:
        assert s.enqueue_many([out("a5", "a")], now=3) == [5]
        assert [(e.message_id, e.seq) for e in s.due(3, 10)] == [("b1", 1), ("b2", 2), ("a5", 5)]


def test_enqueue_is_all_or_nothing(store):
    add_rel(store)
    store.enqueue_many([out("m1")], now=1)
    with pytest.raises(DuplicateMessageId):
        store.enqueue_many([out("m2"), out("m1")], now=2)
    with pytest.raises(UnknownRelationship):
        store.enqueue_many([out("m3"), out("m4", rid="ghost")], now=2)
    assert [e.message_id for e in store.due(10, 10)] == ["m1"]
    assert store.enqueue_many([out("m2")], now=3) == [2]  # counter untouched by the failures
    assert store.enqueue_many([], now=3) == []


def test_send_ack_retry_cycle(store):
    add_rel(store, "a")
    add_rel(store, "b")
    store.enqueue_many([out("m1", "a"), out("m2", "a"), out("later", "a", next_attempt_at=50),
                        out("n1", "b")], now=10)
    assert [e.message_id for e in store.due(10, 10)] == ["m1", "m2", "n1"]
    assert [e.message_id for e in store.due(10, 2)] == ["m1", "m2"]
    assert store.pending_count("a") == 3

    assert store.mark_sent_many(["m1", "m2"], next_attempt_at=40) == 2
    assert [e.message_id for e in store.due(20, 10)] == ["n1"]
    m1 = store.get_outbox("m1")
    assert (m1.state, m1.attempts, m1.next_attempt_at) == (OutboxState.SENT, 1, 40)

    # Only the relationship a message went to can acknowledge it.
    assert store.mark_acked_many("b", ["m1"]) == 0
    assert store.mark_acked_many("a", ["m1", "unknown-id"]) == 1
    assert store.mark_acked_many("a", ["m1"]) == 0
    m1 = store.get_outbox("m1")
    assert (m1.state, m1.payload) == (OutboxState.ACKED, None)

    # No ack for m2 by 40: due again, and later and n1 with it.
    assert [e.message_id for e in store.due(50, 10)] == ["m2", "later", "n1"]
    assert store.schedule_retry_many(["n1"], next_attempt_at=100, error="connection refused") == 1
    n1 = store.get_outbox("n1")
    assert (n1.state, n1.attempts, n1.next_attempt_at, n1.last_error) == (
        OutboxState.QUEUED, 1, 100, "connection refused")
    assert store.mark_sent_many(["m1"], next_attempt_at=99) == 0  # acked stays acked
    assert store.mark_failed_many(["later"], error="rejected") == 1
    assert store.pending_count("a") == 1 and store.pending_count("b") == 1


def test_expiry(store):
    add_rel(store)
    store.enqueue_many([out("short", expires_at=20), out("long", expires_at=1000), out("forever")], now=10)
    store.mark_sent_many(["long"], next_attempt_at=15)
    assert [e.message_id for e in store.due(20, 10)] == ["long", "forever"]  # expired ones never due
    assert store.expire(now=20) == ["short"]
    assert store.expire(now=20) == []
    assert store.get_outbox("short").state is OutboxState.EXPIRED
    assert store.expire(now=1000) == ["long"]
    assert store.pending_count("rel-a") == 1


# --- inbox ----------------------------------------------------------------------------------------


def test_duplicates_are_dropped_exactly_once(path):
    with SQLiteStore(path) as s:
        add_rel(s)
        add_rel(s, "rel-b", their="did:peer:2.other")
        assert s.record_received_many([inc("x"), inc("y"), inc("x")], now=1) == [True, True, False]
        assert s.record_received_many([inc("y"), inc("z")], now=2) == [False, True]
        # Same message id from a different sender is a different message.
        assert s.record_received_many([inc("x", sender="did:peer:2.other", rid="rel-b")], now=2) == [True]
        assert s.record_received_many([], now=3) == []
    with SQLiteStore(path) as s:
        assert s.record_received_many([inc("x"), inc("z"), inc("w")], now=4) == [False, False, True]
        got = [(e.sender_did, e.message_id) for e in s.undelivered(100)]
        assert got == [("did:peer:2.them", "x"), ("did:peer:2.them", "y"), ("did:peer:2.them", "z"),
                       ("did:peer:2.other", "x"), ("did:peer:2.them", "w")]


def test_inbox_without_relationship_and_unknown_relationship(store):
    assert store.record_received_many([inc("req", rid=None)], now=1) == [True]
    with pytest.raises(UnknownRelationship):
        store.record_received_many([inc("q", rid="ghost")], now=1)


def test_app_delivery_survives_restart(path):
    with SQLiteStore(path) as s:
        add_rel(s)
        s.record_received_many([inc(f"m{i}") for i in range(5)], now=10)
        first = s.undelivered(3)
        assert [e.message_id for e in first] == ["m0", "m1", "m2"] and first[0].payload == b"body"
        # The app took m0 and m1 and we recorded that; then the process dies before m2 is marked.
        assert s.mark_delivered_many([first[0].inbox_id, first[1].inbox_id]) == 2
    with SQLiteStore(path) as s:
        left = s.undelivered(100)
        assert [e.message_id for e in left] == ["m2", "m3", "m4"]  # m2 is handed over again
        assert s.mark_delivered_many([e.inbox_id for e in left] + [first[0].inbox_id]) == 3
        assert s.undelivered(100) == []
        # Delivered messages are still recognised as duplicates...
        assert s.record_received_many([inc("m0")], now=20) == [False]
        # ...until pruned; bodies are gone at delivery, rows at pruning.
        assert s.db.execute("SELECT count(*) FROM inbox WHERE payload IS NOT NULL").fetchone()[0] == 0
        assert s.prune_seen(before=11) == 5
        assert s.record_received_many([inc("m0")], now=30) == [True]


# --- concurrency and crashes --------------------------------------------------------------


def test_usable_from_a_worker_thread(store):
    add_rel(store)
    result = []
    t = threading.Thread(target=lambda: result.append(store.enqueue_many([out("t1")], now=1)))
    t.start()
    t.join()
    assert result == [[1]] and store.pending_count("rel-a") == 1


CHILD = textwrap.dedent("""
    import sys
    from p2p.store import SQLiteStore, Outgoing
    path, batch = sys.argv[1], int(sys.argv[2])
    s = SQLiteStore(path)
    k = 0
    while True:
        s.enqueue_many([Outgoing(f"b{k}-{i}", "rel-a", "th", b"x" * 200) for i in range(batch)], now=k)
        print(k, flush=True)   # only after enqueue_many returned, i.e. committed
        k += 1
""")


@pytest.mark.parametrize("round_", range(3))
def test_sigkill_never_loses_a_reported_batch_nor_leaves_half_of_one(path, round_):
    batch = 50
    with SQLiteStore(path) as s:
        add_rel(s)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(batch)],
                             stdout=subprocess.PIPE, env=env)
    try:
        first = child.stdout.readline()  # wait until it is really writing
        assert first.strip() == b"0", first
        time.sleep(random.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()
    finally:
        child.kill()
        child.wait()
    reported = [int(x) for x in (first + rest).split()]
    assert reported == list(range(len(reported)))
    with SQLiteStore(path) as s:
        rows = s.db.execute("SELECT message_id, seq FROM outbox ORDER BY seq").fetchall()
        per_batch: dict[int, int] = {}
        for mid, _ in rows:
            k = int(mid[1:].split("-")[0])
            per_batch[k] = per_batch.get(k, 0) + 1
        assert all(n == batch for n in per_batch.values()), "a batch was half committed"
        assert set(range(len(reported))) <= set(per_batch), "a reported batch was lost"
        # At most the batch in flight at the kill is there without having been reported.
        assert len(per_batch) - len(reported) in (0, 1)
        assert [seq for _, seq in rows] == list(range(1, len(rows) + 1))
        assert s.enqueue_many([out("after")], now=0) == [len(rows) + 1]
