"""notifications/1.0's tables (schema 4): the only code that reads or writes them.

* `protocol_state` rows with protocol "notifications": one CBOR map per relationship
  (the business's `Audience` mirror or the customer's `Subscriptions`); the service
  encodes and decodes them, this module only moves the bytes.
* the `settings` row "notifications.catalogue": the business's topic catalogue (CBOR).
* `notifications`, `broadcasts`, `broadcast_skips`.

A notification's status (business side) is computed by ONE SQL expression from its
row and its outbox row (or, once the outbox row is pruned, its archive row): nothing
is written per message on the delivery path, the outbox is already the truth.
Every function here is one statement or one transaction (joining an enclosing
`store.atomic()`), never a query per row in a loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .sqlite import SQLiteStore, paged_select

PROTOCOL = "notifications"
CATALOGUE_KEY = "notifications.catalogue"

# The business side's status (spec/16 §16.7): read and refused first (a receipt on
# the delivery path never overwrites them), then the outbox row, then the archive
# copy of the final state once prune_outbox removed the outbox row.
_STATUS = ("CASE WHEN n.read_at IS NOT NULL THEN 'read' WHEN n.refused IS NOT NULL THEN 'failed' "
           "ELSE coalesce(CASE o.state WHEN 'acked' THEN 'delivered' ELSE o.state END, "
           "(SELECT a.state FROM archive a WHERE a.message_id = n.message_id "
           "AND a.relationship_id = n.relationship_id AND a.direction = 'out' LIMIT 1), 'failed') END")
_FROM = ("notifications n LEFT JOIN outbox o ON o.message_id = n.message_id "
         "AND o.relationship_id = n.relationship_id")
# The customer side: a notify it accepted was received; read once the customer read it.
_RECEIVED_STATUS = "CASE WHEN n.read_at IS NOT NULL THEN 'read' ELSE 'received' END"
_COLS = ("n.rowid, n.message_id, n.relationship_id, n.topic, n.broadcast_id, n.created_at, n.read_at, "
         "n.refused, n.action, n.action_at")


@dataclass(frozen=True, slots=True)
class Row:
    cursor: int
    message_id: str
    relationship_id: str
    topic: str
    broadcast_id: str | None
    created_at: int
    read_at: int | None
    refused: str | None
    action: str | None
    action_at: int | None
    status: str  # as stored: 'queued' may still be on the wire ('sent': the caller checks)


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: str
    topic: str
    title: str
    created_at: int
    recipients: int
    skipped: int


def _status_sql(side: str) -> tuple[str, str]:
    return (_STATUS, _FROM) if side == "business" else (_RECEIVED_STATUS, "notifications n")


# --- per-relationship state and the catalogue -------------------------------------------


def load_state(store: SQLiteStore, relationship_id: str) -> bytes | None:
    rows = store.query("SELECT state FROM protocol_state WHERE relationship_id = ? AND protocol = ?",
                       (relationship_id, PROTOCOL))
    return rows[0][0] if rows else None


def load_states(store: SQLiteStore) -> dict[str, bytes]:
    """Every relationship's state in one statement (a broadcast's fan-out)."""
    return dict(store.query("SELECT relationship_id, state FROM protocol_state WHERE protocol = ?", (PROTOCOL,)))


def save_states(store: SQLiteStore, states: Iterable[tuple[str, bytes]], now: int) -> None:
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO protocol_state (relationship_id, protocol, state, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (relationship_id, protocol) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at",
            [(rid, PROTOCOL, blob, now) for rid, blob in states])


def load_catalogue(store: SQLiteStore) -> bytes | None:
    rows = store.query("SELECT value FROM settings WHERE key = ?", (CATALOGUE_KEY,))
    return rows[0][0] if rows else None


def save_catalogue(store: SQLiteStore, blob: bytes) -> None:
    # Not store.set_setting: that one commits on its own; this joins the caller's
    # transaction, so the catalogue and the offers it causes are one commit.
    with store.transaction() as conn:
        conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (CATALOGUE_KEY, blob))


# --- notifications ------------------------------------------------------------------------


def add_many(store: SQLiteStore, rows: Sequence[tuple[str, str, str, str | None, int]], *,
             ignore: bool = False) -> None:
    """(message id, relationship id, topic, broadcast id, created_at) per notify.
    `ignore`: keep the first row of an id (a customer's: ids are the peer's choice)."""
    verb = "INSERT OR IGNORE" if ignore else "INSERT"
    with store.transaction() as conn:
        conn.executemany(f"{verb} INTO notifications (message_id, relationship_id, topic, broadcast_id, created_at) "
                         "VALUES (?, ?, ?, ?, ?)", rows)


def add_refused(store: SQLiteStore, message_id: str, relationship_id: str, topic: str, created_at: int,
                code: str) -> None:
    """A notify sent around the service (a raw POST /v1/messages) that the customer refused."""
    with store.transaction() as conn:
        conn.execute("INSERT OR IGNORE INTO notifications (message_id, relationship_id, topic, created_at, refused) "
                     "VALUES (?, ?, ?, ?, ?)", (message_id, relationship_id, topic, created_at, code))


def _row(r: tuple) -> Row:
    return Row(*r)


def get(store: SQLiteStore, message_id: str, *, relationship_id: str | None = None,
        side: str = "business") -> Row | None:
    status, from_ = _status_sql(side)
    sql, args = f"SELECT {_COLS}, {status} FROM {from_} WHERE n.message_id = ?", [message_id]
    if relationship_id is not None:
        sql += " AND n.relationship_id = ?"
        args.append(relationship_id)
    rows = store.query(sql + " ORDER BY n.rowid DESC LIMIT 1", args)
    return _row(rows[0]) if rows else None


def get_many(store: SQLiteStore, relationship_id: str, message_ids: Sequence[str]) -> list[Row]:
    """The rows of these ids on one relationship (ids not ours are absent), one statement."""
    if not message_ids:
        return []
    marks = ",".join("?" * len(message_ids))
    return [_row(r) for r in store.query(
        f"SELECT {_COLS}, {_STATUS} FROM {_FROM} WHERE n.relationship_id = ? AND n.message_id IN ({marks})",
        (relationship_id, *message_ids))]


def listing(store: SQLiteStore, *, side: str, relationship_id: str | None = None, topic: str | None = None,
            statuses: Sequence[str] = (), after: int | None = None, limit: int = 100) -> list[Row]:
    status, from_ = _status_sql(side)
    sql, args = paged_select(
        f"SELECT {_COLS}, {status} FROM {from_}", equal=(("n.relationship_id", relationship_id), ("n.topic", topic)),
        where=[(f"({status}) IN ({','.join('?' * len(statuses))})", statuses)] if statuses else (),
        order="n.rowid", after=after, limit=limit)
    return [_row(r) for r in store.query(sql, args)]


def set_read(store: SQLiteStore, message_id: str, relationship_id: str, at: int) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE notifications SET read_at = ? WHERE message_id = ? AND relationship_id = ? "
                     "AND read_at IS NULL", (at, message_id, relationship_id))


def set_refused(store: SQLiteStore, message_id: str, relationship_id: str, code: str) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE notifications SET refused = ? WHERE message_id = ? AND relationship_id = ?",
                     (code, message_id, relationship_id))


def set_action(store: SQLiteStore, message_id: str, relationship_id: str, action: str, at: int) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE notifications SET action = ?, action_at = ? WHERE message_id = ? "
                     "AND relationship_id = ?", (action, at, message_id, relationship_id))


def live_ids(store: SQLiteStore) -> list[str]:
    """Notifies still waiting for their receipt (the service's in-memory set at start):
    walks the live part of the outbox, not the notifications history."""
    return [r[0] for r in store.query(
        "SELECT o.message_id FROM outbox o INDEXED BY outbox_due JOIN notifications n "
        "ON n.message_id = o.message_id AND n.relationship_id = o.relationship_id "
        "WHERE o.state IN ('queued', 'sent')")]


def received_counts(store: SQLiteStore, relationship_id: str) -> dict[str, int]:
    r = store.query("SELECT count(*), count(read_at), count(action) FROM notifications WHERE relationship_id = ?",
                    (relationship_id,))[0]
    return {"count": r[0], "read": r[1], "answered": r[2]}


def forget_relationship(store: SQLiteStore, relationship_id: str) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM protocol_state WHERE relationship_id = ? AND protocol = ?",
                     (relationship_id, PROTOCOL))


# --- broadcasts ---------------------------------------------------------------------------


def add_broadcast(store: SQLiteStore, b: Broadcast, skips: Sequence[tuple[str, str]]) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT INTO broadcasts (id, topic, title, created_at, recipients, skipped) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (b.id, b.topic, b.title, b.created_at, b.recipients, b.skipped))
        conn.executemany("INSERT INTO broadcast_skips (broadcast_id, relationship_id, reason) VALUES (?, ?, ?)",
                         [(b.id, rid, reason) for rid, reason in skips])


def get_broadcast(store: SQLiteStore, broadcast_id: str) -> Broadcast | None:
    rows = store.query("SELECT id, topic, title, created_at, recipients, skipped FROM broadcasts WHERE id = ?",
                       (broadcast_id,))
    return Broadcast(*rows[0]) if rows else None


def broadcast_statuses(store: SQLiteStore, broadcast_id: str) -> list[tuple[str, str, str]]:
    """(relationship id, message id, stored status) of every recipient: one statement."""
    return store.query(f"SELECT n.relationship_id, n.message_id, {_STATUS} FROM {_FROM} "
                       f"WHERE n.broadcast_id = ?", (broadcast_id,))


def skip_counts(store: SQLiteStore, broadcast_id: str) -> dict[str, int]:
    return dict(store.query("SELECT reason, count(*) FROM broadcast_skips WHERE broadcast_id = ? GROUP BY reason",
                            (broadcast_id,)))


def broadcast_page(store: SQLiteStore, broadcast_id: str, *, after: str | None, limit: int
                   ) -> list[tuple[str, str | None, str, str | None]]:
    """Recipients and skipped relationships merged in relationship-id order (each
    relationship is in one of the two, once): (relationship, message id or None,
    stored status or 'skipped', skip reason or None)."""
    after = after or ""
    return store.query(
        f"SELECT * FROM (SELECT n.relationship_id AS rid, n.message_id, {_STATUS}, NULL FROM {_FROM} "
        f"WHERE n.broadcast_id = ? AND n.relationship_id > ? "
        f"UNION ALL SELECT relationship_id AS rid, NULL, 'skipped', reason FROM broadcast_skips "
        f"WHERE broadcast_id = ? AND relationship_id > ?) ORDER BY rid LIMIT ?",
        (broadcast_id, after, broadcast_id, after, limit))


__all__ = ["PROTOCOL", "CATALOGUE_KEY", "Row", "Broadcast", "load_state", "load_states", "save_states",
           "load_catalogue", "save_catalogue", "add_many", "add_refused", "get", "get_many", "listing", "set_read",
           "set_refused", "set_action", "live_ids", "received_counts", "forget_relationship", "add_broadcast",
           "get_broadcast", "broadcast_statuses", "skip_counts", "broadcast_page"]
