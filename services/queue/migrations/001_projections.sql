-- Queue projections, rebuilt from the event stream by `tidydesk replay`.
-- Every column is derived from events (times are event times), so a rebuild equals the live state.
-- A replay builds a fresh schema from these files and swaps it in for the live one: keep state
-- that is not derived from events out of this schema.
CREATE TABLE checkpoints (
    name text PRIMARY KEY,
    seq  bigint NOT NULL
);

CREATE TABLE tickets (
    id            text PRIMARY KEY,
    number        bigint NOT NULL UNIQUE,
    status        text NOT NULL,
    subject       text NOT NULL,
    requester     text NOT NULL,
    mailbox       text NOT NULL,
    split_from    text,
    opened_at     timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    message_count integer NOT NULL DEFAULT 0
);
CREATE INDEX tickets_status_updated ON tickets (status, updated_at DESC);
CREATE INDEX tickets_requester ON tickets (requester);

CREATE TABLE messages (
    message_id  text PRIMARY KEY,
    digest      text NOT NULL,
    ticket_id   text,
    mailbox     text NOT NULL,
    sender      text NOT NULL,
    subject     text NOT NULL,
    received_at timestamptz NOT NULL,
    body        text NOT NULL,
    reply       text NOT NULL,
    auto        text,
    threaded_by text,
    decision    text
);
CREATE INDEX messages_ticket ON messages (ticket_id, received_at);
CREATE INDEX messages_digest ON messages (digest);

CREATE TABLE rejected (
    digest      text PRIMARY KEY,
    reason      text NOT NULL,
    mailbox     text NOT NULL,
    size        bigint NOT NULL,
    rejected_at timestamptz NOT NULL
);

CREATE TABLE events (
    seq       bigint PRIMARY KEY,
    id        text NOT NULL,
    type      text NOT NULL,
    ticket_id text NOT NULL,
    time      timestamptz NOT NULL,
    data      jsonb NOT NULL
);
CREATE INDEX events_ticket ON events (ticket_id, seq);
