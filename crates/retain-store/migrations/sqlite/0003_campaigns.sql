-- The audit log: every decision a person or the system took on an entity (campaigns now,
-- users and API actions later), in order. Nothing here is ever updated or deleted.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    entity    TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    detail    TEXT    NOT NULL
);

CREATE INDEX audit_log_by_entity ON audit_log (entity, entity_id);

-- The plan library (方案库): saved templates, every version kept.
CREATE TABLE plan_templates (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    definition TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

-- A campaign and where it stands; its history is the audit log's rows for it.
CREATE TABLE campaigns (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('retention', 'care')),
    template         TEXT    NOT NULL,
    template_version INTEGER NOT NULL,
    definition       TEXT    NOT NULL,
    budget           REAL    NOT NULL CHECK (budget >= 0),
    as_of            TEXT    NOT NULL,
    seed             INTEGER NOT NULL,
    owner            TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('draft', 'rehearsed', 'approved', 'rejected', 'launched', 'evaluated')),
    approval_level   INTEGER NOT NULL,
    rehearsal        TEXT,
    evaluation       TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
);

-- Who a launched campaign targeted: the treated and the held-out control, with what the plan
-- expected for each, so evaluation compares like with like.
CREATE TABLE campaign_members (
    campaign_id    INTEGER NOT NULL REFERENCES campaigns (id),
    subscriber_id  INTEGER NOT NULL,
    arm            TEXT    NOT NULL CHECK (arm IN ('treatment', 'control')),
    stratum        TEXT    NOT NULL,
    level          TEXT    NOT NULL,
    tier           TEXT    NOT NULL,
    segment        TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    offer_id       TEXT    NOT NULL,
    offer_kind     TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    p_churn        REAL    NOT NULL,
    clv            REAL    NOT NULL,
    arpu           REAL    NOT NULL,
    cost           REAL    NOT NULL,
    expected_cost  REAL    NOT NULL,
    expected_value REAL    NOT NULL,
    PRIMARY KEY (campaign_id, subscriber_id)
);

-- One task for one channel: a call to make, an SMS to send, a counter pop-up, a visit. The
-- unique key is what makes launching idempotent.
CREATE TABLE work_orders (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id   INTEGER NOT NULL REFERENCES campaigns (id),
    subscriber_id INTEGER NOT NULL,
    channel       TEXT    NOT NULL,
    purpose       TEXT    NOT NULL,
    offer_id      TEXT    NOT NULL,
    branch_id     TEXT    NOT NULL,
    manager_id    TEXT    NOT NULL,
    due_date      TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('open', 'done')),
    payload       TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    UNIQUE (campaign_id, subscriber_id, channel, purpose)
);

CREATE INDEX work_orders_by_subscriber ON work_orders (subscriber_id);

-- What the callback (回访) learned, one row per work order; a later import corrects it.
CREATE TABLE callbacks (
    work_order_id INTEGER PRIMARY KEY REFERENCES work_orders (id),
    reached       INTEGER NOT NULL CHECK (reached IN (0, 1)),
    accepted      INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    stated_reason TEXT,
    notes         TEXT    NOT NULL,
    follow_up     TEXT,
    source        TEXT    NOT NULL,
    recorded_by   TEXT    NOT NULL,
    recorded_at   TEXT    NOT NULL,
    CHECK (reached = 1 OR accepted = 0)
);

-- Whether each member was still with us at the end of the horizon, and the ARPU then.
CREATE TABLE campaign_outcomes (
    campaign_id   INTEGER NOT NULL,
    subscriber_id INTEGER NOT NULL,
    retained      INTEGER NOT NULL CHECK (retained IN (0, 1)),
    arpu_after    REAL,
    source        TEXT    NOT NULL,
    observed_at   TEXT    NOT NULL,
    PRIMARY KEY (campaign_id, subscriber_id),
    FOREIGN KEY (campaign_id, subscriber_id) REFERENCES campaign_members (campaign_id, subscriber_id)
);

-- One care campaign (关怀) per month, however many runs race to create it.
CREATE UNIQUE INDEX one_care_campaign_per_month ON campaigns (as_of) WHERE kind = 'care';
