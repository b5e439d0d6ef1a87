-- Agent actions (issue 16): tool calls and keypad turns in the transcript, where a transferred call went, and the
-- post-call webhook's deliveries (services/call_recorder/webhooks.py delivers them; the history API lists them).
ALTER TABLE transcripts DROP CONSTRAINT IF EXISTS transcripts_role_check;
ALTER TABLE transcripts ADD CONSTRAINT transcripts_role_check CHECK (role IN ('user', 'assistant', 'tool'));
ALTER TABLE transcripts ADD COLUMN dtmf boolean NOT NULL DEFAULT false;
ALTER TABLE transcripts ADD COLUMN tool jsonb;

ALTER TABLE calls ADD COLUMN transferred_to text;
-- the agent version the call ran with (the post-call webhook names it; the agent may have changed since)
ALTER TABLE calls ADD COLUMN agent_version integer;

-- One row per delivery (its id is the X-Victoria-Delivery header receivers dedupe on). `next_attempt_at` is when
-- a pending row is due and, while one recorder is 'delivering' it, when that claim expires (a crashed recorder's
-- row is then claimed again).
CREATE TABLE webhook_deliveries (
    id               text PRIMARY KEY,
    call_id          text NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    url              text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    requested_by     text NOT NULL CHECK (requested_by IN ('extraction', 'resend'))
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_call_idx ON webhook_deliveries (call_id, created_at);
-- the delivery a finished extraction asks for exists once per call, however often the extraction is stored
CREATE UNIQUE INDEX webhook_deliveries_extraction_once ON webhook_deliveries (call_id)
    WHERE requested_by = 'extraction';
