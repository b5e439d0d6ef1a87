"""Telnyx: Call Control webhooks and commands and the media-stream endpoint."""
