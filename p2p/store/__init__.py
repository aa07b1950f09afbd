"""Durable state of a p2p agent: one small interface, one SQLite implementation.

The daemon talks to a `Store`; `SQLiteStore` is the implementation (see
spec/08-storage.md for the durability policy and the schema). Every method that
changes state has committed when it returns, so whatever the daemon does next
(sending an ack, handing a message to the application) happens after the fact is
on disk. The store keeps no clock: every time is an integer the caller passes.

Secret material (the identity key set, pairwise keys) is stored as opaque bytes;
`p2p.store.keyfile` seals it under a passphrase before it gets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable, Protocol, Sequence

from p2p.core.errors import LocalError

SettingValue = str | int | bytes


# --- errors ------------------------------------------------------------------
# All are LocalErrors: the store only ever sees values the daemon already
# accepted, so a failure here means the caller asked for something impossible.


class StoreError(LocalError):
    code = "store-error"


class SchemaTooNew(StoreError):
    """The database was written by a newer p2p; opening it could corrupt it."""

    code = "schema-too-new"


class UnknownRelationship(StoreError):
    code = "unknown-relationship"


class RelationshipRevoked(StoreError):
    code = "relationship-revoked"


class DuplicateMessageId(StoreError):
    """An outbound message id that is already in the outbox."""

    code = "duplicate-message-id"


class DuplicateId(StoreError):
    """A relationship or invitation id (or pairwise DID) that already exists."""

    code = "duplicate-id"


# --- states ------------------------------------------------------------------


class RelationshipState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class InvitationKind(StrEnum):
    ONE_TIME = "one-time"
    MULTI_USE = "multi-use"


class InvitationState(StrEnum):
    OPEN = "open"
    USED = "used"  # a one-time invitation after its use
    REVOKED = "revoked"


class OutboxState(StrEnum):
    QUEUED = "queued"  # waiting for its first or next attempt
    SENT = "sent"  # handed to the peer, waiting for its ack (resent when due again)
    ACKED = "acked"
    FAILED = "failed"
    EXPIRED = "expired"


# --- rows ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    did: str
    secret: bytes
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Relationship:
    id: str
    our_did: str
    their_did: str
    their_ed25519: bytes
    their_x25519: bytes
    endpoint: str | None
    label: str
    state: RelationshipState
    our_secret: bytes | None  # None once revoked
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Invitation:
    id: str
    kind: InvitationKind
    blob: bytes
    state: InvitationState
    use_count: int
    created_at: int
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to enqueue. `next_attempt_at` None means "due now"."""

    message_id: str
    relationship_id: str
    thread_id: str
    payload: bytes
    expires_at: int | None = None
    next_attempt_at: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    message_id: str
    relationship_id: str
    thread_id: str
    seq: int
    payload: bytes | None  # None once acknowledged or abandoned on revoke
    state: OutboxState
    attempts: int
    next_attempt_at: int
    expires_at: int | None
    created_at: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Incoming:
    """A received, already opened and validated message."""

    relationship_id: str | None  # None before a relationship exists (e.g. a connection request)
    sender_did: str
    message_id: str
    thread_id: str
    type: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class InboxEntry:
    inbox_id: int  # arrival order; the handle for mark_delivered_many
    relationship_id: str | None
    sender_did: str
    message_id: str
    thread_id: str
    type: str
    payload: bytes
    received_at: int


class _Unchanged:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


# --- the interface -------------------------------------------------------------


class Store(Protocol):
    """What the daemon needs from durable storage. Writes are committed on return."""

    def close(self) -> None: ...
    def __enter__(self) -> "Store": ...
    def __exit__(self, *exc: object) -> None: ...

    # settings
    def get_setting(self, key: str) -> SettingValue | None: ...
    def set_setting(self, key: str, value: SettingValue) -> None: ...
    def delete_setting(self, key: str) -> None: ...

    # identity
    def get_identity(self) -> Identity | None: ...
    def set_identity(self, did: str, secret: bytes, now: int) -> Identity: ...

    # relationships
    def add_relationship(
        self, *, id: str, our_did: str, their_did: str, their_ed25519: bytes,
        their_x25519: bytes, our_secret: bytes, now: int,
        endpoint: str | None = None, label: str = "",
    ) -> Relationship: ...
    def get_relationship(self, id: str) -> Relationship | None: ...
    def relationship_by_our_did(self, our_did: str) -> Relationship | None: ...
    def relationships_with(self, their_did: str) -> list[Relationship]: ...
    def list_relationships(self, state: RelationshipState | None = None) -> list[Relationship]: ...
    def update_relationship(
        self, id: str, *, now: int, endpoint: str | None | _Unchanged = UNCHANGED,
        label: str | _Unchanged = UNCHANGED,
    ) -> Relationship: ...
    def revoke_relationship(self, id: str, now: int) -> list[str]: ...

    # invitations
    def add_invitation(
        self, *, id: str, kind: InvitationKind, blob: bytes, now: int, expires_at: int | None = None,
    ) -> Invitation: ...
    def get_invitation(self, id: str) -> Invitation | None: ...
    def use_invitation(self, id: str, now: int) -> Invitation | None: ...
    def revoke_invitation(self, id: str) -> bool: ...
    def list_invitations(self, state: InvitationState | None = None) -> list[Invitation]: ...

    # outbox (hot path: batch methods, one transaction per call)
    def enqueue_many(self, batch: Sequence[Outgoing], now: int) -> list[int]: ...
    def due(self, now: int, limit: int) -> list[OutboxEntry]: ...
    def get_outbox(self, message_id: str) -> OutboxEntry | None: ...
    def mark_sent_many(self, message_ids: Iterable[str], *, next_attempt_at: int) -> int: ...
    def mark_acked_many(self, relationship_id: str, message_ids: Iterable[str]) -> int: ...
    def schedule_retry_many(self, message_ids: Iterable[str], *, next_attempt_at: int, error: str) -> int: ...
    def mark_failed_many(self, message_ids: Iterable[str], *, error: str) -> int: ...
    def expire(self, now: int) -> list[str]: ...
    def pending_count(self, relationship_id: str) -> int: ...
    def prune_outbox(self, before: int) -> int: ...

    # inbox (hot path)
    def record_received_many(self, batch: Sequence[Incoming], now: int) -> list[bool]: ...
    def undelivered(self, limit: int) -> list[InboxEntry]: ...
    def mark_delivered_many(self, inbox_ids: Iterable[int]) -> int: ...
    def prune_seen(self, before: int) -> int: ...


from .sqlite import SQLiteStore  # noqa: E402  (needs the names above)

__all__ = [
    "DuplicateId", "DuplicateMessageId", "Identity", "InboxEntry", "Incoming", "Invitation",
    "InvitationKind", "InvitationState", "OutboxEntry", "OutboxState", "Outgoing",
    "Relationship", "RelationshipRevoked", "RelationshipState", "SQLiteStore", "SchemaTooNew",
    "SettingValue", "Store", "StoreError", "UNCHANGED", "UnknownRelationship",
]
