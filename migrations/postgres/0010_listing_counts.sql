-- The seed's page format at depth (as migrations/sqlite/0010_listing_counts.sql; see
-- src/meta/page.rs): an exact count without counting, offset pages from covering indexes.
--
-- Live (not deleted) files per tenant and how many of them are public, as deltas: every
-- statement that inserts, deletes or soft-deletes files appends one row per tenant it touched
-- (statement triggers over its transition tables), in its own transaction. Appending, not
-- updating one row per tenant, so that concurrent commits never wait on each other's counter
-- row nor deadlock on two. A tenant's count is the sum of its rows; gc folds them into one
-- (`fold_file_counts`). Rows of removed tenants are ignored (counts join tenants) and folded away.
CREATE TABLE file_counts (
    tenant_id BIGINT NOT NULL,
    live      BIGINT NOT NULL,
    public    BIGINT NOT NULL
);
CREATE INDEX file_counts_tenant ON file_counts (tenant_id);
INSERT INTO file_counts (tenant_id, live, public)
    SELECT tenant_id, count(*), count(*) FILTER (WHERE is_public) FROM files
    WHERE deleted_at IS NULL GROUP BY tenant_id;

CREATE FUNCTION file_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO file_counts (tenant_id, live, public)
        SELECT tenant_id, count(*), count(*) FILTER (WHERE is_public) FROM new_rows
        WHERE deleted_at IS NULL GROUP BY tenant_id;
    RETURN NULL;
END $$;
CREATE FUNCTION file_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO file_counts (tenant_id, live, public)
        SELECT tenant_id, -count(*), -count(*) FILTER (WHERE is_public) FROM old_rows
        WHERE deleted_at IS NULL GROUP BY tenant_id;
    RETURN NULL;
END $$;
CREATE FUNCTION file_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO file_counts (tenant_id, live, public)
        SELECT tenant_id, sum(live), sum(public) FROM (
            SELECT tenant_id, 1 AS live, is_public::int AS public FROM new_rows
                WHERE deleted_at IS NULL
            UNION ALL
            SELECT tenant_id, -1, -(is_public::int) FROM old_rows WHERE deleted_at IS NULL
        ) d GROUP BY tenant_id HAVING sum(live) <> 0 OR sum(public) <> 0;
    RETURN NULL;
END $$;
CREATE TRIGGER files_count_insert AFTER INSERT ON files
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION file_counts_insert();
CREATE TRIGGER files_count_delete AFTER DELETE ON files
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION file_counts_delete();
CREATE TRIGGER files_count_update AFTER UPDATE ON files
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION file_counts_update();

-- Each listing branch in its order, covering what its filter reads (expire_at). They replace
-- the narrower files_tenant_name and files_public_name (same leading columns).
CREATE INDEX files_tenant_order ON files (tenant_id, name, id) INCLUDE (expire_at)
    WHERE deleted_at IS NULL;
CREATE INDEX files_public_order ON files (name, tenant_id, id) INCLUDE (expire_at)
    WHERE deleted_at IS NULL AND is_public;
DROP INDEX files_tenant_name;
DROP INDEX files_public_name;
-- Live files that have an expiry, by expiry: the expired ones a count must subtract.
CREATE INDEX files_live_expiry ON files (expire_at) INCLUDE (tenant_id, is_public)
    WHERE deleted_at IS NULL AND expire_at IS NOT NULL;
