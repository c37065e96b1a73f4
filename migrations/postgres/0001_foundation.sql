-- Organizations, credentials and signing keys. Times are Unix milliseconds (UTC).
CREATE TABLE organizations (
    id          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    plan        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    CONSTRAINT organizations_pk PRIMARY KEY (id),
    CONSTRAINT organizations_plan_ck CHECK (plan IN ('starter', 'growth', 'scale', 'pro'))
);

CREATE TABLE api_keys (
    id            TEXT    NOT NULL,
    org_id        TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    prefix        TEXT    NOT NULL,
    key_hash      TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT,
    replaced_by   TEXT,
    CONSTRAINT api_keys_pk PRIMARY KEY (id),
    CONSTRAINT api_keys_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT api_keys_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT api_keys_key_hash_uq UNIQUE (key_hash)
);
CREATE INDEX api_keys_org_id_idx ON api_keys (org_id, created_at);

CREATE TABLE oauth_clients (
    id              TEXT    NOT NULL,
    org_id          TEXT    NOT NULL,
    env             TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    secret_hash     TEXT    NOT NULL,
    secret_version  BIGINT  NOT NULL,
    scopes          TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    disabled_at     BIGINT,
    last_used_at    BIGINT,
    CONSTRAINT oauth_clients_pk PRIMARY KEY (id),
    CONSTRAINT oauth_clients_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT oauth_clients_env_ck CHECK (env IN ('live', 'test'))
);
CREATE INDEX oauth_clients_org_id_idx ON oauth_clients (org_id, created_at);

CREATE TABLE signing_keys (
    kid          TEXT    NOT NULL,
    alg          TEXT    NOT NULL,
    private_der  TEXT    NOT NULL,
    public_key   TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    retired_at   BIGINT,
    CONSTRAINT signing_keys_pk PRIMARY KEY (kid)
);

-- The change feed every instance polls: revoked tokens, keys, clients, signing-key rotations.
CREATE TABLE revocations (
    id          TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT,
    CONSTRAINT revocations_pk PRIMARY KEY (id),
    CONSTRAINT revocations_kind_ck CHECK (kind IN ('jti', 'api_key', 'client', 'signing_keys'))
);
CREATE INDEX revocations_created_at_idx ON revocations (created_at);
