"""stt_worker service."""
