-- The CRM core: contacts, accounts (with their sites as JSON), the links between them,
-- deals and their stage history, and server-wide secrets. Every CRM row carries its
-- organization and environment; lists walk (org_id, env, created_at, id) by keyset and
-- filter on updated_at for incremental sync. `version` grows by one on every change
-- (optimistic concurrency, ETags). Times are Unix milliseconds (UTC).

CREATE TABLE contacts (
    id          TEXT    NOT NULL,
    org_id      TEXT    NOT NULL,
    env         TEXT    NOT NULL,
    first_name  TEXT    NOT NULL,
    last_name   TEXT    NOT NULL,
    email       TEXT,
    phone       TEXT,
    title       TEXT,
    notes       TEXT,
    version     BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    CONSTRAINT contacts_pk PRIMARY KEY (id),
    CONSTRAINT contacts_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT contacts_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT contacts_email_uq UNIQUE (org_id, env, email)
);
CREATE INDEX contacts_org_id_idx ON contacts (org_id, env, created_at, id);
CREATE INDEX contacts_updated_at_idx ON contacts (org_id, env, updated_at);

CREATE TABLE accounts (
    id                  TEXT    NOT NULL,
    org_id              TEXT    NOT NULL,
    env                 TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    domain              TEXT,
    industry            TEXT,
    lifecycle           TEXT    NOT NULL,
    sites               TEXT    NOT NULL,
    primary_contact_id  TEXT,
    seats               BIGINT,
    notes               TEXT,
    version             BIGINT  NOT NULL,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    CONSTRAINT accounts_pk PRIMARY KEY (id),
    CONSTRAINT accounts_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT accounts_primary_contact_fk FOREIGN KEY (primary_contact_id) REFERENCES contacts (id),
    CONSTRAINT accounts_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT accounts_lifecycle_ck CHECK (lifecycle IN ('LEAD', 'ONBOARDING', 'ACTIVE', 'AT_RISK', 'CHURNED')),
    CONSTRAINT accounts_seats_ck CHECK (seats IS NULL OR seats >= 0),
    CONSTRAINT accounts_domain_uq UNIQUE (org_id, env, domain)
);
CREATE INDEX accounts_org_id_idx ON accounts (org_id, env, created_at, id);
CREATE INDEX accounts_updated_at_idx ON accounts (org_id, env, updated_at);
CREATE INDEX accounts_lifecycle_idx ON accounts (org_id, env, lifecycle, created_at, id);
CREATE INDEX accounts_industry_idx ON accounts (org_id, env, industry, created_at, id);

CREATE TABLE account_contacts (
    contact_id  TEXT    NOT NULL,
    account_id  TEXT    NOT NULL,
    org_id      TEXT    NOT NULL,
    env         TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    CONSTRAINT account_contacts_pk PRIMARY KEY (contact_id, account_id),
    CONSTRAINT account_contacts_contact_fk FOREIGN KEY (contact_id) REFERENCES contacts (id),
    CONSTRAINT account_contacts_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT account_contacts_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT account_contacts_role_ck
        CHECK (role IN ('OWNER', 'DECISION_MAKER', 'BILLING', 'TECHNICAL', 'END_USER', 'OTHER'))
);
CREATE INDEX account_contacts_account_id_idx ON account_contacts (account_id, contact_id);

CREATE TABLE deals (
    id                   TEXT    NOT NULL,
    org_id               TEXT    NOT NULL,
    env                  TEXT    NOT NULL,
    account_id           TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    stage                TEXT    NOT NULL,
    amount               BIGINT  NOT NULL,
    currency             TEXT    NOT NULL,
    expected_close_date  TEXT,
    closed_at            BIGINT,
    outcome_reason       TEXT,
    notes                TEXT,
    version              BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    CONSTRAINT deals_pk PRIMARY KEY (id),
    CONSTRAINT deals_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT deals_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT deals_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT deals_stage_ck
        CHECK (stage IN ('DISCOVERY', 'ASSESSMENT', 'PROPOSAL', 'NEGOTIATION', 'WON', 'LOST')),
    CONSTRAINT deals_amount_ck CHECK (amount >= 0)
);
CREATE INDEX deals_org_id_idx ON deals (org_id, env, created_at, id);
CREATE INDEX deals_updated_at_idx ON deals (org_id, env, updated_at);
CREATE INDEX deals_stage_idx ON deals (org_id, env, stage, created_at, id);
CREATE INDEX deals_account_id_idx ON deals (account_id, created_at, id);

CREATE TABLE deal_stage_changes (
    id            TEXT    NOT NULL,
    org_id        TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    deal_id       TEXT    NOT NULL,
    -- The deal's version this change produced: orders the history within one millisecond.
    deal_version  BIGINT  NOT NULL,
    from_stage    TEXT,
    to_stage      TEXT    NOT NULL,
    reason        TEXT,
    changed_by    TEXT    NOT NULL,
    changed_at    BIGINT  NOT NULL,
    CONSTRAINT deal_stage_changes_pk PRIMARY KEY (id),
    CONSTRAINT deal_stage_changes_deal_fk FOREIGN KEY (deal_id) REFERENCES deals (id),
    CONSTRAINT deal_stage_changes_env_ck CHECK (env IN ('live', 'test'))
);
CREATE INDEX deal_stage_changes_deal_id_idx ON deal_stage_changes (deal_id, deal_version);

-- Secrets every instance must share, generated once (e.g. the key that signs cursors).
CREATE TABLE server_secrets (
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    CONSTRAINT server_secrets_pk PRIMARY KEY (name)
);
