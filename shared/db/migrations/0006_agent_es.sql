-- The Spanish agent out of the box (issue 15): agent `es`, language es-ES. Its texts (system prompt, greeting,
-- re-prompt, apology, goodbyes) are left unset, so they come from the catalogue in shared/texts.py in Spanish and
-- stay in one place; STT is told Spanish. Extraction fields: the standard ones, like `default`. Idempotent: an
-- agent already called `es` is left alone, and `default` is not touched.
INSERT INTO agents (agent_id, spec) VALUES ('es', '{"name": "Victoria", "language": "es-ES", "voice": {"rate": 1.0, "pitch": 0.0}, "llm": {"temperature": 0.3, "max_tokens": 80}, "stt": {"language": "es-ES"}, "turn": {"vad_start_ms": 120, "vad_stop_ms": 500, "vad_preroll_ms": 200, "silence_timeout_s": 10.0, "max_call_s": 1800.0}, "extraction_fields": {}, "overlays": {}}'::jsonb)
ON CONFLICT (agent_id) DO NOTHING;
