-- Schema version 3: the durable webhook queue (spec/20-webhooks.md).
--
-- An agent event (message.received, message.state, ...) that at least one configured
-- webhook wants is stored once in `webhook_events`; each webhook that wants it gets a
-- row in `webhook_queue`. A row leaves the queue when its receiver answered 2xx; an
-- event leaves `webhook_events` with its last queue row.

-- `id` is the event id receivers see (P2P-Webhook-Id and "event_id" in the body).
-- AUTOINCREMENT: it never goes back, even after rows are deleted, so a receiver may
-- dedupe by id and rely on later events having larger ids.
-- `payload` is the event as one JSON object (UTF-8) without its event_id member; the
-- POST body is that object with "event_id" inserted as its first member.
CREATE TABLE webhook_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    payload    BLOB    NOT NULL,
    created_at INTEGER NOT NULL            -- seconds; the give-up clock starts here
) STRICT;

-- One row per (webhook, event) still to deliver, or given up on ('failed', kept a
-- while for inspection). A webhook is named by its configured `name`. Each webhook
-- delivers its pending rows in event_id order: the primary key is that order.
CREATE TABLE webhook_queue (
    webhook         TEXT    NOT NULL,
    event_id        INTEGER NOT NULL REFERENCES webhook_events (id),
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,   -- unix milliseconds; 0: due now
    last_error      TEXT,
    PRIMARY KEY (webhook, event_id)
) STRICT, WITHOUT ROWID;

-- "Is this event still wanted by any webhook?" when a delivered row is deleted.
CREATE INDEX webhook_queue_event ON webhook_queue (event_id);
