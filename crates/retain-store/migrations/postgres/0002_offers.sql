-- The offer library's operational copy: the dashboard and the API read offers from here.
CREATE TABLE offers (
    id          TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
