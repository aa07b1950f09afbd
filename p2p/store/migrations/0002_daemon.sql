-- Schema version 2: what the daemon keeps beyond the delivery queues.
--
-- 1. The connect/1.0 facts of a relationship (spec/10): which side we are, the label
--    the peer told us, and whether an inviter still waits for the invitee's
--    `complete` (setup = 'responded'; NULL once the setup is over).
-- 2. The archive: every plaintext message in and out of a relationship, with its
--    state (for an outbound message: its outbox row's, while there is one). The inbox and outbox are queues that drop payloads once a message is
--    settled; the archive is what the application reads (messages, threads).

ALTER TABLE relationships ADD COLUMN role TEXT NOT NULL DEFAULT 'invitee'
    CHECK (role IN ('inviter', 'invitee'));
ALTER TABLE relationships ADD COLUMN their_label TEXT NOT NULL DEFAULT '';
ALTER TABLE relationships ADD COLUMN setup TEXT CHECK (setup IS NULL OR setup = 'responded');
ALTER TABLE relationships ADD COLUMN thid TEXT;           -- the connect thread (the request's id)
ALTER TABLE relationships ADD COLUMN invitation_id TEXT;  -- the invitation it came from

-- A relationship's live messages in seq order: what a connection sends next
-- (pending_after) and how many are left (pending_count), without walking the
-- acknowledged history. Rows leave it when they are settled.
CREATE INDEX outbox_live ON outbox (relationship_id, seq) WHERE state IN ('queued', 'sent');
-- Given-up messages, for counting them without a scan (they are rare).
CREATE INDEX outbox_dead ON outbox (state) WHERE state IN ('failed', 'expired');

-- `cursor` is AUTOINCREMENT so it never goes back, even after rows are deleted:
-- the application pages with "after <cursor>" and must never see a reused number.
CREATE TABLE archive (
    cursor          INTEGER PRIMARY KEY AUTOINCREMENT,
    relationship_id TEXT    NOT NULL REFERENCES relationships (id),
    direction       TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    message_id      TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    thid            TEXT    NOT NULL,
    pthid           TEXT,
    seq             INTEGER,
    state           TEXT    NOT NULL
                    CHECK (state IN ('queued', 'sent', 'delivered', 'failed', 'expired', 'received')),
    created_time    INTEGER,
    expires_time    INTEGER,
    archived_at     INTEGER NOT NULL,
    plaintext       BLOB    NOT NULL
) STRICT;

-- Message ids are unique per direction and relationship already (the inbox's
-- duplicate filter, the outbox's primary key), so this index only finds them.
CREATE INDEX archive_message ON archive (message_id);
CREATE INDEX archive_thread ON archive (thid, cursor);
CREATE INDEX archive_relationship ON archive (relationship_id, cursor);

-- An outbound message's delivery state lives in its outbox row while that row
-- exists: reads join it (see SQLiteStore.archived), so settling a message costs
-- no archive write on the hot path. prune_outbox copies the final state into
-- archive.state before it deletes the outbox row.

