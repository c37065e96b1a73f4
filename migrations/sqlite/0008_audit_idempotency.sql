-- The audit log: one row per call under /api/v1, refused ones included, written in
-- batches off the request path. `org_id`, `env` and `credential_id` are NULL when the
-- caller was not authenticated (such rows are kept for operators, not listed by the API).
-- No foreign key to organizations: an audit row must never make a write fail.

CREATE TABLE audit_log (
    id             TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    request_id     TEXT    NOT NULL,
    org_id         TEXT,
    env            TEXT,
    credential_id  TEXT,
    method         TEXT    NOT NULL,
    route          TEXT    NOT NULL,
    status         BIGINT  NOT NULL,
    latency_us     BIGINT  NOT NULL,
    client_ip      TEXT,
    CONSTRAINT audit_log_pk PRIMARY KEY (id)
);
CREATE INDEX audit_log_org_id_idx ON audit_log (org_id, env, created_at, id);

-- Idempotency keys, per credential (API key id or OAuth client id). A row is claimed
-- (`state` 'running') when a POST with the key arrives and completed ('done') with the
-- response to replay; 5xx and 429 answers release it. Rows older than 24 h are deleted.

CREATE TABLE idempotency_keys (
    credential_id  TEXT    NOT NULL,
    idem_key       TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    status         BIGINT,
    headers        TEXT,
    body           TEXT,
    created_at     BIGINT  NOT NULL,
    CONSTRAINT idempotency_keys_pk PRIMARY KEY (credential_id, idem_key),
    CONSTRAINT idempotency_keys_state_ck CHECK (state IN ('running', 'done'))
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
