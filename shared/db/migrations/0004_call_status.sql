-- Telephony providers' own call status (Twilio status callbacks, Telnyx call webhooks), as received.
CREATE TABLE call_status_events (
    event_id  text PRIMARY KEY,
    call_id   text NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    provider  text NOT NULL,
    status    text NOT NULL,
    at        timestamptz NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX call_status_events_call_idx ON call_status_events (call_id, at);

ALTER TABLE calls ADD COLUMN provider_status text;
