-- Webhooks: endpoints per organization and environment, one delivery (message) per
-- event and subscribed endpoint, and every attempt to deliver it.
--
-- `secret` signs deliveries, so it is kept as issued (it cannot be a hash); during a
-- rotation `previous_secret` keeps signing alongside it until `previous_expires_at`.
-- A message is due when `status = 'pending'` and `next_attempt_at` has passed; a worker
-- claims it by moving `next_attempt_at` past the delivery timeout (a lease), so a
-- crashed worker's claim lapses and another instance delivers it.

CREATE TABLE webhook_endpoints (
    id                   TEXT    NOT NULL,
    org_id               TEXT    NOT NULL,
    env                  TEXT    NOT NULL,
    url                  TEXT    NOT NULL,
    description          TEXT,
    events               TEXT    NOT NULL,
    secret               TEXT    NOT NULL,
    previous_secret      TEXT,
    previous_expires_at  BIGINT,
    enabled              BIGINT  NOT NULL,
    disabled_reason      TEXT,
    failing_since        BIGINT,
    version              BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    CONSTRAINT webhook_endpoints_pk PRIMARY KEY (id),
    CONSTRAINT webhook_endpoints_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT webhook_endpoints_env_ck CHECK (env IN ('live', 'test'))
);
CREATE INDEX webhook_endpoints_org_id_idx ON webhook_endpoints (org_id, env, created_at, id);

CREATE TABLE webhook_messages (
    id               TEXT    NOT NULL,
    org_id           TEXT    NOT NULL,
    env              TEXT    NOT NULL,
    endpoint_id      TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL,
    next_attempt_at  BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    CONSTRAINT webhook_messages_pk PRIMARY KEY (id),
    CONSTRAINT webhook_messages_endpoint_fk FOREIGN KEY (endpoint_id) REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    CONSTRAINT webhook_messages_event_fk FOREIGN KEY (event_id) REFERENCES events (id),
    CONSTRAINT webhook_messages_event_uq UNIQUE (endpoint_id, event_id),
    CONSTRAINT webhook_messages_status_ck CHECK (status IN ('pending', 'delivered', 'failed'))
);
CREATE INDEX webhook_messages_due_idx ON webhook_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_messages_endpoint_idx ON webhook_messages (endpoint_id, created_at, id);

CREATE TABLE webhook_attempts (
    id                TEXT    NOT NULL,
    message_id        TEXT    NOT NULL,
    endpoint_id       TEXT    NOT NULL,
    attempted_at      BIGINT  NOT NULL,
    status_code       BIGINT,
    error             TEXT,
    latency_ms        BIGINT  NOT NULL,
    response_snippet  TEXT,
    created_at        BIGINT  NOT NULL,
    CONSTRAINT webhook_attempts_pk PRIMARY KEY (id),
    CONSTRAINT webhook_attempts_message_fk FOREIGN KEY (message_id) REFERENCES webhook_messages (id) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_message_idx ON webhook_attempts (message_id, created_at, id);
