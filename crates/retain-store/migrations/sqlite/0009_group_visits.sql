-- Visits to group customers recorded through retain (the dashboard, the API): one per group,
-- manager and day, so a form sent twice records one visit.
CREATE TABLE recorded_visits (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id     TEXT    NOT NULL,
    manager_id   TEXT    NOT NULL,
    visit_date   TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    notes        TEXT    NOT NULL,
    recorded_by  TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL,
    UNIQUE (group_id, manager_id, visit_date)
);
CREATE INDEX recorded_visits_by_manager ON recorded_visits (manager_id, visit_date);
