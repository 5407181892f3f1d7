-- Resumable (tus) uploads in progress: the same table as migrations/sqlite/0005_tus.sql. A row
-- is written before an upload's first byte and names everything it holds in the blob store: its
-- blob key, and in store_state the store's own progress (S3: multipart upload id, parts done,
-- tail objects). A crash at any instant leaves only what gc finds through it. upload_offset is
-- the truth: bytes past it were never acknowledged. A writer holds the row through lease_token
-- until lease_until, so nodes sharing the database never write one upload at once.
CREATE TABLE tus_uploads (
    id             TEXT    PRIMARY KEY,
    tenant_id      BIGINT  NOT NULL,
    blob_key       TEXT    NOT NULL UNIQUE,
    upload_length  BIGINT  NOT NULL CHECK (upload_length >= 0),
    upload_offset  BIGINT  NOT NULL CHECK (upload_offset >= 0 AND upload_offset <= upload_length),
    metadata       TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    resource_id    TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    content_type   TEXT    NOT NULL,
    is_public      BOOLEAN NOT NULL,
    file_expire_at BIGINT,
    hash_state     TEXT    NOT NULL,
    store_state    TEXT    NOT NULL,
    lease_token    TEXT,
    lease_until    BIGINT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL
);
-- gc's scan for expired uploads.
CREATE INDEX tus_uploads_expires ON tus_uploads (expires_at);
