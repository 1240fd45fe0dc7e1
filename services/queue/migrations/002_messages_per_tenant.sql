-- Issue 9: a mail is recorded once per tenant (its recipient mailbox's domain), so one mail
-- sent to two tenants is two rows with the same message_id. `claimed_message_id` is the
-- Message-ID a mail carried when another mail of its tenant had it first (see intake.py).
ALTER TABLE messages ADD COLUMN tenant text NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN claimed_message_id text;
UPDATE messages SET tenant = lower(regexp_replace(mailbox, '^.*@', ''));
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (tenant, message_id);
CREATE INDEX messages_message_id ON messages (message_id);
