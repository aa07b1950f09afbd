-- Schema version 1 of the p2p store.
--
-- Rules for migration files: the 4-digit number in the name is the schema version
-- the file produces; files are applied in order, each in its own transaction that
-- also sets PRAGMA user_version, so they must not contain BEGIN/COMMIT themselves.
-- Times are integer seconds chosen by the caller (the store has no clock).

-- Small key/value pairs the daemon wants to keep (endpoint, options, ...).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value ANY
) STRICT;

-- The agent's own identity: one row. `secret` is an opaque blob (the key set,
-- usually sealed by p2p.store.keyfile); the DID is kept beside it in clear so the
-- daemon can show who it is without unlocking.
CREATE TABLE identity (
    slot       INTEGER PRIMARY KEY CHECK (slot = 1),
    did        TEXT    NOT NULL,
    secret     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- One row per pairwise relationship. A revoked relationship keeps its row (so
-- later traffic from that DID is recognised and refused) but loses its key
-- material; the CHECK makes "revoked with keys still present" unrepresentable.
CREATE TABLE relationships (
    id            TEXT    PRIMARY KEY,
    our_did       TEXT    NOT NULL UNIQUE,
    their_did     TEXT    NOT NULL,
    their_ed25519 BLOB    NOT NULL,
    their_x25519  BLOB    NOT NULL,
    endpoint      TEXT,
    label         TEXT    NOT NULL DEFAULT '',
    state         TEXT    NOT NULL CHECK (state IN ('active', 'revoked')),
    our_secret    BLOB,
    out_seq       INTEGER NOT NULL DEFAULT 0,   -- last sequence number handed out
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK (state = 'active' OR our_secret IS NULL),
    CHECK (state = 'revoked' OR our_secret IS NOT NULL)
) STRICT;

CREATE INDEX relationships_their_did ON relationships (their_did);

CREATE TABLE invitations (
    id         TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('one-time', 'multi-use')),
    blob       BLOB    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('open', 'used', 'revoked')),
    use_count  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER           -- NULL: never expires
) STRICT;

-- Outbound messages awaiting (or past) delivery. `seq` is per relationship,
-- strictly increasing in enqueue order; the receiver uses it to restore order.
-- `payload` is dropped (NULL) once the peer acknowledged the message.
CREATE TABLE outbox (
    message_id      TEXT    PRIMARY KEY,
    relationship_id TEXT    NOT NULL REFERENCES relationships (id),
    thread_id       TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    payload         BLOB,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sent', 'acked', 'failed', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    expires_at      INTEGER,         -- NULL: retried until acked or failed
    created_at      INTEGER NOT NULL,
    last_error      TEXT,
    UNIQUE (relationship_id, seq)
) STRICT;

-- Only live messages are indexed by due time, so the index stays small however
-- long the history of acknowledged messages grows.
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE state IN ('queued', 'sent');

-- Received messages. The row id is the arrival order. UNIQUE (sender_did,
-- message_id) is the duplicate filter: the row outlives delivery (payload set to
-- NULL) so a retransmission is still recognised, until prune_seen() removes it.
CREATE TABLE inbox (
    id              INTEGER PRIMARY KEY,
    relationship_id TEXT    REFERENCES relationships (id),
    sender_did      TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    thread_id       TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    payload         BLOB,
    received_at     INTEGER NOT NULL,
    delivered       INTEGER NOT NULL DEFAULT 0 CHECK (delivered IN (0, 1)),
    UNIQUE (sender_did, message_id)
) STRICT;

CREATE INDEX inbox_undelivered ON inbox (id) WHERE delivered = 0;
