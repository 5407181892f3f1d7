-- The same schema as migrations/sqlite/0001_init.sql, in PostgreSQL's types. Timestamps are
-- BIGINT microseconds since the Unix epoch, as in SQLite, so both stores share one domain type.
-- Names sort with the "C" collation (bytes, as SQLite's BINARY): listings page in the same order
-- on both stores whatever the database's locale, and the name indexes serve that order.

-- Tenants: the accounts that own files.
CREATE TABLE tenants (
    id            BIGSERIAL        PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT             NOT NULL,
    created_at    BIGINT           NOT NULL
);

-- Files. A row is written only after its blob is durable (see DESIGN.md §1). Deleted rows are
-- kept (deleted_at set) until the garbage collector has removed their blob.
CREATE TABLE files (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    BIGINT           NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    resource     TEXT COLLATE "C" NOT NULL,
    resource_id  TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    blob_key     TEXT             NOT NULL UNIQUE,
    size         BIGINT           NOT NULL CHECK (size >= 0),
    content_type TEXT             NOT NULL,
    sha256       TEXT             NOT NULL,
    is_public    BOOLEAN          NOT NULL DEFAULT FALSE,
    expire_at    BIGINT,
    created_at   BIGINT           NOT NULL,
    deleted_at   BIGINT
);

-- One live file per (tenant, resource, resource_id, name): re-uploads replace.
CREATE UNIQUE INDEX files_live_key ON files (tenant_id, resource, resource_id, name)
    WHERE deleted_at IS NULL;
-- Listing a resource's files (own and public) in name order.
CREATE INDEX files_resource_name ON files (resource, resource_id, name) WHERE deleted_at IS NULL;
-- list_files by tenant, and the public files of any tenant.
CREATE INDEX files_tenant_name ON files (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX files_public_name ON files (name) WHERE deleted_at IS NULL AND is_public;
-- The garbage collector's scans.
CREATE INDEX files_deleted ON files (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX files_expire ON files (expire_at) WHERE expire_at IS NOT NULL;

-- Uploads in progress: a blob key is recorded before its first byte is written, so a crash at
-- any moment leaves a row that names what the garbage collector must remove.
CREATE TABLE upload_intents (
    blob_key   TEXT   PRIMARY KEY,
    tenant_id  BIGINT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE INDEX upload_intents_started ON upload_intents (started_at);

-- Blobs no row points at any more (replaced files), waiting for the garbage collector.
CREATE TABLE garbage (
    blob_key TEXT   PRIMARY KEY,
    added_at BIGINT NOT NULL
);
CREATE INDEX garbage_added ON garbage (added_at);

-- Refresh tokens already used (rotation): a jti here is refused.
CREATE TABLE refresh_blacklist (
    jti        TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX refresh_blacklist_expires ON refresh_blacklist (expires_at);
