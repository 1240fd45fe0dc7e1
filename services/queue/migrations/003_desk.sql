-- Issue 13, the helpdesk around the decisions: tags, assignment, escalation and what stats read.
-- Counts per day (solved, reopened, acknowledged, split, merged, kudos) come from `events`;
-- these columns are what a ticket is now. All derived from events, so a rebuild equals them.
ALTER TABLE tickets ADD COLUMN assignee text;
ALTER TABLE tickets ADD COLUMN team text;
ALTER TABLE tickets ADD COLUMN escalated_to text;  -- the lead of the last escalation
ALTER TABLE tickets ADD COLUMN language text;  -- of the opening mail, by script
ALTER TABLE tickets ADD COLUMN first_response_at timestamptz;  -- first agent reply, not auto
ALTER TABLE tickets ADD COLUMN solved_at timestamptz;  -- last solved (or closed); NULL if open
ALTER TABLE tickets ADD COLUMN reopen_count integer NOT NULL DEFAULT 0;
CREATE INDEX tickets_assignee ON tickets (assignee);
CREATE INDEX tickets_opened ON tickets (opened_at);

CREATE TABLE ticket_tags (
    ticket_id text NOT NULL,
    tag       text NOT NULL,
    rule      text,  -- the tag rule that fired; NULL when an agent added it
    agent     text NOT NULL DEFAULT '',
    tagged_at timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, tag)
);
CREATE INDEX ticket_tags_tag ON ticket_tags (tag, tagged_at);

CREATE INDEX events_type_time ON events (type, time);
