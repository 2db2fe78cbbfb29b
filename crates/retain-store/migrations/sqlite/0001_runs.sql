-- Every pipeline run (ingest, synth, demo, and later warn/train/segment/match), with its
-- parameters and summary as JSON, so results can be traced to what produced them.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    status      TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    params      TEXT    NOT NULL,
    summary     TEXT,
    error       TEXT
);

-- One row per input file loaded into a table, with its content hash and reconciled counts.
CREATE TABLE ingest_files (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           INTEGER NOT NULL REFERENCES runs (id),
    table_name       TEXT    NOT NULL,
    path             TEXT    NOT NULL,
    sha256           TEXT    NOT NULL,
    bytes            INTEGER NOT NULL,
    read_rows        INTEGER NOT NULL,
    loaded_rows      INTEGER NOT NULL,
    quarantined_rows INTEGER NOT NULL,
    quarantine_file  TEXT    NOT NULL,
    loaded_at        TEXT    NOT NULL,
    CHECK (read_rows = loaded_rows + quarantined_rows)
);

CREATE INDEX ingest_files_by_hash ON ingest_files (table_name, sha256);
