"""Lifecycle events out of the gateway: the non-blocking outbox and its on-disk spool."""
