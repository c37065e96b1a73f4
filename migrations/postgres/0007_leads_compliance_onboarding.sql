-- Leads with their ICP score (recomputed by the server on every change and stored so
-- lists can filter on it), compliance items per account and framework, onboarding
-- projects and their milestones. Same conventions as 0002: (org_id, env) on every row,
-- keyset lists over (created_at, id), Unix-millisecond times, `version` for ETags.

CREATE TABLE leads (
    id               TEXT    NOT NULL,
    org_id           TEXT    NOT NULL,
    env              TEXT    NOT NULL,
    company_name     TEXT    NOT NULL,
    domain           TEXT,
    industry         TEXT,
    employee_count   BIGINT,
    seat_estimate    BIGINT,
    source           TEXT,
    status           TEXT    NOT NULL,
    contact_name     TEXT,
    contact_email    TEXT,
    notes            TEXT,
    icp_score        BIGINT  NOT NULL,
    version          BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    CONSTRAINT leads_pk PRIMARY KEY (id),
    CONSTRAINT leads_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT leads_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT leads_status_ck CHECK (status IN ('NEW', 'CONTACTED', 'QUALIFIED', 'DISQUALIFIED', 'CONVERTED')),
    CONSTRAINT leads_icp_score_ck CHECK (icp_score BETWEEN 0 AND 100),
    CONSTRAINT leads_counts_ck CHECK ((employee_count IS NULL OR employee_count >= 0) AND (seat_estimate IS NULL OR seat_estimate >= 0))
);
CREATE INDEX leads_org_id_idx ON leads (org_id, env, created_at, id);
CREATE INDEX leads_updated_at_idx ON leads (org_id, env, updated_at);
CREATE INDEX leads_status_idx ON leads (org_id, env, status, created_at, id);

CREATE TABLE compliance_items (
    id                TEXT    NOT NULL,
    org_id            TEXT    NOT NULL,
    env               TEXT    NOT NULL,
    account_id        TEXT    NOT NULL,
    framework         TEXT    NOT NULL,
    control_id        TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    evidence_notes    TEXT,
    due_date          TEXT,
    last_reviewed_at  BIGINT,
    version           BIGINT  NOT NULL,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    CONSTRAINT compliance_items_pk PRIMARY KEY (id),
    CONSTRAINT compliance_items_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT compliance_items_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT compliance_items_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT compliance_items_framework_ck
        CHECK (framework IN ('SOC2', 'HIPAA', 'PCI_DSS', 'CIS', 'NIST_CSF', 'ISO27001')),
    CONSTRAINT compliance_items_status_ck
        CHECK (status IN ('COMPLIANT', 'NON_COMPLIANT', 'IN_PROGRESS', 'NOT_APPLICABLE')),
    CONSTRAINT compliance_items_control_uq UNIQUE (org_id, env, account_id, framework, control_id)
);
CREATE INDEX compliance_items_org_id_idx ON compliance_items (org_id, env, created_at, id);
CREATE INDEX compliance_items_updated_at_idx ON compliance_items (org_id, env, updated_at);
CREATE INDEX compliance_items_account_id_idx ON compliance_items (account_id, created_at, id);

CREATE TABLE onboarding_projects (
    id            TEXT    NOT NULL,
    org_id        TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    account_id    TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    -- Follows the milestones: none completed, some, all.
    status                TEXT    NOT NULL,
    milestones_total      BIGINT  NOT NULL,
    milestones_completed  BIGINT  NOT NULL,
    start_date    TEXT,
    target_date   TEXT,
    notes         TEXT,
    version       BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT onboarding_projects_pk PRIMARY KEY (id),
    CONSTRAINT onboarding_projects_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT onboarding_projects_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT onboarding_projects_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT onboarding_projects_status_ck CHECK (status IN ('NOT_STARTED', 'IN_PROGRESS', 'COMPLETED')),
    CONSTRAINT onboarding_projects_milestones_ck CHECK (milestones_completed BETWEEN 0 AND milestones_total)
);
CREATE INDEX onboarding_projects_org_id_idx ON onboarding_projects (org_id, env, created_at, id);
CREATE INDEX onboarding_projects_updated_at_idx ON onboarding_projects (org_id, env, updated_at);
CREATE INDEX onboarding_projects_account_id_idx ON onboarding_projects (account_id, created_at, id);

CREATE TABLE onboarding_milestones (
    id            TEXT    NOT NULL,
    project_id    TEXT    NOT NULL,
    org_id        TEXT    NOT NULL,
    env           TEXT    NOT NULL,
    -- Order within the project, from 0.
    position      BIGINT  NOT NULL,
    name          TEXT    NOT NULL,
    due_date      TEXT,
    completed_at  BIGINT,
    completed_by  TEXT,
    CONSTRAINT onboarding_milestones_pk PRIMARY KEY (id),
    CONSTRAINT onboarding_milestones_project_fk FOREIGN KEY (project_id) REFERENCES onboarding_projects (id),
    CONSTRAINT onboarding_milestones_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT onboarding_milestones_position_uq UNIQUE (project_id, position)
);
