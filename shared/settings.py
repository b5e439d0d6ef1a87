"""Settings from the environment (and an optional ``.env``), one class per service over a common base.

Every value has an env var; defaults are only the fallback for local, offline runs. Secrets are
``SecretStr`` so that they never appear in logs or reprs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server(s), comma separated")
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/victoria"), description="PostgreSQL DSN"
    )
    app_env: Literal["development", "production"] = Field(
        default="development",
        description="production: the gateway refuses to start without its secrets (see docs/SECURITY.md)",
    )
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 = no separate /metrics port")
    metrics_host: str = Field(default="127.0.0.1", description="address of the separate /metrics port")
    instance_id: str = Field(default="", description="replica name; defaults to host-pid")
    process_nice: int = Field(
        default=0,
        ge=-20,
        le=19,
        description="niceness added at start: batch services sharing cores with the gateway can yield to its "
        "real-time audio pacing (negative values need CAP_SYS_NICE)",
    )

    # liveness of the stateless workers (shared/worker.py beats, services/gateway/call/worker_watch.py judges)
    worker_beat_s: float = Field(
        default=0.25, gt=0, le=5, description="how often a worker replica publishes the work it holds"
    )
    worker_lost_after_s: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="a request no live worker has listed for this long is lost (the replica died, or its result "
        "went missing): the gateway retries it from where it stopped",
    )

    # error policy "global stop": the platform stops taking new calls when critical call errors repeat
    global_stop_max_errors_in_window: int = Field(
        default=3, ge=1, description="critical call errors within the window that trip the global stop"
    )
    global_stop_window_seconds: float = Field(default=60.0, gt=0, description="sliding window, by event time")
    admin_notification_webhook_url: str = Field(
        default="", description="POSTed JSON when the global stop trips; empty = no notification"
    )
    admin_api_key: SecretStr = Field(
        default=SecretStr(""), description="X-API-Key for /admin; empty = admin endpoints refuse with 503"
    )
    # agent actions: HTTP tools (gateway) and post-call webhooks (recorder) are signed with it (shared/signing.py)
    webhook_signing_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC-SHA256 key of the X-Victoria-Signature header on HTTP tool calls and post-call webhooks "
        "(required in production; empty in development = a fixed development key, said in the log)",
    )


class WorkerSettings(CommonSettings):
    worker_concurrency: int = Field(
        default=256,
        ge=1,
        le=1024,
        description="requests a replica holds at once (4x that wait before it answers busy); a CPU-bound local "
        "model runs only its own max_parallel of them at a time, the others queue for it",
    )
    provider_fallbacks: str = Field(
        default="",
        description="providers to try in order when the chosen one fails before answering, e.g. local_llama "
        "(the TTS worker's default: local_kokoro, which reads the Spanish that piper's English voice refuses)",
    )
    circuit_failure_threshold: int = Field(default=5, ge=1, description="failures in a row that open a circuit")
    circuit_reset_s: float = Field(default=30.0, gt=0, description="how long an open circuit skips its provider")
    request_timeout_s: float = Field(default=30.0, gt=0)
    worker_ack_timeout_s: float = Field(
        default=1.0, gt=0, description="wait for a worker to accept a chained request before retrying once"
    )
    worker_drain_timeout_s: float = Field(
        default=20.0,
        ge=0,
        le=600,
        description="SIGTERM: how long a worker finishes the requests it holds (taking no new ones) before it exits",
    )


# The HTTP policy of a worker kind's cloud providers, ``{kind}_request_timeout_s``, ``{kind}_max_retries``,
# ``{kind}_retry_base_delay_s`` and ``{kind}_retry_max_delay_s`` (``shared.provider_http.HttpProvider`` reads them).
# Spelled out in each kind's class below rather than generated, so that every env var can be found by its name.
RequestTimeout = Annotated[float, Field(gt=0)]
MaxRetries = Annotated[int, Field(ge=0, le=10)]
FirstBackoff = Annotated[float, Field(ge=0, description="first backoff; doubles, with jitter")]
BackoffCap = Annotated[float, Field(ge=0, description="cap on backoff and on Retry-After")]


class SttSettings(WorkerSettings):
    """The STT worker's own settings; each provider's are in its module (``services/stt_worker/providers/``)."""

    stt_provider: str = "local_whisper"
    stt_request_timeout_s: RequestTimeout = 15.0
    stt_max_retries: MaxRetries = 2
    stt_retry_base_delay_s: FirstBackoff = 0.25
    stt_retry_max_delay_s: BackoffCap = 5.0


class LlmSettings(WorkerSettings):
    """The LLM worker's own settings; each provider's are in its module (``services/llm_worker/providers/``)."""

    llm_provider: str = "local_llama"
    llm_request_timeout_s: RequestTimeout = 20.0
    llm_max_retries: MaxRetries = 2
    llm_retry_base_delay_s: FirstBackoff = 0.25
    llm_retry_max_delay_s: BackoffCap = 5.0


class TtsSettings(WorkerSettings):
    """The TTS worker's own settings; each provider's are in its module (``services/tts_worker/providers/``)."""

    tts_provider: str = "local_piper"
    # piper's voice is English: Spanish requests fall back to Kokoro's Spanish voices (``unsupported_language``)
    provider_fallbacks: str = "local_kokoro"
    tts_chunk_ms: int = Field(default=200, ge=20, le=2000, description="size of streamed audio chunks")
    tts_request_timeout_s: RequestTimeout = 15.0
    tts_max_retries: MaxRetries = 2
    tts_retry_base_delay_s: FirstBackoff = 0.25
    tts_retry_max_delay_s: BackoffCap = 5.0


class ProviderSettings(BaseSettings):
    """Base of the settings a provider shares across worker kinds (``shared.provider_http``: Groq, Azure)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")


