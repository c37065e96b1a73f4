-- On SQLite the dispatcher no longer stamps each event `dispatched_at` (rewriting the
-- row and its entry in the pending index, as costly as writing the event): it keeps
-- one cursor, the last rowid it fanned out. SQLite has one writer at a time, so rowids
-- are taken in commit order, and nothing deletes events, so they only grow: every
-- event after the cursor is undispatched. `dispatched_at` is still set on the events
-- written for one endpoint only (test events), which the dispatcher passes over.
-- PostgreSQL keeps the stamp and `FOR UPDATE SKIP LOCKED` for concurrent instances.

CREATE TABLE outbox_cursor (
    id          INTEGER NOT NULL,
    last_rowid  BIGINT  NOT NULL,
    CONSTRAINT outbox_cursor_pk PRIMARY KEY (id),
    CONSTRAINT outbox_cursor_one_ck CHECK (id = 1)
);

-- Undispatched events of an older version are fanned out again from the oldest one on
-- (an event in between already fanned out adds nothing: messages are unique per
-- endpoint and event).
INSERT INTO outbox_cursor (id, last_rowid) VALUES (1, COALESCE(
    (SELECT MIN(rowid) - 1 FROM events WHERE dispatched_at IS NULL),
    (SELECT MAX(rowid) FROM events),
    0
));

DROP INDEX events_pending_idx;
