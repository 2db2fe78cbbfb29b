-- People who use retain: their role, the account manager they are (for data scoping), the
-- highest approval level they sign, and an Argon2 hash of their password (PHC string).
CREATE TABLE users (
    name           TEXT    PRIMARY KEY,
    role           TEXT    NOT NULL CHECK (role IN ('admin', 'analyst', 'approver', 'manager', 'store')),
    manager_id     TEXT,
    approval_level BIGINT NOT NULL CHECK (approval_level BETWEEN 0 AND 3),
    password_hash  TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    disabled       BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);
