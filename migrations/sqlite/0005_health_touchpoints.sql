-- Account health and touchpoints. `health_signals` keeps the latest value of each
-- (source, name) signal of an account; `health_scores` the score computed from them
-- (one row per account that has ever had a signal); `health_score_days` one point per
-- UTC day on which the score was computed (the API carries it forward over days
-- without a point). `touchpoints` are interactions logged by external tools; a
-- (source, external_id) pair identifies one at most once. Times are Unix ms (UTC);
-- `day` is the Unix ms of the day's midnight (UTC).

CREATE TABLE health_signals (
    id           TEXT              NOT NULL,
    org_id       TEXT              NOT NULL,
    env          TEXT              NOT NULL,
    account_id   TEXT              NOT NULL,
    source       TEXT              NOT NULL,
    name         TEXT              NOT NULL,
    value        DOUBLE PRECISION  NOT NULL,
    weight       DOUBLE PRECISION  NOT NULL,
    observed_at  BIGINT            NOT NULL,
    created_at   BIGINT            NOT NULL,
    updated_at   BIGINT            NOT NULL,
    CONSTRAINT health_signals_pk PRIMARY KEY (id),
    CONSTRAINT health_signals_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT health_signals_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT health_signals_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT health_signals_value_ck CHECK (value >= 0 AND value <= 100),
    CONSTRAINT health_signals_weight_ck CHECK (weight > 0 AND weight <= 10),
    CONSTRAINT health_signals_key_uq UNIQUE (org_id, env, account_id, source, name)
);

CREATE TABLE health_scores (
    account_id   TEXT    NOT NULL,
    org_id       TEXT    NOT NULL,
    env          TEXT    NOT NULL,
    score        BIGINT,
    computed_at  BIGINT  NOT NULL,
    version      BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    CONSTRAINT health_scores_pk PRIMARY KEY (account_id),
    CONSTRAINT health_scores_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT health_scores_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT health_scores_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT health_scores_score_ck CHECK (score IS NULL OR (score >= 0 AND score <= 100))
);
CREATE INDEX health_scores_org_id_idx ON health_scores (org_id, env, score);
CREATE INDEX health_scores_updated_at_idx ON health_scores (org_id, env, updated_at);

CREATE TABLE health_score_days (
    account_id  TEXT    NOT NULL,
    day         BIGINT  NOT NULL,
    org_id      TEXT    NOT NULL,
    env         TEXT    NOT NULL,
    score       BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    CONSTRAINT health_score_days_pk PRIMARY KEY (account_id, day),
    CONSTRAINT health_score_days_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT health_score_days_env_ck CHECK (env IN ('live', 'test'))
);

CREATE TABLE touchpoints (
    id           TEXT    NOT NULL,
    org_id       TEXT    NOT NULL,
    env          TEXT    NOT NULL,
    account_id   TEXT    NOT NULL,
    contact_id   TEXT,
    type         TEXT    NOT NULL,
    occurred_at  BIGINT  NOT NULL,
    subject      TEXT    NOT NULL,
    summary      TEXT,
    source       TEXT,
    external_id  TEXT,
    agenda       TEXT,
    outcome      TEXT,
    version      BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    CONSTRAINT touchpoints_pk PRIMARY KEY (id),
    CONSTRAINT touchpoints_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT touchpoints_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT touchpoints_contact_fk FOREIGN KEY (contact_id) REFERENCES contacts (id),
    CONSTRAINT touchpoints_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT touchpoints_type_ck CHECK (type IN ('CALL', 'EMAIL', 'MEETING', 'TICKET', 'QBR')),
    CONSTRAINT touchpoints_qbr_ck CHECK ((type = 'QBR') = (agenda IS NOT NULL AND outcome IS NOT NULL)),
    CONSTRAINT touchpoints_external_id_ck CHECK (external_id IS NULL OR source IS NOT NULL),
    CONSTRAINT touchpoints_external_id_uq UNIQUE (org_id, env, source, external_id)
);
CREATE INDEX touchpoints_org_id_idx ON touchpoints (org_id, env, created_at, id);
CREATE INDEX touchpoints_updated_at_idx ON touchpoints (org_id, env, updated_at);
CREATE INDEX touchpoints_account_id_idx ON touchpoints (account_id, created_at, id);
