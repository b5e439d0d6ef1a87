"""Prometheus metrics shared by every service, and the helper that serves ``/metrics``.

Names follow Prometheus conventions: base units (``_seconds``, ``_bytes``), ``_total`` for counters, and no
per-call labels (call ids would explode cardinality; they belong in logs).
"""

from __future__ import annotations

import errno

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from shared.logging import get_logger

log = get_logger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)

BUS_DROPPED = Counter(
    "victoria_bus_messages_dropped_total", "Bus messages dropped because they could not be used", ["subject", "reason"]
)
WORK_REQUESTS = Counter(
    "victoria_worker_requests_total", "Work requests handled by a worker", ["service", "provider", "outcome"]
)
WORK_IN_FLIGHT = Gauge("victoria_worker_in_flight", "Work requests being handled now", ["service"])
PROVIDER_FIRST_BYTE = Histogram(
    "victoria_provider_first_result_seconds",
    "Time from request to a provider's first token, audio byte or transcript",
    ["service", "provider"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_DURATION = Histogram(
    "victoria_provider_duration_seconds",
    "Time a provider took for a whole request",
    ["service", "provider"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_TOKENS = Counter(
    "victoria_provider_tokens_total", "LLM tokens, as reported by the provider", ["provider", "model", "kind"]
)
LLM_PROMPT_TOKENS = Counter(
    "victoria_llm_prompt_tokens_total",
    "Prompt tokens of the offline LLM: evaluated, or found already read in its context (cached)",
    ["family", "outcome"],
)
TTS_CHARACTERS = Counter("victoria_tts_characters_total", "Characters sent to TTS (what cloud TTS bills)", ["provider"])
STT_AUDIO_SECONDS = Counter(
    "victoria_stt_audio_seconds_total", "Seconds of caller audio transcribed (what cloud STT bills)", ["provider"]
)
BUS_DELIVERY = Histogram(
    "victoria_bus_delivery_seconds",
    "Time from an event's creation (its ts) to its handling by the receiver: bus and scheduling delay",
    ["kind"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
PROVIDER_ERRORS = Counter(
    "victoria_provider_errors_total", "Provider failures by class", ["service", "provider", "error_class"]
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> bool:
    """Expose the default registry on ``port`` (0 = off). A busy port is logged, not fatal, so that a second
    replica on the same host still runs (its metrics then need another ``METRICS_PORT``). Loopback unless
    ``METRICS_HOST`` opens it (compose does, for Prometheus on the container network)."""
    if not port:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.warning("metrics_port_in_use", port=port, hint="set METRICS_PORT to a free port or 0")
        return False
    log.info("metrics_serving", port=port)
    return True
