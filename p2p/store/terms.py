"""terms/1.0's table (spec/17 §17.11): one row per agreement thread, either role.

Only p2p.services.terms calls this module. Writes join the caller's transaction (the
recording transaction of a received message, or the API call's `store.atomic()`).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import SQLiteStore

_COLUMNS = "relationship_id, id, role, state, payload, signature, record, hash, reason, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class AgreementRow:
    relationship_id: str
    id: str  # the agreement thread: the proffer's message id
    role: str  # our role in it: "customer" or "business"
    state: str  # a terms.State value
    payload: bytes | None  # the payload on the table (proffered, countered or accepted)
    signature: bytes | None  # CBOR [kid, protected, signature]: the one signature while one is missing
    record: bytes | None  # the final COSE_Sign, once accepted
    hash: bytes | None  # BLAKE2b-256 of `payload`
    reason: str | None  # of a reject or a withdraw
    created_at: int
    updated_at: int


def _row(r: tuple) -> AgreementRow:
    return AgreementRow(*r)


def save(store: SQLiteStore, row: AgreementRow) -> None:
    """Insert or replace the row of (relationship, id); created_at stays the first one."""
    with store.transaction() as conn:
        conn.execute(
            f"INSERT INTO agreements ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (relationship_id, id) DO UPDATE SET role = excluded.role, state = excluded.state, "
            "payload = excluded.payload, signature = excluded.signature, record = excluded.record, "
            "hash = excluded.hash, reason = excluded.reason, updated_at = excluded.updated_at",
            (row.relationship_id, row.id, row.role, row.state, row.payload, row.signature, row.record, row.hash,
             row.reason, row.created_at, row.updated_at))


def get(store: SQLiteStore, relationship_id: str, agreement_id: str) -> AgreementRow | None:
    rows = store.query(f"SELECT {_COLUMNS} FROM agreements WHERE relationship_id = ? AND id = ?",
                       (relationship_id, agreement_id))
    return _row(rows[0]) if rows else None


def find(store: SQLiteStore, agreement_id: str, *, limit: int = 2) -> list[AgreementRow]:
    """Rows with this id on any relationship (ids are unique per relationship only)."""
    return [_row(r) for r in store.query(f"SELECT {_COLUMNS} FROM agreements WHERE id = ? LIMIT ?",
                                         (agreement_id, limit))]


def list_for(store: SQLiteStore, relationship_id: str) -> list[AgreementRow]:
    """Oldest first."""
    return [_row(r) for r in store.query(
        f"SELECT {_COLUMNS} FROM agreements WHERE relationship_id = ? ORDER BY created_at, rowid",
        (relationship_id,))]


def count(store: SQLiteStore, relationship_id: str) -> int:
    return store.query("SELECT count(*) FROM agreements WHERE relationship_id = ?", (relationship_id,))[0][0]


def in_force(store: SQLiteStore) -> dict[str, tuple[str, bytes]]:
    """relationship id -> (agreement id, hash) of the agreement in force: the latest
    accepted one (an accepted row is last updated when it was accepted)."""
    out: dict[str, tuple[str, bytes]] = {}
    for rel, aid, h in store.query("SELECT relationship_id, id, hash FROM agreements WHERE state = 'accepted' "
                                   "ORDER BY updated_at, rowid"):
        out[rel] = (aid, h)
    return out


def latest_accepted(store: SQLiteStore, relationship_id: str) -> tuple[str, bytes] | None:
    rows = store.query("SELECT id, hash FROM agreements WHERE relationship_id = ? AND state = 'accepted' "
                       "ORDER BY updated_at DESC, rowid DESC LIMIT 1", (relationship_id,))
    return (rows[0][0], rows[0][1]) if rows else None


__all__ = ["AgreementRow", "save", "get", "find", "list_for", "count", "in_force", "latest_accepted"]