class GatewaySettings(CommonSettings):
    gateway_host: str = Field(default="127.0.0.1", description="listen address; 0.0.0.0 opens it to the network")
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = Field(default="", description="URL printed for people; default http://127.0.0.1:PORT")

    vad_engine: Literal["webrtc+silero", "silero", "webrtc"] = Field(
        default="webrtc+silero",
        description="webrtc+silero: WebRTC per frame, Silero confirms onsets; silero: every frame; webrtc: alone",
    )
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    end_of_turn_model: bool = Field(
        default=True,
        description="load the end-of-turn model (Smart Turn v3.2, one per gateway, batched across calls) for "
        "agents with turn.end_of_turn 'model'; false = every call ends turns on the fixed vad_stop_ms window",
    )
    end_of_turn_window_s: float = Field(
        default=6.0,
        ge=0.5,
        le=8.0,
        description="seconds of the turn the end-of-turn model reads (its last N); 8 = as published, 6 (the "
        "default) costs ~1/3 less CPU per pause and changes ~1 verdict in 10, as many as the model's own int8 "
        "quantisation does (bench/turn_model_window.py)",
    )
    end_of_turn_margin_s: float = Field(
        default=2.0,
        ge=0.0,
        le=8.0,
        description="a short turn is read with the smallest whole-second cut of that window (3 s at least) that "
        "holds it plus this much padding: a 2 s turn costs ~half of 6 s; 0 = always the whole window",
    )
    api_keys: SecretStr = Field(
        default=SecretStr(""), description="comma-separated keys for X-API-Key; empty = API open (dev only)"
    )
    api_rate_limit_per_minute: int = Field(
        default=1200, ge=0, description="requests a minute per API key and client IP on /api/v1; 0 = no limit"
    )
    api_rate_limit_burst: int = Field(default=200, ge=1, description="requests allowed at once above that rate")
    api_max_body_bytes: int = Field(
        default=1_000_000, ge=1024, description="largest request body on /api/v1 and /admin (413 beyond it)"
    )
    admin_failures_per_minute: int = Field(
        default=10, ge=1, description="failed admin-key attempts a minute per client address before 429"
    )

    # edge trust (docs/SECURITY.md)
    stream_token_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key of the per-call media-stream and browser-call tokens; empty = random per process (dev)",
    )
    stream_token_ttl_s: float = Field(default=120.0, gt=0, le=3600, description="how long a call token is valid")
    allowed_origins: str = Field(
        default="", description="comma-separated Origins allowed on /ws/simulator; empty = the gateway's own origin"
    )
    max_calls: int = Field(
        default=200, ge=1, description="live calls per gateway replica (measured ~230 per core); beyond it: busy"
    )
    max_browser_calls_per_client: int = Field(
        default=4, ge=1, description="simultaneous simulator calls (and pending sockets) per client address"
    )
    telephony_providers: str = Field(
        default="twilio,telnyx", description="phone providers served; the others' webhooks and sockets answer 404"
    )
    max_turn_seconds: float = Field(default=20.0, gt=1, le=24, description="longer speech is cut into turns")
    drain_timeout_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="SIGTERM: how long live calls may go on (no new ones taken) before the agent says the "
        "shutdown goodbye and ends them",
    )

    stt_timeout_s: float = Field(default=15.0, gt=0)
    llm_timeout_s: float = Field(default=30.0, gt=0)
    tts_timeout_s: float = Field(default=15.0, gt=0)
    worker_ack_timeout_s: float = Field(default=1.0, gt=0)
    chain_stages: bool = Field(
        default=True,
        description="STT sends the LLM request, LLM the TTS requests themselves (fewer hops); false: the gateway does",
    )

    max_ws_message_bytes: int = Field(default=256_000, ge=1024)
    outbound_frame_ms: int = Field(default=40, ge=10, le=200)
    outbound_lead_ms: int = Field(default=120, ge=0, le=2000, description="audio sent ahead of real time")

    # telephony (Twilio Media Streams, Telnyx Call Control + media streaming)
    public_host: str = Field(
        default="", description="host[:port] the providers reach us at (wss://PUBLIC_HOST/...); empty = request Host"
    )
    telephony_frame_ms: int = Field(default=20, ge=10, le=100, description="outbound media frame for phone calls")
    telephony_lead_ms: int = Field(
        default=20, ge=0, le=1000, description="phone audio sent ahead of real time (the provider buffers the rest)"
    )
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = Field(
        default=SecretStr(""), description="validates X-Twilio-Signature and hangs up over REST; empty = no check"
    )
    twilio_api_base: str = "https://api.twilio.com"
    telnyx_api_key: SecretStr = Field(default=SecretStr(""), description="Call Control v2 API key (answer, hangup)")
    telnyx_public_key: str = Field(
        default="", description="base64 Ed25519 key that verifies Telnyx webhooks; empty = no check"
    )
    telnyx_api_base: str = "https://api.telnyx.com"
    telnyx_stream_codec: Literal["PCMU", "PCMA"] = "PCMU"
    telnyx_stream_auth_token: SecretStr = Field(
        default=SecretStr(""), description="expected x-telnyx-streaming-auth-token on /telnyx/media; empty = none"
    )
    telephony_refusal_message: str = Field(
        default="",
        description="said to phone calls refused while calls are stopped; empty = shared/texts.py's, "
        "in the language of the agent the called number reaches",
    )

    # durable lifecycle (services/gateway/lifecycle/spool.py) and the gateway's heartbeat
    lifecycle_spool_dir: str = Field(
        default="",
        description="directory of the on-disk spool of lifecycle events not yet acknowledged by JetStream (a "
        "persistent volume in production); empty = $VICTORIA_RUN_DIR or the temp dir, one per instance and port",
    )
    lifecycle_spool_max_mb: float = Field(
        default=64.0, gt=0, description="bound on the spool file; beyond it new events are kept in memory only"
    )
    gateway_beat_interval_s: float = Field(
        default=2.0, gt=0, le=60, description="how often the gateway publishes its heartbeat (gateway.beat.*)"
    )


