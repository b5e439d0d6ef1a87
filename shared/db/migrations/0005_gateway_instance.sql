-- The gateway instance that owns a call (from CallStarted): the recorder ends the in-progress calls of a
-- gateway whose heartbeats stopped (end_reason 'gateway_lost').
ALTER TABLE calls ADD COLUMN gateway_instance text;
CREATE INDEX calls_unended_idx ON calls (gateway_instance) WHERE ended_at IS NULL;
