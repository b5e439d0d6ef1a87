"""What guards the edge: HTTP hardening, API keys, call tokens, production checks, shared dedupe."""
