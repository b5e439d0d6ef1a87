"""The gateway's own Prometheus metrics (served on its HTTP port at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import LATENCY_BUCKETS

CALLS_ACTIVE = Gauge("victoria_calls_active", "Calls in progress on this gateway", ["client_type"])
CALLS_TOTAL = Counter("victoria_calls_total", "Calls ended, by how they ended", ["client_type", "reason"])
CALLS_REJECTED = Counter("victoria_calls_rejected_total", "Calls refused at start", ["client_type", "reason"])
LIFECYCLE_DEAD_LETTERED = Counter(
    "victoria_lifecycle_dead_lettered_total", "Lifecycle events the gateway could never publish", ["event"]
)
SPOOL_PENDING = Gauge("victoria_lifecycle_spool_pending", "Lifecycle events spooled on disk and not yet acknowledged")
SPOOL_OVERFLOW = Counter(
    "victoria_lifecycle_spool_overflow_total", "Lifecycle events kept in memory only: the spool was full"
)
SPOOL_REPLAYED = Counter("victoria_lifecycle_spool_replayed_total", "Lifecycle events replayed from the spool at start")
CALL_TOKENS_REJECTED = Counter(
    "victoria_call_tokens_rejected_total", "Media-stream and browser call tokens refused", ["client_type", "code"]
)
TOOL_CALLS = Counter(
    "victoria_tool_calls_total",
    "Tool calls the agents made, by kind and outcome (ok, error, cancelled)",
    ["kind", "status"],
)
TOOL_SECONDS = Histogram(
    "victoria_tool_seconds", "How long a tool call took (HTTP tools: the request)", ["kind"], buckets=LATENCY_BUCKETS
)
BARGE_INS = Counter("victoria_barge_ins_total", "Times a caller talked over the agent", ["client_type"])
# turn-taking (issue 17): the end-of-turn model, replies started ahead of the turn's end, interruptions
END_OF_TURN_DECISIONS = Counter(
    "victoria_end_of_turn_decisions_total",
    "Caller pauses judged: complete or question (the turn ends now), incomplete or unfinished_words (the agent "
    "waits), unavailable (the model could not answer: the fixed window decided)",
    ["decision"],
)
END_OF_TURN_SECONDS = Histogram(
    "victoria_end_of_turn_inference_seconds",
    "End-of-turn model: from a pause's request to its probability (queue + batch inference)",
    buckets=(0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
)
END_OF_TURN_BATCH = Histogram(
    "victoria_end_of_turn_batch_size",
    "Pauses the end-of-turn scorer took from its queue together (each then scored in its own inference)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
TURN_END_SILENCE = Histogram(
    "victoria_turn_end_silence_seconds",
    "Silence between the caller's last speech and the end of the turn, by what ended it (model, max_silence, "
    "silence window)",
    ["reason"],
    buckets=(0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
PREEMPTIVE_REPLIES = Counter(
    "victoria_preemptive_replies_total",
    "Replies started at a pause before the turn ended: used (the turn ended there) or dropped (the caller went on)",
    ["outcome"],
)
INTERRUPTIONS = Counter(
    "victoria_interruptions_total",
    "Caller speech while the agent spoke: barge_in (cut it off), backchannel (too short to interrupt), "
    "resumed (a false interruption: the agent went on where it stopped)",
    ["kind"],
)
TURN_STAGE_SECONDS = Histogram(
    "victoria_turn_stage_seconds",
    "Time from the end of the caller's turn (VAD) to each stage of the reply",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
WS_PROTOCOL_ERRORS = Counter(
    "victoria_ws_protocol_errors_total", "Malformed or unexpected client messages", ["client_type", "code"]
)
OUTBOUND_FRAME_LATENESS = Histogram(
    "victoria_outbound_frame_lateness_seconds",
    "How late each outbound audio frame left against its slot on the call's steady clock",
    ["client_type"],
    buckets=(0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.015, 0.02, 0.04, 0.08, 0.16),
)
WEBHOOKS = Counter(
    "victoria_telephony_webhooks_total", "Provider webhooks received, by outcome", ["provider", "outcome"]
)
PROVIDER_API_CALLS = Counter(
    "victoria_telephony_api_calls_total",
    "Requests to the telephony providers' REST APIs",
    ["provider", "action", "outcome"],
)
GATEWAY_DRAINING = Gauge(
    "victoria_gateway_draining", "1 while this gateway drains after SIGTERM (no new calls, live ones finishing)"
)
DRAIN_CALLS_REMAINING = Gauge(
    "victoria_gateway_drain_calls_remaining", "Live calls a draining gateway is still waiting for"
)
CALL_STATE_TRANSITIONS = Counter(
    "victoria_call_state_transitions_total", "Changes of a call's state (the call state machine)", ["from", "to"]
)
