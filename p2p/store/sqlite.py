"""The `Store` on one SQLite file (WAL mode, numbered migrations, mode 0600).

Transactions are explicit: the connection runs in autocommit mode and every
write method wraps its statements in BEGIN IMMEDIATE ... COMMIT, so a method is
one transaction however many rows it touches, and its effect is committed when
it returns. BEGIN IMMEDIATE takes the write lock up front, so a second process
waits (busy timeout) instead of failing half-way through with SQLITE_BUSY.

sqlite-utils opens the database and serves the cold paths; the per-message
paths go straight to `conn.executemany`, because sqlite-utils' per-call work
(introspection, dict building) costs as much as the write itself
(shared/PERFORMANCE.md: 116 vs 59 microseconds per single-row transaction).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import sqlite_utils

from . import (
    UNCHANGED,
    ArchivedMessage,
    ArchiveRecord,
    ArchiveState,
    DuplicateId,
    DuplicateMessageId,
    Identity,
    InboxEntry,
    Incoming,
    Invitation,
    InvitationKind,
    InvitationState,
    OutboxEntry,
    OutboxState,
    Outgoing,
    Relationship,
    RelationshipRevoked,
    RelationshipState,
    SchemaTooNew,
    SettingValue,
    StoreError,
    UnknownRelationship,
    WebhookDelivery,
    WebhookEvent,
    _Unchanged,
)

# STRICT tables need 3.37, RETURNING 3.35.
MIN_SQLITE = (3, 37, 0)
SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}
BUSY_TIMEOUT_S = 5.0
FILE_MODE = 0o600
DIR_MODE = 0o700

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _load_migrations() -> tuple[tuple[int, str], ...]:
    """(version, sql) pairs, checked to be exactly 1..N with no gap or duplicate."""
    found: dict[int, str] = {}
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise RuntimeError(f"two migrations numbered {version}")
        found[version] = entry.read_text(encoding="utf-8")
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {versions}")
    return tuple((v, found[v]) for v in versions)


MIGRATIONS = _load_migrations()
SCHEMA_VERSION = MIGRATIONS[-1][0]

_REL_COLS = ("id, our_did, their_did, their_ed25519, their_x25519, endpoint, label, state, "
             "our_secret, created_at, updated_at, role, their_label, setup, thid, invitation_id, "
             "their_agent_did, muted, require_agreement")
_INV_COLS = "id, kind, blob, state, use_count, created_at, expires_at"
_OUT_COLS = ("message_id, relationship_id, thread_id, seq, payload, state, attempts, "
             "next_attempt_at, expires_at, created_at, last_error")
_LIVE = "('queued', 'sent')"  # outbox states that still want delivery


def paged_select(select: str, *, equal: Sequence[tuple[str, object]] = (), where: Sequence[tuple[str, Sequence]] = (),
                 order: str, after: object = None, limit: int) -> tuple[str, tuple]:
    """`select` with ` WHERE ...` for every (column, value) of `equal` whose value is not
    None and every extra (condition, args) of `where`, then rows after `after` in
    `order` (a column), at most `limit`: the listing every store module pages the same way."""
    conds, args = [], []
    for column, value in equal:
        if value is not None:
            conds.append(f"{column} = ?")
            args.append(value)
    for cond, cond_args in where:
        conds.append(cond)
        args.extend(cond_args)
    if after is not None:
        conds.append(f"{order} > ?")
        args.append(after)
    sql = select + (" WHERE " + " AND ".join(conds) if conds else "") + f" ORDER BY {order} LIMIT ?"
    return sql, (*args, limit)


def _relationship(r: tuple) -> Relationship:
    return Relationship(r[0], r[1], r[2], r[3], r[4], r[5], r[6], RelationshipState(r[7]),
                        r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15], r[16], bool(r[17]),
                        None if r[18] is None else bool(r[18]))


def _invitation(r: tuple) -> Invitation:
    return Invitation(r[0], InvitationKind(r[1]), r[2], InvitationState(r[3]), r[4], r[5], r[6])


def _outbox(r: tuple) -> OutboxEntry:
    return OutboxEntry(r[0], r[1], r[2], r[3], r[4], OutboxState(r[5]), r[6], r[7], r[8], r[9], r[10])


# An outbound message's state is its outbox row's while that row exists (acked is
# shown as delivered); after prune_outbox, the copy in archive.state.
_ARC_COLS = ("a.cursor, a.relationship_id, a.direction, a.message_id, a.type, a.thid, a.pthid, a.seq, "
             "CASE o.state WHEN 'acked' THEN 'delivered' ELSE coalesce(o.state, a.state) END, "
             "a.created_time, a.expires_time, a.archived_at, a.plaintext")
_ARC_FROM = ("archive a LEFT JOIN outbox o ON a.direction = 'out' AND o.message_id = a.message_id "
             "AND o.relationship_id = a.relationship_id")
_DIRECTIONS = ("in", "out")


def _archived(r: tuple) -> ArchivedMessage:
    return ArchivedMessage(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], ArchiveState(r[8]), r[9], r[10],
                           r[11], r[12])


def _chmod_private(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(FileNotFoundError):
            if (os.stat(p).st_mode & 0o777) != FILE_MODE:
                os.chmod(p, FILE_MODE)


class SQLiteStore:
    """`Store` on the SQLite file at `path`, created (mode 0600) if missing.

    `synchronous`: "normal" (default) -- a committed transaction survives any
    crash of the process; a power loss or OS crash may lose the last few
    commits (never corrupts). "full" -- every commit is fsynced before the method
    returns, so it also survives power loss. See spec/08-storage.md.

    One connection, guarded by a lock, so the daemon may call the store from a
    worker thread (trio.to_thread) as well as from the event loop thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "normal",
                 autocheckpoint: bool = True) -> None:
        if synchronous not in SYNCHRONOUS:
            raise StoreError(f"synchronous must be one of {sorted(SYNCHRONOUS)}, not {synchronous!r}")
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old; p2p needs "
                             f"{'.'.join(map(str, MIN_SQLITE))} or later")
        self.path = Path(path)
        self.synchronous = synchronous
        self._lock = threading.RLock()
        self._closed = False
        self._depth = 0  # atomic() nesting: inner transactions join the outer one
        self._checkpoint_due = False
        self.autocheckpoint = autocheckpoint
        self._ckpt_conn: sqlite3.Connection | None = None
        self._ckpt_lock = threading.Lock()
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # Create the file ourselves with 0600 before SQLite touches it: SQLite gives
        # its -wal and -shm files the mode of the main file, so they are born
        # private too. (No umask juggling: umask is process-wide, not thread-safe.)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        _chmod_private(self.path)  # an older or copied file may be looser
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            self.db = sqlite_utils.Database(conn, execute_plugins=False)
            self._conn = conn
            self._configure()
            self._migrate()
        except BaseException:
            conn.close()
            raise
        _chmod_private(self.path)
        # Schema 2 indexes the live part of the outbox by relationship.
        self._live_index = "INDEXED BY outbox_live" if self.schema_version >= 2 else ""

    # --- lifecycle ---------------------------------------------------------

    def _configure(self) -> None:
        db = self.db
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"could not switch {self.path} to WAL mode (got {mode!r})")
        db.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self.synchronous]}")
        db.execute("PRAGMA foreign_keys = ON")
        # Revoke must not leave pairwise keys readable in free space of the file:
        # FAST zeroes deleted cells in place at no extra I/O, and key blobs are
        # far smaller than a page, so they never sit in overflow pages.
        db.execute("PRAGMA secure_delete = FAST")
        if not self.autocheckpoint:
            # The owner runs checkpoint() itself, off its hot path: an automatic
            # checkpoint runs inside whichever COMMIT crosses 1000 WAL pages and
            # fsyncs there, stalling that commit for hundreds of milliseconds.
            db.execute("PRAGMA wal_autocheckpoint = 0")

    def _user_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        current = self._user_version()
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} has schema version {current}, this p2p knows up to "
                f"{SCHEMA_VERSION}; upgrade p2p (or restore a backup) instead of opening it"
            )
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            # One transaction per migration, the version bump inside it: a crash
            # leaves the file at the previous version, never in between.
            script = f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {version};\nCOMMIT;"
            try:
                self.db.executescript(script)
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                # Another process may have opened the same new file at the same
                # moment and applied this migration first; that is not an error.
                if self._user_version() >= version:
                    continue
                raise StoreError(f"migration {version} failed on {self.path}: {exc}") from exc
            current = version

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._user_version()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
        with self._ckpt_lock:
            if self._ckpt_conn is not None:
                self._ckpt_conn.close()
                self._ckpt_conn = None

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy committed WAL pages into the database file (PRAGMA wal_checkpoint
        PASSIVE), on a connection of its own, so that a worker thread can run it (and
        its fsyncs) while the owner keeps writing on the main connection. Returns
        SQLite's (busy, WAL frames, frames checkpointed). For stores opened with
        autocheckpoint=False; harmless otherwise."""
        with self._ckpt_lock:
            if self._closed:
                raise StoreError("store is closed")
            if self._ckpt_conn is None:
                self._ckpt_conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                                  check_same_thread=False)
                self._ckpt_conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self.synchronous]}")
            return tuple(self._ckpt_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; committed on normal exit, rolled back otherwise.
        Inside `atomic()` it joins the enclosing transaction instead."""
        with self._lock:
            conn = self._conn
            if self._depth:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Group several store calls into one transaction (one commit, one fsync
        with synchronous=full): every write method called inside joins it, and
        all of them are committed together when the block exits normally, or none
        (rolled back) if it raises. The daemon uses it so that, e.g., recording a
        batch of received messages, archiving them and queueing the replies they
        caused is one atomic step. Other threads wait for the whole block."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._checkpoint_due = False
                raise
            finally:
                self._depth = 0
            if self._checkpoint_due:
                self._checkpoint_due = False
                self._checkpoint()

    # --- for the protocol tables' store modules (p2p/store/<protocol>.py) --------

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write transaction on the connection (joins an enclosing `atomic()`).
        Only the store modules of this package use it, each on its own tables."""
        return self._tx()

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read statement (store modules of this package only)."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside `atomic()`: undo the block's writes if it raises, keep the
        transaction. The daemon runs each protocol handler in one, so a message
        refused half-way leaves no trace."""
        with self._lock:
            if not self._depth:
                raise StoreError("savepoint() is used inside atomic()")
            conn = self._conn
            conn.execute("SAVEPOINT handler")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK TO handler")
                conn.execute("RELEASE handler")
                raise
            conn.execute("RELEASE handler")

    def _checkpoint(self) -> None:
        # The WAL may still hold page images from before a revoke (with the key in
        # them); copy them into the file and cut the WAL to zero length. Best effort:
        # a reader in another process can hold the checkpoint back.
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # --- settings (cold path: sqlite-utils convenience) ----------------------

    def get_setting(self, key: str) -> SettingValue | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_setting(self, key: str, value: SettingValue) -> None:
        if not isinstance(value, (str, int, bytes)) or isinstance(value, bool):
            raise StoreError(f"a setting is str, int or bytes, not {type(value).__name__}")
        with self._lock:
            self.db["settings"].upsert({"key": key, "value": value}, pk="key")

    def delete_setting(self, key: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM settings WHERE key = ?", (key,))

    # --- identity ------------------------------------------------------------

    def get_identity(self) -> Identity | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT did, secret, created_at, updated_at FROM identity WHERE slot = 1"
            ).fetchone()
        return None if row is None else Identity(*row)

    def set_identity(self, did: str, secret: bytes, now: int) -> Identity:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO identity (slot, did, secret, created_at, updated_at) VALUES (1, ?, ?, ?, ?) "
                "ON CONFLICT (slot) DO UPDATE SET did = excluded.did, secret = excluded.secret, "
                "updated_at = excluded.updated_at",
                (did, bytes(secret), now, now),
            )
            row = conn.execute(
                "SELECT did, secret, created_at, updated_at FROM identity WHERE slot = 1"
            ).fetchone()
        return Identity(*row)

    # --- relationships ---------------------------------------------------------

    def add_relationship(
        self, *, id: str, our_did: str, their_did: str, their_ed25519: bytes,
        their_x25519: bytes, our_secret: bytes, now: int,
        endpoint: str | None = None, label: str = "", role: str = "invitee",
        their_label: str = "", setup: str | None = None, thid: str | None = None,
        invitation_id: str | None = None, out_seq: int = 0, their_agent_did: str | None = None,
    ) -> Relationship:
        """`out_seq`: the last sequence number already used towards the peer (an
        invitee's connect request travels as seq 1 before the relationship exists)."""
        try:
            with self._tx() as conn:
                conn.execute(
                    "INSERT INTO relationships (id, our_did, their_did, their_ed25519, their_x25519, "
                    "endpoint, label, state, our_secret, created_at, updated_at, role, their_label, "
                    "setup, thid, invitation_id, out_seq, their_agent_did) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (id, our_did, their_did, bytes(their_ed25519), bytes(their_x25519), endpoint,
                     label, bytes(our_secret), now, now, role, their_label, setup, thid, invitation_id,
                     out_seq, their_agent_did),
                )
        except sqlite3.IntegrityError as exc:
            raise DuplicateId(f"relationship {id!r} or pairwise DID {our_did!r} exists: {exc}") from None
        return self._get_relationship("id", id)  # type: ignore[return-value]

    def _get_relationship(self, column: str, value: str) -> Relationship | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_REL_COLS} FROM relationships WHERE {column} = ?", (value,)
            ).fetchone()
        return None if row is None else _relationship(row)

    def get_relationship(self, id: str) -> Relationship | None:
        return self._get_relationship("id", id)

    def relationship_by_our_did(self, our_did: str) -> Relationship | None:
        return self._get_relationship("our_did", our_did)

    def relationships_with(self, their_did: str) -> list[Relationship]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_REL_COLS} FROM relationships WHERE their_did = ? ORDER BY created_at, rowid",
                (their_did,),
            ).fetchall()
        return [_relationship(r) for r in rows]

    def list_relationships(self, state: RelationshipState | None = None) -> list[Relationship]:
        sql = f"SELECT {_REL_COLS} FROM relationships"
        args: tuple = ()
        if state is not None:
            sql += " WHERE state = ?"
            args = (RelationshipState(state).value,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at, rowid", args).fetchall()
        return [_relationship(r) for r in rows]

    def update_relationship(
        self, id: str, *, now: int, endpoint: str | None | _Unchanged = UNCHANGED,
        label: str | _Unchanged = UNCHANGED, their_label: str | _Unchanged = UNCHANGED,
        setup: str | None | _Unchanged = UNCHANGED, muted: bool | _Unchanged = UNCHANGED,
        require_agreement: bool | None | _Unchanged = UNCHANGED,
    ) -> Relationship:
        sets, args = ["updated_at = ?"], [now]
        for column, value in (("endpoint", endpoint), ("label", label), ("their_label", their_label),
                              ("setup", setup), ("muted", muted), ("require_agreement", require_agreement)):
            if value is not UNCHANGED:
                sets.append(f"{column} = ?")
                args.append(value)
        with self._tx() as conn:
            cur = conn.execute(f"UPDATE relationships SET {', '.join(sets)} WHERE id = ?", (*args, id))
            if cur.rowcount == 0:
                raise UnknownRelationship(id)
        return self._get_relationship("id", id)  # type: ignore[return-value]

    def revoke_relationship(self, id: str, now: int, *, final: Outgoing | None = None) -> list[str]:
        """Forget our pairwise keys, keep the row as 'revoked', abandon its outbox.

        Returns the ids of outbound messages that will now never be delivered.
        Revoking twice is harmless (the second call returns []). `final` is one
        last message, already sealed, queued in the same transaction after the
        others are abandoned: the connect/1.0 `revoke` itself, which the daemon
        keeps delivering (spec/10 §10.6) although the relationship is revoked.
        """
        with self._tx() as conn:
            row = conn.execute("SELECT state FROM relationships WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise UnknownRelationship(id)
            conn.execute(
                "UPDATE relationships SET state = 'revoked', our_secret = NULL, updated_at = ? "
                "WHERE id = ?",
                (now, id),
            )
            abandoned = [r[0] for r in conn.execute(
                f"UPDATE outbox SET state = 'failed', payload = NULL, last_error = 'relationship revoked' "
                f"WHERE relationship_id = ? AND state IN {_LIVE} RETURNING message_id",
                (id,),
            ).fetchall()]
            if final is not None and row[0] == "active":
                seq = conn.execute("UPDATE relationships SET out_seq = out_seq + 1 WHERE id = ? "
                                   "RETURNING out_seq", (id,)).fetchone()[0]
                nxt = now if final.next_attempt_at is None else final.next_attempt_at
                try:
                    conn.execute(
                        "INSERT INTO outbox (message_id, relationship_id, thread_id, seq, payload, "
                        "next_attempt_at, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (final.message_id, id, final.thread_id, seq, final.payload, nxt, final.expires_at, now))
                except sqlite3.IntegrityError as exc:
                    raise DuplicateMessageId(str(exc)) from None
        if self._depth:
            self._checkpoint_due = True  # after the enclosing atomic() commits
        else:
            self._checkpoint()
        return abandoned

    def relationship_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn.execute("SELECT state, count(*) FROM relationships GROUP BY state"))

    # --- invitations -------------------------------------------------------------

    def add_invitation(
        self, *, id: str, kind: InvitationKind, blob: bytes, now: int, expires_at: int | None = None,
    ) -> Invitation:
        try:
            with self._tx() as conn:
                row = conn.execute(
                    f"INSERT INTO invitations (id, kind, blob, state, use_count, created_at, expires_at) "
                    f"VALUES (?, ?, ?, 'open', 0, ?, ?) RETURNING {_INV_COLS}",
                    (id, InvitationKind(kind).value, bytes(blob), now, expires_at),
                ).fetchone()
        except sqlite3.IntegrityError as exc:
            raise DuplicateId(f"invitation {id!r} exists: {exc}") from None
        return _invitation(row)

    def get_invitation(self, id: str) -> Invitation | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_INV_COLS} FROM invitations WHERE id = ?", (id,)).fetchone()
        return None if row is None else _invitation(row)

    def use_invitation(self, id: str, now: int) -> Invitation | None:
        """Count one use, atomically; None if the invitation is unknown, used, revoked
        or expired at `now` (get_invitation tells which). A one-time invitation
        becomes 'used' in the same statement, so two racing uses cannot both win."""
        with self._tx() as conn:
            row = conn.execute(
                f"UPDATE invitations SET use_count = use_count + 1, "
                f"state = CASE kind WHEN 'one-time' THEN 'used' ELSE state END "
                f"WHERE id = ? AND state = 'open' AND (expires_at IS NULL OR expires_at > ?) "
                f"RETURNING {_INV_COLS}",
                (id, now),
            ).fetchone()
        return None if row is None else _invitation(row)

    def revoke_invitation(self, id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE invitations SET state = 'revoked' WHERE id = ? AND state != 'revoked'", (id,)
            )
        return cur.rowcount > 0

    def list_invitations(self, state: InvitationState | None = None) -> list[Invitation]:
        sql = f"SELECT {_INV_COLS} FROM invitations"
        args: tuple = ()
        if state is not None:
            sql += " WHERE state = ?"
            args = (InvitationState(state).value,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at, rowid", args).fetchall()
        return [_invitation(r) for r in rows]

    # --- outbox (hot path) ----------------------------------------------------------

    def enqueue_many(self, batch: Sequence[Outgoing], now: int) -> list[int]:
        """Store a batch of outbound messages in one transaction; return their
        sequence numbers (per relationship, increasing in batch order). Committed
        on return. The whole batch is refused if any relationship is unknown or
        revoked, or any message id is already queued."""
        if not batch:
            return []
        with self._tx() as conn:
            last: dict[str, int] = {}
            seqs: list[int] = []
            rows = []
            for m in batch:
                rid = m.relationship_id
                seq = last.get(rid)
                if seq is None:
                    r = conn.execute("SELECT state, out_seq FROM relationships WHERE id = ?", (rid,)).fetchone()
                    if r is None:
                        raise UnknownRelationship(rid)
                    if r[0] != "active":
                        raise RelationshipRevoked(rid)
                    seq = r[1]
                seq += 1
                last[rid] = seq
                seqs.append(seq)
                nxt = now if m.next_attempt_at is None else m.next_attempt_at
                rows.append((m.message_id, rid, m.thread_id, seq, m.payload, nxt, m.expires_at, now))
            try:
                conn.executemany(
                    "INSERT INTO outbox (message_id, relationship_id, thread_id, seq, payload, "
                    "next_attempt_at, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateMessageId(str(exc)) from None
            conn.executemany("UPDATE relationships SET out_seq = ? WHERE id = ?",
                             [(s, rid) for rid, s in last.items()])
        return seqs

    def due(self, now: int, limit: int) -> list[OutboxEntry]:
        """Live messages whose next attempt is at or before `now` and that have not
        expired, oldest first: global FIFO across relationships (fair), and so in
        increasing `seq` within each relationship. A due message is not held back
        by an earlier one that is not due yet: receivers restore order by `seq`."""
        with self._lock:
            rows = self._conn.execute(
                # Without INDEXED BY the planner likes to walk the whole table in
                # rowid order (to skip the sort), which grows with acked history.
                f"SELECT {_OUT_COLS} FROM outbox INDEXED BY outbox_due "
                f"WHERE state IN {_LIVE} AND next_attempt_at <= ? "
                f"AND (expires_at IS NULL OR expires_at > ?) ORDER BY rowid LIMIT ?",
                (now, now, limit),
            ).fetchall()
        return [_outbox(r) for r in rows]

    def get_outbox(self, message_id: str) -> OutboxEntry | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_OUT_COLS} FROM outbox WHERE message_id = ?",
                                     (message_id,)).fetchone()
        return None if row is None else _outbox(row)

    def _update_many(self, sql: str, rows: Iterable[tuple]) -> int:
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(sql, rows)
            return conn.total_changes - before

    def mark_sent_many(self, message_ids: Iterable[str], *, next_attempt_at: int) -> int:
        """The messages went out (one more attempt each); if no ack arrives by
        `next_attempt_at` they are due again. Returns how many rows changed."""
        return self._update_many(
            f"UPDATE outbox SET state = 'sent', attempts = attempts + 1, next_attempt_at = ?, "
            f"last_error = NULL WHERE message_id = ? AND state IN {_LIVE}",
            [(next_attempt_at, mid) for mid in message_ids],
        )

    def mark_acked_many(self, relationship_id: str, message_ids: Iterable[str]) -> int:
        """The peer of `relationship_id` acknowledged these messages. Scoped to the
        relationship so one peer cannot acknowledge what was sent to another. An
        ack is the truth: it also settles a message we had given up on."""
        return self._update_many(
            "UPDATE outbox SET state = 'acked', payload = NULL, last_error = NULL "
            "WHERE message_id = ? AND relationship_id = ? AND state != 'acked'",
            [(mid, relationship_id) for mid in message_ids],
        )

    def schedule_retry_many(self, message_ids: Iterable[str], *, next_attempt_at: int, error: str) -> int:
        """An attempt failed (e.g. peer unreachable): count it, try again later."""
        return self._update_many(
            f"UPDATE outbox SET state = 'queued', attempts = attempts + 1, next_attempt_at = ?, "
            f"last_error = ? WHERE message_id = ? AND state IN {_LIVE}",
            [(next_attempt_at, error, mid) for mid in message_ids],
        )

    def mark_failed_many(self, message_ids: Iterable[str], *, error: str) -> int:
        return self._update_many(
            f"UPDATE outbox SET state = 'failed', last_error = ? WHERE message_id = ? AND state IN {_LIVE}",
            [(error, mid) for mid in message_ids],
        )

    def expire(self, now: int) -> list[str]:
        """Give up on live messages whose expires_at is at or before `now`."""
        with self._tx() as conn:
            return [r[0] for r in conn.execute(
                f"UPDATE outbox SET state = 'expired' WHERE state IN {_LIVE} "
                f"AND expires_at IS NOT NULL AND expires_at <= ? RETURNING message_id",
                (now,),
            ).fetchall()]

    def pending_count(self, relationship_id: str) -> int:
        with self._lock:
            return self._conn.execute(
                f"SELECT count(*) FROM outbox {self._live_index} WHERE relationship_id = ? AND state IN {_LIVE}",
                (relationship_id,),
            ).fetchone()[0]

    def pending_after(self, relationship_id: str, after_seq: int, now: int, limit: int) -> list[OutboxEntry]:
        """Live, unexpired messages of one relationship with seq > `after_seq`, in seq
        order: what a connection sends next (spec/12 §12.4 rule 2). Unlike due(), it
        ignores next_attempt_at: a connection is up, so everything unreceipted goes."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_OUT_COLS} FROM outbox INDEXED BY outbox_live WHERE relationship_id = ? AND seq > ? "
                f"AND state IN {_LIVE} AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq LIMIT ?",
                (relationship_id, after_seq, now, limit),
            ).fetchall()
        return [_outbox(r) for r in rows]

    def relationships_with_pending(self) -> list[str]:
        """Relationships that have live outbound messages (the daemon's work list at start)."""
        with self._lock:
            return [r[0] for r in self._conn.execute(
                f"SELECT DISTINCT relationship_id FROM outbox INDEXED BY outbox_due WHERE state IN {_LIVE}")]

    def outbox_counts(self) -> dict[str, int]:
        with self._lock:
            # Settled (acked) rows are not counted: that would walk the whole history.
            live = self._conn.execute(f"SELECT state, count(*) FROM outbox INDEXED BY outbox_due "
                                      f"WHERE state IN {_LIVE} GROUP BY state").fetchall()
            dead = self._conn.execute("SELECT state, count(*) FROM outbox INDEXED BY outbox_dead "
                                      "WHERE state IN ('failed', 'expired') GROUP BY state").fetchall()
            return dict(live + dead)

    def prune_outbox(self, before: int) -> int:
        """Delete finished (acked, failed, expired) messages created before `before`.
        Their final state is copied into the archive first (schema 2)."""
        with self._tx() as conn:
            conn.execute(
                f"UPDATE archive SET state = CASE o.state WHEN 'acked' THEN 'delivered' ELSE o.state END "
                f"FROM outbox o WHERE archive.direction = 'out' AND o.message_id = archive.message_id "
                f"AND o.relationship_id = archive.relationship_id AND o.state NOT IN {_LIVE} "
                f"AND o.created_at < ?", (before,))
            return conn.execute(
                f"DELETE FROM outbox WHERE state NOT IN {_LIVE} AND created_at < ?", (before,)
            ).rowcount

    # --- inbox (hot path) --------------------------------------------------------------

    def record_received_many(self, batch: Sequence[Incoming], now: int, *, keep_payload: bool = True) -> list[bool]:
        """Store received messages in one transaction; result[i] is True when
        batch[i] is new, False when (sender_did, message_id) was seen before (in an
        earlier batch or earlier in this one). Committed on return, so the daemon
        may acknowledge every message of the batch afterwards, duplicates included.

        `keep_payload=False` records the messages as already delivered (no payload):
        the inbox is then only the duplicate filter, for a caller that hands the
        messages over in the same transaction (e.g. into the archive)."""
        if not batch:
            return []
        delivered = 0 if keep_payload else 1
        rows = [(m.relationship_id, m.sender_did, m.message_id, m.thread_id, m.type,
                 m.payload if keep_payload else None, now, delivered) for m in batch]
        with self._tx() as conn:
            for rid in {m.relationship_id for m in batch}:
                if rid is None:
                    continue
                r = conn.execute("SELECT state FROM relationships WHERE id = ?", (rid,)).fetchone()
                if r is None:
                    raise UnknownRelationship(rid)
                if r[0] != "active":
                    raise RelationshipRevoked(rid)
            # New rows get ids above the current maximum (SQLite assigns max+1), so
            # one query after the insert tells which keys were fresh, without a
            # per-row round trip.
            top = conn.execute("SELECT coalesce(max(id), 0) FROM inbox").fetchone()[0]
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO inbox (relationship_id, sender_did, message_id, thread_id, "
                "type, payload, received_at, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            inserted = conn.total_changes - before
            if inserted == len(rows):
                return [True] * len(rows)
            if inserted == 0:
                return [False] * len(rows)
            fresh = set(conn.execute("SELECT sender_did, message_id FROM inbox WHERE id > ?", (top,)))
        result = []
        for r in rows:
            key = (r[1], r[2])
            if key in fresh:
                fresh.discard(key)  # a later copy in the same batch is a duplicate
                result.append(True)
            else:
                result.append(False)
        return result

    def undelivered(self, limit: int) -> list[InboxEntry]:
        """Received messages not yet handed to the application, in arrival order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, relationship_id, sender_did, message_id, thread_id, type, payload, "
                "received_at FROM inbox WHERE delivered = 0 ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [InboxEntry(*r) for r in rows]

    def mark_delivered_many(self, inbox_ids: Iterable[int]) -> int:
        """The application has these messages. Their bodies are dropped (the store is
        a delivery queue, not an archive); the rows stay as duplicate filter."""
        return self._update_many(
            "UPDATE inbox SET delivered = 1, payload = NULL WHERE id = ? AND delivered = 0",
            [(i,) for i in inbox_ids],
        )

    def prune_seen(self, before: int) -> int:
        """Forget delivered messages received before `before`. A copy arriving after
        that is no longer recognised as a duplicate, so `before` must be older than
        the longest time a peer may retransmit (message expiry, clock skew)."""
        with self._tx() as conn:
            return conn.execute(
                "DELETE FROM inbox WHERE delivered = 1 AND received_at < ?", (before,)
            ).rowcount

    # --- archive (schema 2) --------------------------------------------------------------

    def archive_many(self, records: Sequence[ArchiveRecord], now: int) -> list[int]:
        """Keep these plaintext messages; returns their cursors (increasing, in
        record order). The caller archives each message once (the inbox's duplicate
        filter and the outbox's unique ids see to that)."""
        if not records:
            return []
        rows = []
        for r in records:
            if r.direction not in _DIRECTIONS:
                raise StoreError(f"direction is 'in' or 'out', not {r.direction!r}")
            rows.append((r.relationship_id, r.direction, r.message_id, r.type, r.thid, r.pthid, r.seq,
                         ArchiveState(r.state).value, r.created_time, r.expires_time, now, r.plaintext))
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO archive (relationship_id, direction, message_id, type, thid, pthid, seq, state, "
                "created_time, expires_time, archived_at, plaintext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows)
            # AUTOINCREMENT hands out consecutive numbers to the rows of one
            # statement inside one write transaction: the last one tells them all.
            last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'archive'").fetchone()[0]
        first = last - len(rows) + 1
        return list(range(first, last + 1))

    def archived(
        self, *, relationship_id: str | None = None, thid: str | None = None, direction: str | None = None,
        type: str | None = None, after: int | None = None, limit: int = 100,
        exclude_type_prefixes: Sequence[str] = (),
    ) -> list[ArchivedMessage]:
        """Archived messages matching every given filter, by increasing cursor;
        `exclude_type_prefixes` leaves out every type that starts with one of them
        (compared exactly and case-sensitively, unlike LIKE)."""
        sql, args = paged_select(
            f"SELECT {_ARC_COLS} FROM {_ARC_FROM}",
            equal=(("a.relationship_id", relationship_id), ("a.thid", thid), ("a.direction", direction),
                   ("a.type", type)),
            where=[("substr(a.type, 1, ?) != ?", (len(p), p)) for p in exclude_type_prefixes],
            order="a.cursor", after=after, limit=limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [_archived(r) for r in rows]

    def get_archived(self, message_id: str, *, relationship_id: str | None = None,
                     direction: str | None = None) -> ArchivedMessage | None:
        sql, args = f"SELECT {_ARC_COLS} FROM {_ARC_FROM} WHERE a.message_id = ?", [message_id]
        if relationship_id is not None:
            sql += " AND a.relationship_id = ?"
            args.append(relationship_id)
        if direction is not None:
            sql += " AND a.direction = ?"
            args.append(direction)
        with self._lock:
            row = self._conn.execute(sql + " ORDER BY a.cursor LIMIT 1", args).fetchone()
        return None if row is None else _archived(row)

    # --- webhook queue (schema 3, spec/16) -----------------------------------------------

    WEBHOOK_CURSOR_KEY = "webhooks.archive_cursor"

    def webhook_enqueue_many(self, events: Sequence[WebhookEvent], now: int, *,
                             archive_cursor: int | None = None) -> list[int]:
        """Queue events, each for the webhooks it names, in ONE transaction; returns
        their event ids (increasing, in `events` order). `archive_cursor`, when given,
        is stored in the same transaction as the settings row WEBHOOK_CURSOR_KEY: the
        last archive cursor whose message.received is queued (the catch-up mark)."""
        ids: list[int] = []
        with self._tx() as conn:
            if events:
                conn.executemany("INSERT INTO webhook_events (payload, created_at) VALUES (?, ?)",
                                 [(bytes(e.payload), now) for e in events])
                # AUTOINCREMENT numbers the rows of one statement consecutively (as in archive_many).
                last = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'webhook_events'").fetchone()[0]
                ids = list(range(last - len(events) + 1, last + 1))
                conn.executemany("INSERT INTO webhook_queue (webhook, event_id) VALUES (?, ?)",
                                 [(w, i) for e, i in zip(events, ids) for w in e.webhooks])
            if archive_cursor is not None:
                conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (self.WEBHOOK_CURSOR_KEY, archive_cursor))
        return ids

    def archive_cursor(self) -> int:
        """The highest archive cursor handed out so far (0: none)."""
        with self._lock:
            row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'archive'").fetchone()
        return 0 if row is None else row[0]

    def webhook_pending(self, webhook: str, limit: int) -> list[WebhookDelivery]:
        """The first `limit` pending events of one webhook, in event id order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT q.webhook, q.event_id, e.payload, e.created_at, q.attempts, q.next_attempt_ms, "
                "q.last_error FROM webhook_queue q JOIN webhook_events e ON e.id = q.event_id "
                "WHERE q.webhook = ? AND q.state = 'pending' ORDER BY q.event_id LIMIT ?",
                (webhook, limit)).fetchall()
        return [WebhookDelivery(*r) for r in rows]

    def webhook_delivered_many(self, webhook: str, event_ids: Iterable[int]) -> int:
        """The receiver took these events: drop their rows, and every event no other
        webhook still waits for. Returns how many queue rows went."""
        ids = [(i,) for i in event_ids]
        if not ids:
            return 0
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM webhook_queue WHERE webhook = ? AND event_id = ?",
                             [(webhook, i) for (i,) in ids])
            gone = conn.total_changes - before
            conn.executemany("DELETE FROM webhook_events WHERE id = ?1 AND NOT EXISTS "
                             "(SELECT 1 FROM webhook_queue WHERE event_id = ?1)", ids)
        return gone

    def webhook_retry(self, webhook: str, event_id: int, *, next_attempt_ms: int, error: str) -> int:
        """An attempt failed: count it and note when the next one is due."""
        return self._update_many(
            "UPDATE webhook_queue SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ? "
            "WHERE webhook = ? AND event_id = ? AND state = 'pending'",
            [(next_attempt_ms, error, webhook, event_id)])

    def webhook_fail_older(self, webhook: str, created_before: int, *, error: str) -> int:
        """Give up on this webhook's pending events created before `created_before`."""
        return self._update_many(
            "UPDATE webhook_queue SET state = 'failed', last_error = ? WHERE webhook = ? AND state = 'pending' "
            "AND event_id IN (SELECT id FROM webhook_events WHERE created_at < ?)",
            [(error, webhook, created_before)])

    def webhook_prune(self, keep: Iterable[str], failed_before: int) -> int:
        """Drop the rows of webhooks not in `keep` (no longer configured), failed rows
        of events created before `failed_before`, then events nobody waits for.
        Returns how many queue rows went."""
        keep = list(keep)
        with self._tx() as conn:
            before = conn.total_changes
            marks = ", ".join("?" * len(keep))
            conn.execute(f"DELETE FROM webhook_queue WHERE webhook NOT IN ({marks})", keep)
            conn.execute("DELETE FROM webhook_queue WHERE state = 'failed' AND event_id IN "
                         "(SELECT id FROM webhook_events WHERE created_at < ?)", (failed_before,))
            gone = conn.total_changes - before
            conn.execute("DELETE FROM webhook_events WHERE NOT EXISTS "
                         "(SELECT 1 FROM webhook_queue q WHERE q.event_id = webhook_events.id)")
        return gone

    def webhook_counts(self) -> dict[str, dict[str, int]]:
        """{webhook: {"pending": n, "failed": n}} (webhooks with rows only)."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for webhook, state, n in self._conn.execute(
                    "SELECT webhook, state, count(*) FROM webhook_queue GROUP BY webhook, state"):
                out.setdefault(webhook, {"pending": 0, "failed": 0})[state] = n
        return out
