-- Session epochs: every token carries its tenant's epoch; raising it (password change,
-- `mtfu tenant logout`, POST /api/v2/sessions/revoke) ends every earlier session. Tokens of
-- earlier versions carry none and count as epoch 0, so they stay valid until the first raise.
ALTER TABLE tenants ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
