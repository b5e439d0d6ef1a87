-- Operator-visible platform events (the error policy's global stop trips and resets), newest last.
CREATE TABLE admin_events (
    id     bigserial PRIMARY KEY,
    kind   text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb,
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_events_kind_at ON admin_events (kind, at);
