"""Twilio: signed webhooks, TwiML, REST hang-up and the Media Streams endpoint."""
