-- `mtfu import-seed` (as migrations/sqlite/0009_seed_import.sql): imported rows may share one
-- S3 object, so files.blob_key is unique only for generated keys; a shared key goes to garbage
-- only with the last row naming it. The mapping of the original's ids to mtfu's.
ALTER TABLE files DROP CONSTRAINT files_blob_key_key;
CREATE UNIQUE INDEX files_blob_key_generated ON files (blob_key)
    WHERE substr(blob_key, 1, 5) <> 'seed:';
CREATE INDEX files_blob_key ON files (blob_key);

CREATE TABLE seed_tenants (
    orig_id     BIGINT PRIMARY KEY,
    tenant_id   BIGINT NOT NULL,
    imported_at BIGINT NOT NULL
);
CREATE TABLE seed_files (
    orig_id     TEXT   PRIMARY KEY,
    file_id     TEXT   NOT NULL,
    imported_at BIGINT NOT NULL
);
