-- Contracts (created by operators, read by integrators), their service lines and
-- amendments; the expiry notices already sent; reconciliation records. Dates of a
-- contract are `YYYY-MM-DD` text (calendar dates, no time zone); times are Unix
-- milliseconds (UTC). Amounts are integers in the currency's minor unit.

CREATE TABLE contracts (
    id                 TEXT    NOT NULL,
    org_id             TEXT    NOT NULL,
    env                TEXT    NOT NULL,
    account_id         TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    start_date         TEXT    NOT NULL,
    end_date           TEXT,
    auto_renew         BIGINT  NOT NULL,
    currency           TEXT    NOT NULL,
    notes              TEXT,
    -- Totals of the current service lines, kept with the row for lists.
    monthly_recurring  BIGINT  NOT NULL,
    one_off            BIGINT  NOT NULL,
    version            BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    CONSTRAINT contracts_pk PRIMARY KEY (id),
    CONSTRAINT contracts_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT contracts_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT contracts_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT contracts_status_ck CHECK (status IN ('DRAFT', 'ACTIVE', 'EXPIRED', 'CANCELLED')),
    CONSTRAINT contracts_auto_renew_ck CHECK (auto_renew IN (0, 1))
);
CREATE INDEX contracts_org_id_idx ON contracts (org_id, env, created_at, id);
CREATE INDEX contracts_updated_at_idx ON contracts (org_id, env, updated_at);
CREATE INDEX contracts_account_id_idx ON contracts (account_id, created_at, id);
CREATE INDEX contracts_status_idx ON contracts (org_id, env, status, created_at, id);
CREATE INDEX contracts_end_date_idx ON contracts (status, end_date);

-- The service lines of a contract's current version, in the order given.
CREATE TABLE contract_lines (
    id              TEXT    NOT NULL,
    org_id          TEXT    NOT NULL,
    env             TEXT    NOT NULL,
    contract_id     TEXT    NOT NULL,
    position        BIGINT  NOT NULL,
    category        TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    quantity        BIGINT  NOT NULL,
    unit_price      BIGINT  NOT NULL,
    billing_period  TEXT    NOT NULL,
    CONSTRAINT contract_lines_pk PRIMARY KEY (id),
    CONSTRAINT contract_lines_contract_fk FOREIGN KEY (contract_id) REFERENCES contracts (id),
    CONSTRAINT contract_lines_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT contract_lines_category_ck CHECK (category IN
        ('MANAGED_SERVICES', 'SECURITY', 'BACKUP', 'CLOUD', 'NETWORK', 'VOIP', 'PROJECT', 'OTHER')),
    CONSTRAINT contract_lines_billing_period_ck CHECK (billing_period IN ('MONTHLY', 'QUARTERLY', 'ANNUAL')),
    CONSTRAINT contract_lines_quantity_ck CHECK (quantity >= 0),
    CONSTRAINT contract_lines_unit_price_ck CHECK (unit_price >= 0)
);
CREATE INDEX contract_lines_contract_id_idx ON contract_lines (contract_id, position);

-- Amendments, oldest first; `changes` is a JSON array of {field, from, to}.
CREATE TABLE contract_amendments (
    id                TEXT    NOT NULL,
    org_id            TEXT    NOT NULL,
    env               TEXT    NOT NULL,
    contract_id       TEXT    NOT NULL,
    contract_version  BIGINT  NOT NULL,
    effective_date    TEXT    NOT NULL,
    description       TEXT    NOT NULL,
    changes           TEXT    NOT NULL,
    created_by        TEXT    NOT NULL,
    created_at        BIGINT  NOT NULL,
    CONSTRAINT contract_amendments_pk PRIMARY KEY (id),
    CONSTRAINT contract_amendments_contract_fk FOREIGN KEY (contract_id) REFERENCES contracts (id),
    CONSTRAINT contract_amendments_env_ck CHECK (env IN ('live', 'test'))
);
CREATE INDEX contract_amendments_contract_id_idx ON contract_amendments (contract_id, contract_version);

-- `contract.expiring_soon` sent for a contract, threshold and end date: an amendment
-- that moves the end date arms the thresholds again.
CREATE TABLE contract_expiry_notices (
    contract_id     TEXT    NOT NULL,
    threshold_days  BIGINT  NOT NULL,
    end_date        TEXT    NOT NULL,
    sent_at         BIGINT  NOT NULL,
    CONSTRAINT contract_expiry_notices_pk PRIMARY KEY (contract_id, threshold_days, end_date),
    CONSTRAINT contract_expiry_notices_contract_fk FOREIGN KEY (contract_id) REFERENCES contracts (id)
);

-- Seat/device count reports compared with the contracted quantities; `lines` is the
-- JSON array of per-category comparisons, frozen at submission.
CREATE TABLE reconciliations (
    id            TEXT    NOT NULL,
    org_id        TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    account_id    TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    reported_at   BIGINT  NOT NULL,
    has_variance  BIGINT  NOT NULL,
    lines         TEXT    NOT NULL,
    contract_ids  TEXT    NOT NULL,
    submitted_by  TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT reconciliations_pk PRIMARY KEY (id),
    CONSTRAINT reconciliations_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT reconciliations_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT reconciliations_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT reconciliations_has_variance_ck CHECK (has_variance IN (0, 1))
);
CREATE INDEX reconciliations_org_id_idx ON reconciliations (org_id, env, created_at, id);
CREATE INDEX reconciliations_updated_at_idx ON reconciliations (org_id, env, updated_at);
CREATE INDEX reconciliations_account_id_idx ON reconciliations (account_id, created_at, id);
