-- The audit log on SQLite, in a database file of its own beside the main one
-- (`breadbox.audit.db` beside `breadbox.db`): its writer commits a batch every 100 ms
-- under load, and in the main file each of those commits ended the snapshots that
-- the request threads' inline reads keep between reads, and grew the WAL that every
-- read searches. The table is the main file's `audit_log` of 0013, whose rows the
-- server moves here when it starts (`Db::migrate`).
CREATE TABLE audit_log (
    org_id         TEXT    NOT NULL,
    env            TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    id             TEXT    NOT NULL,
    request_id     TEXT    NOT NULL,
    credential_id  TEXT,
    method         TEXT    NOT NULL,
    route          TEXT    NOT NULL,
    status         BIGINT  NOT NULL,
    latency_us     BIGINT  NOT NULL,
    client_ip      TEXT,
    CONSTRAINT audit_log_pk PRIMARY KEY (org_id, env, created_at, id)
) WITHOUT ROWID;
