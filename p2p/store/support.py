"""The `tickets` table of support/1.0 (schema 4): one summary row per ticket.

The ticket's history is the archive's thread; this row is what listing, searching
and a quick status need without decoding it, plus the two things the archive cannot
say: which of our messages the peer refused (`withdrawn`) and the business's own
assignment, which it may keep to itself (spec/18 §18.1). Only p2p.services.support
calls these functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import SQLiteStore
from .sqlite import paged_select

_COLS = ("rowid, relationship_id, id, opened_by, state, subject, category, priority, assignee, rating, "
         "rating_comment, created_at, updated_at, withdrawn, revision")


@dataclass(frozen=True, slots=True)
class TicketRow:
    cursor: int  # the rowid: creation order, the list's page cursor
    relationship_id: str
    id: str
    opened_by: str
    state: str
    subject: str
    category: str | None
    priority: str | None
    assignee: str | None
    rating: int | None
    rating_comment: str | None
    created_at: int
    updated_at: int
    withdrawn: tuple[str, ...]
    revision: int


def _row(r: tuple) -> TicketRow:
    return TicketRow(*r[:13], tuple(json.loads(r[13])) if r[13] else (), r[14])


def get(store: SQLiteStore, relationship_id: str, ticket_id: str) -> TicketRow | None:
    rows = store.query(f"SELECT {_COLS} FROM tickets WHERE relationship_id = ? AND id = ?",
                       (relationship_id, ticket_id))
    return _row(rows[0]) if rows else None


def find(store: SQLiteStore, ticket_id: str, *, limit: int = 2) -> list[TicketRow]:
    """Tickets with this id on any relationship (ids are chosen by whoever opened the
    ticket, so two relationships may hold the same one)."""
    return [_row(r) for r in store.query(f"SELECT {_COLS} FROM tickets WHERE id = ? ORDER BY rowid LIMIT ?",
                                         (ticket_id, limit))]


def listing(store: SQLiteStore, *, relationship_id: str | None = None, state: str | None = None,
            after: int | None = None, limit: int = 100) -> list[TicketRow]:
    sql, args = paged_select(f"SELECT {_COLS} FROM tickets",
                             equal=(("relationship_id", relationship_id), ("state", state)),
                             order="rowid", after=after, limit=limit)
    return [_row(r) for r in store.query(sql, args)]


def save(store: SQLiteStore, *, relationship_id: str, id: str, opened_by: str, state: str, subject: str,
         category: str | None, priority: str | None, assignee: str | None, rating: int | None,
         rating_comment: str | None, created_at: int, updated_at: int, withdrawn: tuple[str, ...] = ()) -> int:
    """Insert or update the row; returns its new revision (one more than before)."""
    w = json.dumps(list(withdrawn)) if withdrawn else None
    with store.transaction() as conn:
        row = conn.execute(
            "INSERT INTO tickets (relationship_id, id, opened_by, state, subject, category, priority, assignee, "
            "rating, rating_comment, created_at, updated_at, withdrawn, revision) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
            "ON CONFLICT (relationship_id, id) DO UPDATE SET state = excluded.state, assignee = excluded.assignee, "
            "rating = excluded.rating, rating_comment = excluded.rating_comment, updated_at = excluded.updated_at, "
            "withdrawn = excluded.withdrawn, revision = tickets.revision + 1 RETURNING revision",
            (relationship_id, id, opened_by, state, subject, category, priority, assignee, rating, rating_comment,
             created_at, updated_at, w)).fetchone()
    return row[0]


def delete(store: SQLiteStore, relationship_id: str, ticket_id: str) -> bool:
    with store.transaction() as conn:
        return conn.execute("DELETE FROM tickets WHERE relationship_id = ? AND id = ?",
                            (relationship_id, ticket_id)).rowcount > 0


__all__ = ["TicketRow", "get", "find", "listing", "save", "delete"]