class RecorderSettings(CommonSettings):
    recorder_durable: str = "call-recorder"
    recorder_batch: int = Field(default=64, ge=1, le=1000)
    recorder_ack_wait_s: float = Field(default=30.0, gt=0)
    recorder_max_deliver: int = Field(
        default=50, ge=1, description="deliveries before JetStream gives up on an event (outages don't count)"
    )
    extraction_enabled: bool = Field(default=True, description="post-call extraction through the LLM workers")
    extraction_max_attempts: int = Field(default=2, ge=1, le=10)
    extraction_timeout_s: float = Field(default=60.0, gt=0)
    extraction_concurrency: int = Field(default=2, ge=1, le=64)
    extraction_provider: str = Field(default="", description="LLM provider for extraction; empty = worker default")
    extraction_model: str = ""

    # gateway_lost reconciliation (services/call_recorder/reconcile.py)
    gateway_lost_after_s: float = Field(
        default=15.0, gt=0, description="a gateway whose beats stopped this long has lost its in-progress calls"
    )
    reconcile_interval_s: float = Field(default=5.0, gt=0, description="how often in-progress calls are checked")
    reconcile_grace_s: float = Field(
        default=0.0,
        ge=0,
        description="after start, wait GATEWAY_LOST_AFTER_S plus this before judging gateways never heard beating",
    )
    # the global stop counts critical errors straight from the stream (services/call_recorder/global_stop.py)
    global_stop_durable: str = Field(
        default="global-stop", description="durable consumer of lifecycle.call.error shared by every recorder"
    )
    extraction_context_tokens: int = Field(
        default=0,
        ge=0,
        description="context window (tokens) extraction's prompt + reply must fit; 0 = the provider's "
        "(LLM_CONTEXT_TOKENS for local_llama, the catalogue's for cloud ones)",
    )
    llm_provider: str = Field(
        default="local_llama", description="the LLM workers' provider (LLM_PROVIDER), when EXTRACTION_PROVIDER is empty"
    )
    llm_context_tokens: int = Field(default=2048, ge=256, description="local_llama's context (LLM_CONTEXT_TOKENS)")

    # the post-call webhook (services/call_recorder/webhooks.py), signed with WEBHOOK_SIGNING_SECRET
    webhook_retry_base_s: float = Field(
        default=2.0, gt=0, le=3600, description="first retry delay of a failed webhook delivery; doubles, with jitter"
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=50, description="attempts of a webhook delivery before it is marked failed"
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120, description="one webhook POST, whole")
    webhook_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="how often the recorder looks for webhook deliveries due"
    )


class MaintenanceSettings(CommonSettings):
    """``python -m tools.db``: backups, retention clean-up and the schedule that runs both (compose's
    ``maintenance`` service)."""

    retention_days: int = Field(
        default=365, ge=0, description="calls (and their transcripts) older than this are deleted; 0 = keep forever"
    )
    retention_batch: int = Field(default=500, ge=1, le=100_000, description="calls deleted per transaction")
    backup_dir: str = Field(default="backups", description="where `python -m tools.db backup` writes its dumps")
    backup_keep: int = Field(default=7, ge=0, description="newest backups kept in BACKUP_DIR; 0 = keep all")
    pg_bin_dir: str = Field(
        default="", description="directory with pg_dump/pg_restore; empty = the embedded PostgreSQL's, then PATH"
    )
    maintenance_interval_h: float = Field(
        default=24.0, gt=0, description="`python -m tools.db schedule`: hours between backup + retention runs"
    )
