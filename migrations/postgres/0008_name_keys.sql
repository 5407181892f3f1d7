-- Look-alike tenant names (JOHN1 beside john1, a Cyrillic jоhn1): each tenant gets the key
-- TenantName::key computes in Rust (NFKC, lower-cased, confusable skeleton), and keys are
-- unique. SQL cannot compute the key, so rows from before this migration have none (NULL, which a
-- unique index lets repeat): mtfu fills them in the transaction of the next `tenant add`, the
-- first of two look-alike tenants taking the key and the other keeping NULL, so this migration
-- never fails on existing data and no existing tenant loses its account.
ALTER TABLE tenants ADD COLUMN name_key TEXT COLLATE "C";
CREATE UNIQUE INDEX tenants_name_key ON tenants (name_key);
