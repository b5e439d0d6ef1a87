"""Victoria's common package: event schemas, bus helpers, settings, logging, metrics and health."""

__version__ = "0.1.0"
