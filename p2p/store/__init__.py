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

import contextlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Iterable, Protocol, Sequence

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
    # schema 2: the connect/1.0 facts (spec/10)
    role: str = "invitee"  # "inviter" | "invitee"
    their_label: str = ""
    setup: str | None = None  # "responded": an inviter waiting for `complete`; None: set up
    thid: str | None = None  # the connect thread
    invitation_id: str | None = None
    # schema 4: the customer-business protocols and customer control
    their_agent_did: str | None = None  # an invitee's view of the inviter's agent DID
    muted: bool = False
    require_agreement: bool | None = None  # None: the configured default


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


class ArchiveState(StrEnum):
    """States of an archived message: an outbound one follows its outbox row
    (acked is shown as delivered); an inbound one is received."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """One plaintext message to keep: every message in and out of a relationship."""

    relationship_id: str
    direction: str  # "in" | "out"
    message_id: str
    type: str
    thid: str
    plaintext: bytes  # the message's deterministic CBOR (spec/03)
    pthid: str | None = None
    seq: int | None = None
    state: ArchiveState = ArchiveState.RECEIVED
    created_time: int | None = None
    expires_time: int | None = None


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    cursor: int  # monotonic: the application pages with after=cursor
    relationship_id: str
    direction: str
    message_id: str
    type: str
    thid: str
    pthid: str | None
    seq: int | None
    state: ArchiveState
    created_time: int | None
    expires_time: int | None
    archived_at: int
    plaintext: bytes


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """An agent event to queue for the webhooks named in `webhooks` (schema 3)."""

    payload: bytes  # the event as one JSON object (UTF-8), without its event_id member
    webhooks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A queued (webhook, event) pair, the head of a webhook's queue first."""

    webhook: str
    event_id: int
    payload: bytes
    created_at: int
    attempts: int
    next_attempt_ms: int  # unix milliseconds; 0: due now
    last_error: str | None


class _Unchanged:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


# --- the interface -------------------------------------------------------------


class Store(Protocol):
    """What the daemon needs from durable storage. Writes are committed on return."""

    def close(self) -> None: ...
    def atomic(self) -> "contextlib.AbstractContextManager[None]": ...
    def checkpoint(self) -> tuple[int, int, int]: ...
    # for the protocol tables' store modules (p2p/store/<protocol>.py)
    def transaction(self) -> "contextlib.AbstractContextManager[Any]": ...
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]: ...
    def savepoint(self) -> "contextlib.AbstractContextManager[None]": ...
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
        endpoint: str | None = None, label: str = "", role: str = "invitee",
        their_label: str = "", setup: str | None = None, thid: str | None = None,
        invitation_id: str | None = None, out_seq: int = 0, their_agent_did: str | None = None,
    ) -> Relationship: ...
    def get_relationship(self, id: str) -> Relationship | None: ...
    def relationship_by_our_did(self, our_did: str) -> Relationship | None: ...
    def relationships_with(self, their_did: str) -> list[Relationship]: ...
    def list_relationships(self, state: RelationshipState | None = None) -> list[Relationship]: ...
    def update_relationship(
        self, id: str, *, now: int, endpoint: str | None | _Unchanged = UNCHANGED,
        label: str | _Unchanged = UNCHANGED, their_label: str | _Unchanged = UNCHANGED,
        setup: str | None | _Unchanged = UNCHANGED, muted: bool | _Unchanged = UNCHANGED,
        require_agreement: bool | None | _Unchanged = UNCHANGED,
    ) -> Relationship: ...
    def revoke_relationship(self, id: str, now: int, *, final: Outgoing | None = None) -> list[str]: ...
    def relationship_counts(self) -> dict[str, int]: ...

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
    def pending_after(self, relationship_id: str, after_seq: int, now: int, limit: int) -> list[OutboxEntry]: ...
    def relationships_with_pending(self) -> list[str]: ...
    def outbox_counts(self) -> dict[str, int]: ...
    def prune_outbox(self, before: int) -> int: ...

    # inbox (hot path)
    def record_received_many(self, batch: Sequence[Incoming], now: int, *, keep_payload: bool = True) -> list[bool]: ...
    def undelivered(self, limit: int) -> list[InboxEntry]: ...
    def mark_delivered_many(self, inbox_ids: Iterable[int]) -> int: ...
    def prune_seen(self, before: int) -> int: ...

    # archive (schema 2)
    def archive_many(self, records: Sequence[ArchiveRecord], now: int) -> list[int]: ...
    def archived(
        self, *, relationship_id: str | None = None, thid: str | None = None, direction: str | None = None,
        type: str | None = None, after: int | None = None, limit: int = 100,
        exclude_type_prefixes: Sequence[str] = (),
    ) -> list[ArchivedMessage]: ...
    def get_archived(self, message_id: str, *, relationship_id: str | None = None,
                     direction: str | None = None) -> ArchivedMessage | None: ...

    # webhook queue (schema 3; spec/16): batch methods, one transaction per call
    def webhook_enqueue_many(self, events: Sequence[WebhookEvent], now: int, *,
                             archive_cursor: int | None = None) -> list[int]: ...
    def archive_cursor(self) -> int: ...
    def webhook_pending(self, webhook: str, limit: int) -> list[WebhookDelivery]: ...
    def webhook_delivered_many(self, webhook: str, event_ids: Iterable[int]) -> int: ...
    def webhook_retry(self, webhook: str, event_id: int, *, next_attempt_ms: int, error: str) -> int: ...
    def webhook_fail_older(self, webhook: str, created_before: int, *, error: str) -> int: ...
    def webhook_prune(self, keep: Iterable[str], failed_before: int) -> int: ...
    def webhook_counts(self) -> dict[str, dict[str, int]]: ...


from .sqlite import SQLiteStore  # noqa: E402  (needs the names above)

__all__ = [
    "ArchiveRecord", "ArchiveState", "ArchivedMessage", "DuplicateId", "DuplicateMessageId", "Identity", "InboxEntry", "Incoming", "Invitation",
    "InvitationKind", "InvitationState", "OutboxEntry", "OutboxState", "Outgoing",
    "Relationship", "RelationshipRevoked", "RelationshipState", "SQLiteStore", "SchemaTooNew",
    "SettingValue", "Store", "StoreError", "UNCHANGED", "UnknownRelationship",
    "WebhookDelivery", "WebhookEvent",
]
