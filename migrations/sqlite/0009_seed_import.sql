-- `mtfu import-seed`: the original service's rows, imported (see docs/migrate-from-django.md).
--
-- Two imported rows may name one S3 object (the original overwrote a file's bytes with another
-- upload of the same name under another resource): files.blob_key is no longer unique for
-- imported keys (`seed:{object key}`); generated keys stay unique. A key shared by several rows
-- goes to garbage only with the last row that names it (src/meta/sqlite/shared.rs).
-- SQLite cannot drop a column's UNIQUE: the table is rebuilt, with every index.
CREATE TABLE files_new (
    id           TEXT    PRIMARY KEY,
    tenant_id    INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    resource     TEXT    NOT NULL,
    resource_id  TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    blob_key     TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    is_public    INTEGER NOT NULL DEFAULT 0,
    expire_at    INTEGER,
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER
);
INSERT INTO files_new (id, tenant_id, resource, resource_id, name, blob_key, size, content_type,
                       sha256, is_public, expire_at, created_at, deleted_at)
    SELECT id, tenant_id, resource, resource_id, name, blob_key, size, content_type, sha256,
           is_public, expire_at, created_at, deleted_at FROM files;
DROP TABLE files;
ALTER TABLE files_new RENAME TO files;
CREATE UNIQUE INDEX files_live_key ON files (tenant_id, resource, resource_id, name)
    WHERE deleted_at IS NULL;
CREATE INDEX files_resource_name ON files (resource, resource_id, name) WHERE deleted_at IS NULL;
CREATE INDEX files_tenant_name ON files (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX files_public_name ON files (name) WHERE deleted_at IS NULL AND is_public = 1;
CREATE INDEX files_deleted ON files (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX files_expire ON files (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX files_public_resource_name ON files (resource, resource_id, name)
    WHERE deleted_at IS NULL AND is_public = 1;
CREATE INDEX files_public_tenant_name ON files (tenant_id, name)
    WHERE deleted_at IS NULL AND is_public = 1;
CREATE INDEX files_tenant_live ON files (tenant_id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX files_blob_key_generated ON files (blob_key)
    WHERE substr(blob_key, 1, 5) <> 'seed:';
CREATE INDEX files_blob_key ON files (blob_key);

-- Which original row became which mtfu row: a second import skips what the first did (also
-- what was deleted in mtfu since: an import never resurrects), and an original token's user_id
-- finds its tenant (tenant ids are never reused: AUTOINCREMENT).
CREATE TABLE seed_tenants (
    orig_id     INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL,
    imported_at INTEGER NOT NULL
);
CREATE TABLE seed_files (
    orig_id     TEXT    PRIMARY KEY,
    file_id     TEXT    NOT NULL,
    imported_at INTEGER NOT NULL
);
