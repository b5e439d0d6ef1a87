"""tts_worker service."""
