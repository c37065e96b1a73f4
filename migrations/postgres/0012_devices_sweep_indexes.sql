-- The sweeps' partial indexes held every device, also those they can never report: a
-- device with no end-of-life date, or never seen. Every device write paid for them.
-- The sweeps' `end_of_life_date <= $1` and `last_seen_at < $1` imply `IS NOT NULL`, so
-- both databases still use the narrower indexes for them.
DROP INDEX devices_offline_sweep_idx;
DROP INDEX devices_end_of_life_sweep_idx;
CREATE INDEX devices_offline_sweep_idx ON devices (last_seen_at)
    WHERE offline_notified_at IS NULL AND last_seen_at IS NOT NULL;
CREATE INDEX devices_end_of_life_sweep_idx ON devices (end_of_life_date)
    WHERE end_of_life_notified_at IS NULL AND end_of_life_date IS NOT NULL;
