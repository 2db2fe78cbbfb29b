-- A manager may be scoped to a whole branch (分公司/营业部) instead of one account manager's
-- book of subscribers.
ALTER TABLE users ADD COLUMN branch_id TEXT;

-- The audit log is append-only: the store refuses to change or remove what it recorded.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
