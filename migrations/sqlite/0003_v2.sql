-- v2 API: tenant-wide revocation of signed download links. mtfu's /dl/... links carry the time
-- they were issued (microseconds, under their HMAC); one issued before this time is refused.
-- 0: nothing revoked (links from before this migration, which carry no issue time, stay valid
-- until the tenant's first revocation).
ALTER TABLE tenants ADD COLUMN urls_revoked_before INTEGER NOT NULL DEFAULT 0;
