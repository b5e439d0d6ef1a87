-- Call history written by the call recorder from lifecycle events.
CREATE TABLE calls (
    call_id        text PRIMARY KEY,
    agent_id       text,
    client_type    text NOT NULL DEFAULT 'browser',
    transport_ids  jsonb NOT NULL DEFAULT '{}'::jsonb,
    from_number    text,
    to_number      text,
    started_at     timestamptz,
    ended_at       timestamptz,
    duration_s     double precision,
    end_reason     text,
    status         text NOT NULL DEFAULT 'in_progress',
    turns          integer NOT NULL DEFAULT 0,
    latency_summary jsonb NOT NULL DEFAULT '{}'::jsonb,
    extracted_data jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_started_at_idx ON calls (started_at DESC);
CREATE INDEX calls_agent_idx ON calls (agent_id);

CREATE TABLE transcripts (
    call_id     text NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    role        text NOT NULL CHECK (role IN ('user', 'assistant')),
    text        text NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    interrupted boolean NOT NULL DEFAULT false,
    latency_ms  jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_id    text NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE call_errors (
    event_id   text PRIMARY KEY,
    call_id    text NOT NULL,
    code       text NOT NULL,
    stage      text NOT NULL,
    message    text NOT NULL,
    critical   boolean NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX call_errors_call_idx ON call_errors (call_id);

-- Event ids already applied: a redelivered or duplicated event changes nothing.
CREATE TABLE processed_events (
    event_id     text PRIMARY KEY,
    call_id      text NOT NULL,
    type         text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
