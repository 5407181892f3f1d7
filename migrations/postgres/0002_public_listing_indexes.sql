-- Keyset listings (GET /api/v2/files) merge two branches, each read in name order and cut at
-- the page size: the viewer's own files (files_tenant_name, files_live_key) and the public files
-- of all tenants. These give the public branch a name-ordered index of exactly the public files
-- for its two filters, as files_public_name does without a filter, so that a page never reads
-- through other tenants' private files, however many there are.
CREATE INDEX files_public_resource_name ON files (resource, resource_id, name)
    WHERE deleted_at IS NULL AND is_public;
CREATE INDEX files_public_tenant_name ON files (tenant_id, name)
    WHERE deleted_at IS NULL AND is_public;
