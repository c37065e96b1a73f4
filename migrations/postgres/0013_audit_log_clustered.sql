-- As on SQLite (where the audit log became one clustered B-tree whose key columns
-- cannot be NULL): calls without a credential are stored with an empty organization
-- and environment on both backends.
UPDATE audit_log SET org_id = '' WHERE org_id IS NULL;
UPDATE audit_log SET env = '' WHERE env IS NULL;
ALTER TABLE audit_log ALTER COLUMN org_id SET NOT NULL, ALTER COLUMN env SET NOT NULL;
