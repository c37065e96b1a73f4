-- The outbox is written by every change, so each index on it is paid by every write.
-- Nothing reads events by organization (deliveries join them by id), so this one goes.
DROP INDEX events_org_id_idx;
