-- The outbox of webhook events: a row is written in the same transaction as the change
-- that causes it, so an event exists exactly when its change committed. `data` is the
-- resource as the API returns it (JSON text), frozen at that moment. The webhook
-- dispatcher fans undispatched events out to subscribed endpoints and stamps
-- `dispatched_at`.

CREATE TABLE events (
    id             TEXT    NOT NULL,
    org_id         TEXT    NOT NULL,
    env            TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    data           TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    dispatched_at  BIGINT,
    CONSTRAINT events_pk PRIMARY KEY (id),
    CONSTRAINT events_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT events_env_ck CHECK (env IN ('live', 'test'))
);
CREATE INDEX events_pending_idx ON events (created_at, id) WHERE dispatched_at IS NULL;
CREATE INDEX events_org_id_idx ON events (org_id, env, created_at, id);
