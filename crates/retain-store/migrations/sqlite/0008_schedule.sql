-- The scheduler's record: one row per attempt of a scheduled job at one of its slots (the time
-- its cron expression named), with what it produced or why it failed. Times are RFC 3339 in
-- UTC with microseconds, so they compare as text.
CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT    NOT NULL,
    slot        TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    holder      TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    status      TEXT    NOT NULL
        CHECK (status IN ('running', 'succeeded', 'failed', 'waiting', 'skipped')),
    summary     TEXT,
    error       TEXT,
    retry_at    TEXT
);
CREATE INDEX job_runs_by_job ON job_runs (job, id);

-- Who runs a job now, until when: a row here is the job's lease, taken only when absent or
-- expired, so no two processes run one job at once. A holder renews it while it works; one
-- that dies lets it expire.
CREATE TABLE job_leases (
    job        TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
