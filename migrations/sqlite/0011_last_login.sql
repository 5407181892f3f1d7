-- When each tenant last logged in with its password (`mtfu tenant list`); NULL until then.
ALTER TABLE tenants ADD COLUMN last_login_at INTEGER;
