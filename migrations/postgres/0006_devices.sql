-- Devices of the MSP's clients as their RMM reports them. `rmm_agent_id` is the RMM's
-- own id of the agent, unique per organization and environment: the bulk upsert
-- matches on it. `end_of_life_date` is a `YYYY-MM-DD` date; other times are Unix ms.
-- `offline_notified_at` / `end_of_life_notified_at` record that the scheduler's sweep
-- emitted `device.offline` / `device.end_of_life` for the current condition: the
-- first is cleared when the device is seen again (a newer `last_seen_at`), the second
-- when the end-of-life date changes. They are not part of the API's device.

CREATE TABLE devices (
    id                       TEXT    NOT NULL,
    org_id                   TEXT    NOT NULL,
    env                      TEXT    NOT NULL,
    account_id               TEXT    NOT NULL,
    rmm_agent_id             TEXT    NOT NULL,
    hostname                 TEXT    NOT NULL,
    kind                     TEXT    NOT NULL,
    os                       TEXT,
    os_version               TEXT,
    serial_number            TEXT,
    manufacturer             TEXT,
    model                    TEXT,
    last_seen_at             BIGINT,
    warranty_expires_at      BIGINT,
    end_of_life_date         TEXT,
    status                   TEXT    NOT NULL,
    offline_notified_at      BIGINT,
    end_of_life_notified_at  BIGINT,
    version                  BIGINT  NOT NULL,
    created_at               BIGINT  NOT NULL,
    updated_at               BIGINT  NOT NULL,
    CONSTRAINT devices_pk PRIMARY KEY (id),
    CONSTRAINT devices_org_fk FOREIGN KEY (org_id) REFERENCES organizations (id),
    CONSTRAINT devices_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT devices_env_ck CHECK (env IN ('live', 'test')),
    CONSTRAINT devices_kind_ck
        CHECK (kind IN ('WORKSTATION', 'SERVER', 'LAPTOP', 'NETWORK', 'MOBILE', 'OTHER')),
    CONSTRAINT devices_status_ck CHECK (status IN ('ACTIVE', 'INACTIVE', 'RETIRED')),
    CONSTRAINT devices_rmm_agent_id_uq UNIQUE (org_id, env, rmm_agent_id)
);
CREATE INDEX devices_org_id_idx ON devices (org_id, env, created_at, id);
CREATE INDEX devices_updated_at_idx ON devices (org_id, env, updated_at);
CREATE INDEX devices_account_id_idx ON devices (org_id, env, account_id, created_at, id);
CREATE INDEX devices_kind_idx ON devices (org_id, env, kind, created_at, id);
CREATE INDEX devices_offline_sweep_idx ON devices (last_seen_at) WHERE offline_notified_at IS NULL;
CREATE INDEX devices_end_of_life_sweep_idx ON devices (end_of_life_date) WHERE end_of_life_notified_at IS NULL;
