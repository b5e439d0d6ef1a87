"""call_recorder service."""
