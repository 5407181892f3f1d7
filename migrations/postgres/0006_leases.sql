-- Upload intents are leases (DESIGN.md §7): a live upload renews lease_until while its bytes
-- flow, and gc takes only intents whose lease ran out, deleting each in the statement that
-- selects it. The commit of an upload deletes its intent and fails if it is gone, so whichever
-- of commit and clean-up (client gone, gc, tenant removal) comes first wins. Intents of uploads
-- started before this migration get a lease that has run out at their start.
ALTER TABLE upload_intents ADD COLUMN lease_until BIGINT;
UPDATE upload_intents SET lease_until = started_at;
CREATE INDEX upload_intents_lease ON upload_intents (lease_until);

-- A tus upload created with a relative `expires_in` keeps it relative: the file's expiry is
-- counted from the commit (when its last byte is in), not from the creation.
ALTER TABLE tus_uploads ADD COLUMN file_expires_in BIGINT;
