-- Per-tenant quotas. NULL: the configured default (limits.quota_bytes / limits.quota_files);
-- -1: unlimited for this tenant; n >= 0: at most n.
ALTER TABLE tenants ADD COLUMN quota_bytes INTEGER;
ALTER TABLE tenants ADD COLUMN quota_files INTEGER;

-- Bytes (and one file each) held by uploads in flight, so that concurrent uploads cannot
-- together pass a quota. Written before the bytes they cover are stored; removed when the
-- upload is committed or given up. A crash leaves rows whose blob key has no intent and no
-- resumable upload: gc removes those.
CREATE TABLE quota_reservations (
    blob_key   TEXT    PRIMARY KEY,
    tenant_id  INTEGER NOT NULL,
    bytes      INTEGER NOT NULL CHECK (bytes >= 0),
    files      INTEGER NOT NULL CHECK (files >= 0),
    created_at INTEGER NOT NULL
);
CREATE INDEX quota_reservations_tenant ON quota_reservations (tenant_id);
-- Usage sums the sizes of a tenant's live files.
CREATE INDEX files_tenant_live ON files (tenant_id) WHERE deleted_at IS NULL;
