-- Session epochs (as migrations/sqlite/0007_session_epoch.sql): every token carries its
-- tenant's epoch; raising it ends every earlier session. Tokens without one count as epoch 0.
ALTER TABLE tenants ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
