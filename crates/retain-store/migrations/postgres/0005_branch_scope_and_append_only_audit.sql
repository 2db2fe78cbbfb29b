-- A manager may be scoped to a whole branch (分公司/营业部) instead of one account manager's
-- book of subscribers.
ALTER TABLE users ADD COLUMN branch_id TEXT;

-- The audit log is append-only: the store refuses to change or remove what it recorded.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
