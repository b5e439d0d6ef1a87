"""llm_worker service."""
