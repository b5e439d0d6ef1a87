"""Phone providers: their webhooks, REST commands and media-stream endpoints."""
