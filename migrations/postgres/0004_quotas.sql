-- Per-tenant quotas (as migrations/sqlite/0004_quotas.sql). NULL: the configured default;
-- -1: unlimited for this tenant; n >= 0: at most n.
ALTER TABLE tenants ADD COLUMN quota_bytes BIGINT;
ALTER TABLE tenants ADD COLUMN quota_files BIGINT;

-- Bytes (and one file each) held by uploads in flight; see the SQLite migration.
CREATE TABLE quota_reservations (
    blob_key   TEXT   PRIMARY KEY,
    tenant_id  BIGINT NOT NULL,
    bytes      BIGINT NOT NULL CHECK (bytes >= 0),
    files      BIGINT NOT NULL CHECK (files >= 0),
    created_at BIGINT NOT NULL
);
CREATE INDEX quota_reservations_tenant ON quota_reservations (tenant_id);
-- Usage sums the sizes of a tenant's live files (index-only with the INCLUDE).
CREATE INDEX files_tenant_live ON files (tenant_id) INCLUDE (size, expire_at)
    WHERE deleted_at IS NULL;
