-- Agents (the seeds' CallConfig): fields validated by shared/call_config.py:AgentSpec, stored as JSONB so
-- per-client-type overlays can override any of them. `version` increments on every write (optimistic
-- concurrency for the API, cache invalidation for the gateways).
CREATE TABLE agents (
    agent_id   text PRIMARY KEY CHECK (agent_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    spec       jsonb NOT NULL,
    version    integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The default agent every call uses unless it asks for another.
INSERT INTO agents (agent_id, spec) VALUES ('default', '{"name": "Victoria", "language": "en-US", "system_prompt": "You are Victoria, a friendly phone assistant. Answer in one or two short sentences.", "first_message": "Hello, this is Victoria. How can I help you today?", "apology_message": "I''m sorry, I''m having a technical problem. Please call again later. Goodbye.", "reprompt_message": "Are you still there?", "silence_goodbye_message": "I haven''t heard from you, so I''ll hang up now. Goodbye!", "max_duration_message": "We''ve reached the time limit for this call. Thank you for calling, goodbye!", "voice": {"rate": 1.0, "pitch": 0.0}, "llm": {"temperature": 0.3, "max_tokens": 80}, "stt": {}, "turn": {"vad_start_ms": 120, "vad_stop_ms": 500, "vad_preroll_ms": 200, "silence_timeout_s": 10.0, "max_call_s": 1800.0}, "overlays": {}}'::jsonb);
