-- Journaled events (reads of customer data) arrive thousands a second. Indexed one by one on
-- their random subscriber ids, each dirtied a page of its own, and the writes queued the
-- journal's syncs behind them on the disk. The server indexes them in bulk instead
-- (`Store::index_audit`), in runs: each run is the events after the last run's end, sorted
-- and appended under a run number above every other, so its pages are written in order at the
-- end of the index. A lookup probes each run. Events after the last run are found by scanning
-- the end of the log. Events the store writes itself (campaigns, users) are few and indexed
-- as they come.
DROP INDEX audit_log_by_entity;
CREATE INDEX audit_log_by_entity ON audit_log (entity, entity_id) WHERE journal_key IS NULL;
-- The newest events of one kind or one actor; both grow at their ends.
CREATE INDEX audit_log_by_kind ON audit_log (entity, id);
CREATE INDEX audit_log_by_actor ON audit_log (actor, id);

CREATE TABLE audit_journal_index (
    run       BIGINT  NOT NULL,
    entity    TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    id        BIGINT  NOT NULL,
    PRIMARY KEY (run, entity, entity_id, id)
);
-- A run is written here once all its entries are in the index: every journaled event up to
-- `upto` has one in a run listed here. Entries of a pass that stopped halfway are true but
-- unlisted until a pass completes their run.
CREATE TABLE audit_journal_runs (
    run    BIGINT PRIMARY KEY,
    upto   BIGINT NOT NULL,
    events BIGINT NOT NULL
);

INSERT INTO audit_journal_index (run, entity, entity_id, id)
    SELECT 0, entity, entity_id, id FROM audit_log WHERE journal_key IS NOT NULL
    ORDER BY entity, entity_id, id;
INSERT INTO audit_journal_runs (run, upto, events)
    SELECT 0, coalesce(max(id), 0), (SELECT count(*) FROM audit_journal_index) FROM audit_log;
