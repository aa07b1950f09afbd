"""ownership/1.0's table (spec/19 "Daemon and admin API"): `ownership_records`.

One row per record we issued (side 'issuer') or hold (side 'owner'). The signed
COSE_Sign1 is the authority; the other columns are its fields, kept for listing and
routing without a signature check per row. Only p2p/services/ownership.py calls this
module; every write joins the caller's transaction (`store.transaction()` joins an
enclosing `store.atomic()` or the recording transaction of a received message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2p.core.protocols.ownership import Record

ISSUER, OWNER = "issuer", "owner"

_COLS = ("side, issuer, id, relationship_id, model, serial, owner, purchased, warranty_end, issued_time, state, "
         "pending_owner, previous, message_id, transfer_request, consent, reason, signed, created_at, updated_at")
# Columns a state change may set (the rest is the record itself: never rewritten).
_MUTABLE = frozenset({"state", "pending_owner", "message_id", "transfer_request", "consent", "reason"})


@dataclass(frozen=True, slots=True)
class OwnershipRow:
    side: str
    issuer: str
    id: str
    relationship_id: str | None
    model: str
    serial: str
    owner: str
    purchased: str
    warranty_end: str
    issued_time: int
    state: str
    pending_owner: str | None
    previous: str | None
    message_id: str | None
    transfer_request: str | None
    consent: bytes | None
    reason: str | None
    signed: bytes
    created_at: int
    updated_at: int


def _rows(store: Any, where: str = "", args: tuple = (), tail: str = "") -> list[OwnershipRow]:
    sql = f"SELECT {_COLS} FROM ownership_records" + (f" WHERE {where}" if where else "") + tail
    return [OwnershipRow(*r) for r in store.query(sql, args)]


def add(store: Any, *, side: str, record: Record, signed: bytes, relationship_id: str | None, state: str, now: int,
        message_id: str | None = None) -> None:
    with store.transaction() as conn:
        conn.execute(
            f"INSERT INTO ownership_records ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL, "
            "NULL, NULL, ?, ?, ?)",
            (side, record.issuer, record.id, relationship_id, record.model, record.serial, record.owner,
             record.purchased, record.warranty_end, record.issued_time, state, record.previous, message_id,
             bytes(signed), now, now))


def update(store: Any, side: str, issuer: str, record_id: str, *, now: int, **changes: Any) -> None:
    """Set some of the mutable columns (state, pending_owner, ...) of one row."""
    bad = set(changes) - _MUTABLE
    if bad:
        raise ValueError(f"not a mutable ownership column: {sorted(bad)}")
    names = sorted(changes)
    sets = ", ".join(f"{n} = ?" for n in names)
    with store.transaction() as conn:
        conn.execute(f"UPDATE ownership_records SET {sets}, updated_at = ? WHERE side = ? AND issuer = ? AND id = ?",
                     (*(changes[n] for n in names), now, side, issuer, record_id))


def get(store: Any, side: str, issuer: str, record_id: str) -> OwnershipRow | None:
    rows = _rows(store, "side = ? AND issuer = ? AND id = ?", (side, issuer, record_id))
    return rows[0] if rows else None


def find(store: Any, record_id: str) -> list[OwnershipRow]:
    """Every row with this id (ids are unique per issuer; ours are random)."""
    return _rows(store, "id = ?", (record_id,), " ORDER BY side, issuer")


def issued(store: Any, issuer: str) -> list[OwnershipRow]:
    """What a Registry is rebuilt from: every record `issuer` issued, oldest first (a
    successor is always after the record it supersedes)."""
    return _rows(store, "side = 'issuer' AND issuer = ?", (issuer,), " ORDER BY created_at, rowid")


def issued_elsewhere(store: Any, issuer: str) -> int:
    """Issued records under another agent DID (its endpoint changed): not in the registry."""
    return store.query("SELECT count(*) FROM ownership_records WHERE side = 'issuer' AND issuer != ?",
                       (issuer,))[0][0]


def held(store: Any, relationship_id: str, *, model: str | None = None) -> list[OwnershipRow]:
    """The owner's records from the issuer on this relationship (all states)."""
    if model is None:
        return _rows(store, "side = 'owner' AND relationship_id = ?", (relationship_id,))
    return _rows(store, "side = 'owner' AND relationship_id = ? AND model = ?", (relationship_id, model))


def by_transfer_request(store: Any, request_id: str) -> list[OwnershipRow]:
    return _rows(store, "transfer_request = ?", (request_id,))


def for_relationship(store: Any, relationship_id: str) -> list[OwnershipRow]:
    return _rows(store, "relationship_id = ?", (relationship_id,), " ORDER BY created_at, rowid")


def listing(store: Any, *, relationship: str | None = None, model: str | None = None, state: str | None = None,
            side: str | None = None, serial: str | None = None, limit: int = 1000) -> list[OwnershipRow]:
    where, args = [], []
    for col, value in (("relationship_id", relationship), ("model", model), ("state", state), ("side", side),
                       ("serial", serial)):
        if value is not None:
            where.append(f"{col} = ?")
            args.append(value)
    return _rows(store, " AND ".join(where), tuple(args), f" ORDER BY created_at, rowid LIMIT {int(limit)}")


__all__ = ["ISSUER", "OWNER", "OwnershipRow", "add", "update", "get", "find", "issued", "issued_elsewhere", "held",
           "by_transfer_request", "for_relationship", "listing"]
