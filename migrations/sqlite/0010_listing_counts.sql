-- The seed's page format at depth (src/meta/page.rs): an exact count without counting, and
-- offset pages read from name-ordered covering indexes.
--
-- Live (not deleted) files per tenant, and how many of them are public. Expired files stay live
-- until gc reaps them; a count subtracts those (files_live_expiry). Kept by the triggers below
-- in the transaction of every statement that inserts, deletes or soft-deletes a file, whatever
-- runs it (uploads, deletes, gc, tenant removal, imports). A migration that rebuilds `files`
-- must create these triggers again.
CREATE TABLE file_counts (
    tenant_id INTEGER PRIMARY KEY,
    live      INTEGER NOT NULL,
    public    INTEGER NOT NULL
);
INSERT INTO file_counts (tenant_id, live, public)
    SELECT tenant_id, count(*), sum(is_public = 1) FROM files WHERE deleted_at IS NULL
    GROUP BY tenant_id;

CREATE TRIGGER files_count_insert AFTER INSERT ON files WHEN NEW.deleted_at IS NULL
BEGIN
    INSERT INTO file_counts (tenant_id, live, public) VALUES (NEW.tenant_id, 1, NEW.is_public = 1)
        ON CONFLICT (tenant_id) DO UPDATE SET live = live + 1, public = public + excluded.public;
END;
CREATE TRIGGER files_count_delete AFTER DELETE ON files WHEN OLD.deleted_at IS NULL
BEGIN
    UPDATE file_counts SET live = live - 1, public = public - (OLD.is_public = 1)
        WHERE tenant_id = OLD.tenant_id;
END;
CREATE TRIGGER files_count_update AFTER UPDATE OF deleted_at, is_public, tenant_id ON files
    WHEN OLD.deleted_at IS NULL OR NEW.deleted_at IS NULL
BEGIN
    UPDATE file_counts SET live = live - 1, public = public - (OLD.is_public = 1)
        WHERE tenant_id = OLD.tenant_id AND OLD.deleted_at IS NULL;
    INSERT INTO file_counts (tenant_id, live, public)
        SELECT NEW.tenant_id, 1, NEW.is_public = 1 WHERE NEW.deleted_at IS NULL
        ON CONFLICT (tenant_id) DO UPDATE SET live = live + 1, public = public + excluded.public;
END;
CREATE TRIGGER tenants_count_delete AFTER DELETE ON tenants
BEGIN
    DELETE FROM file_counts WHERE tenant_id = OLD.id;
END;

-- Each listing branch in its order with what its filter reads (expire_at), so a page, however
-- deep, walks index entries only. They replace the narrower files_tenant_name and
-- files_public_name (same leading columns: the keyset listing uses these now).
CREATE INDEX files_tenant_order ON files (tenant_id, name, id, expire_at) WHERE deleted_at IS NULL;
CREATE INDEX files_public_order ON files (name, tenant_id, id, expire_at)
    WHERE deleted_at IS NULL AND is_public = 1;
DROP INDEX files_tenant_name;
DROP INDEX files_public_name;
-- Live files that have an expiry, by expiry: the expired ones a count must subtract.
CREATE INDEX files_live_expiry ON files (expire_at, tenant_id, is_public)
    WHERE deleted_at IS NULL AND expire_at IS NOT NULL;
