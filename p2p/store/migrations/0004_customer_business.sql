-- Schema version 4: the customer-business protocols (spec/16-19) and customer control.
--
-- Each protocol's daemon side (p2p/services/) keeps its own tables below; its store
-- module (p2p/store/<protocol>.py) is the only code that reads or writes them.
-- Ids a peer chooses (ticket and agreement threads, record ids) are unique only
-- per relationship or issuer, so their keys include that.

-- The invitee learns the inviter's agent DID from the invitation: the issuer of
-- ownership records (spec/19 §19.2). NULL where we were the inviter.
ALTER TABLE relationships ADD COLUMN their_agent_did TEXT;
-- Customer control (spec/13): a muted relationship's messages are kept and shown,
-- without an alert.
ALTER TABLE relationships ADD COLUMN muted INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1));
-- spec/17 §17.8 per relationship; NULL: the [terms] `require` default of the config.
ALTER TABLE relationships ADD COLUMN require_agreement INTEGER CHECK (require_agreement IN (0, 1));

-- A protocol's per-relationship state as one deterministic CBOR map (e.g. the
-- customer's notification Subscriptions, the business's Audience mirror).
CREATE TABLE protocol_state (
    relationship_id TEXT    NOT NULL REFERENCES relationships (id),
    protocol        TEXT    NOT NULL,
    state           BLOB    NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (relationship_id, protocol)
) STRICT, WITHOUT ROWID;

-- notifications/1.0: each notify, on the business's side one it built, on the
-- customer's side one its agent accepted. Business side: its status is the outbox's
-- (queued/sent/delivered/failed/expired) unless the customer's agent refused it
-- (`refused`, a problem-report code: failed) or read it (`read_at`: read). The
-- customer's side keeps when the customer read it and the quick reply it chose.
-- A notify's id is unique per sender only: the key includes the relationship.
CREATE TABLE notifications (
    message_id      TEXT    NOT NULL,
    relationship_id TEXT    NOT NULL REFERENCES relationships (id),
    topic           TEXT    NOT NULL,
    broadcast_id    TEXT,
    created_at      INTEGER NOT NULL,
    read_at         INTEGER,
    refused         TEXT,
    action          TEXT,
    action_at       INTEGER,
    PRIMARY KEY (message_id, relationship_id)
) STRICT;
-- A broadcast's recipients page by relationship id (see broadcast_skips).
CREATE INDEX notifications_broadcast ON notifications (broadcast_id, relationship_id)
    WHERE broadcast_id IS NOT NULL;
CREATE INDEX notifications_relationship ON notifications (relationship_id, created_at);
CREATE INDEX notifications_topic ON notifications (topic, created_at);

-- One API call to every subscriber of a topic; per-recipient outcomes are the
-- notifications rows with this broadcast_id, plus the skipped relationships.
CREATE TABLE broadcasts (
    id          TEXT    PRIMARY KEY,
    topic       TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    recipients  INTEGER NOT NULL,
    skipped     INTEGER NOT NULL
) STRICT;
CREATE TABLE broadcast_skips (
    broadcast_id    TEXT NOT NULL REFERENCES broadcasts (id),
    relationship_id TEXT NOT NULL,
    reason          TEXT NOT NULL,
    PRIMARY KEY (broadcast_id, relationship_id)
) STRICT, WITHOUT ROWID;

-- terms/1.0: one row per agreement thread (the proffer's id), either role.
CREATE TABLE agreements (
    relationship_id TEXT    NOT NULL REFERENCES relationships (id),
    id              TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('customer', 'business')),
    state           TEXT    NOT NULL,
    payload         BLOB,
    signature       BLOB,
    record          BLOB,
    hash            BLOB,
    reason          TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (relationship_id, id)
) STRICT;
-- GET /v1/agreements/{id} without ?relationship= (ids are unique per relationship only).
CREATE INDEX agreements_id ON agreements (id);

-- support/1.0: one row per ticket (the open message's id); the history is the
-- archive's thread, this row is its summary for listing and searching. `withdrawn`
-- lists (JSON array) our messages the peer refused (spec/18 §18.2): the archive keeps
-- them, the ticket's history does not. `revision` counts committed changes, so an
-- in-memory copy of the ticket can tell whether it is still current.
CREATE TABLE tickets (
    relationship_id TEXT    NOT NULL REFERENCES relationships (id),
    id              TEXT    NOT NULL,
    opened_by       TEXT    NOT NULL CHECK (opened_by IN ('customer', 'business')),
    state           TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    category        TEXT,
    priority        TEXT,
    assignee        TEXT,
    rating          INTEGER,
    rating_comment  TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    withdrawn       TEXT,
    revision        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (relationship_id, id)
) STRICT;
CREATE INDEX tickets_state ON tickets (state, updated_at);
CREATE INDEX tickets_id ON tickets (id);

-- ownership/1.0: records we issued (side 'issuer') or hold (side 'owner').
-- relationship_id: the owner's relationship with the issuer (either side); the signed
-- record is the authority, the other columns are its fields for listing and routing.
-- message_id: the `record` message that delivered it (the issuer activates the record
-- when it is receipted). transfer_request: the pending transfer-request's id (its
-- thread); consent: the owner's signed consent to the transfer (kept as proof).
CREATE TABLE ownership_records (
    side             TEXT    NOT NULL CHECK (side IN ('issuer', 'owner')),
    issuer           TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    relationship_id  TEXT    REFERENCES relationships (id),
    model            TEXT    NOT NULL,
    serial           TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    purchased        TEXT    NOT NULL,
    warranty_end     TEXT    NOT NULL,
    issued_time      INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    pending_owner    TEXT,
    previous         TEXT,
    message_id       TEXT,
    transfer_request TEXT,
    consent          BLOB,
    reason           TEXT,
    signed           BLOB    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (side, issuer, id)
) STRICT;
CREATE INDEX ownership_product ON ownership_records (model, serial);
CREATE INDEX ownership_relationship ON ownership_records (relationship_id);
