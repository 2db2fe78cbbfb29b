-- Audited reads are journaled by the server before they are answered and appended here
-- afterwards; each carries a key unique to it, so replaying a journal after a crash appends
-- what is missing and nothing twice.
ALTER TABLE audit_log ADD COLUMN journal_key TEXT;
CREATE UNIQUE INDEX audit_log_by_journal_key ON audit_log (journal_key);
