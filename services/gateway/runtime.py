"""What the gateway process shares between calls: the bus, the lifecycle outbox, the database pool, the
live sessions, and the answers to "may a new call start?" and "which config does it run with?"."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import asyncpg

from services.gateway.agents import AgentStore, ConfigResolver
from services.gateway.call.audio_cache import AudioCache
from services.gateway.call.http_tool import tools_client
from services.gateway.call.turn_detector import VadEngine
from services.gateway.call.turn_taking import TurnModel
from services.gateway.call.worker_watch import WorkerWatch
from services.gateway.call_control import CallControlRouter
from services.gateway.edge.call_tokens import CallClaims, CallTokens, TokenError, TokenKind, tokens_from_secret
from services.gateway.edge.webhook_dedupe import SharedSeen
from services.gateway.lifecycle.outbox import LifecycleOutbox
from services.gateway.lifecycle.spool import LifecycleSpool, default_spool_dir
from services.gateway.transports.ws_close import CLOSE_RESTART
from shared import subjects
from shared.bus import Bus
from shared.call_config import CallConfig, ClientType
from shared.events import GatewayBeat
from shared.global_stop import GlobalStopWatcher
from shared.health import default_instance_id
from shared.heartbeat import Heartbeat
from shared.logging import get_logger
from shared.settings import GatewaySettings

if TYPE_CHECKING:
    from services.gateway.call.session import CallSession
    from services.gateway.call.transport import Transport

log = get_logger(__name__)

RESERVATION_S = 15.0  # a phone call answered by a webhook holds a slot this long while its stream connects


async def load_turn_model(settings: GatewaySettings) -> TurnModel | None:
    """The end-of-turn model (Smart Turn), warmed up; None (every call then ends turns on the fixed silence
    window) when it is switched off or cannot load, which is said once, loudly."""
    if not settings.end_of_turn_model:
        return None
    try:
        from services.gateway.end_of_turn import EndOfTurnScorer

        scorer = EndOfTurnScorer.shared(window_s=settings.end_of_turn_window_s, margin_s=settings.end_of_turn_margin_s)
        await scorer.warm()
    except Exception as exc:  # (missing weights, a broken onnxruntime): calls still work, on the fixed window
        log.error("end_of_turn_model_unavailable", error=str(exc) or type(exc).__name__, fix="make install")
        return None
    log.info("end_of_turn_model_ready")
    return scorer


class GatewayRuntime:
    def __init__(self, settings: GatewaySettings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self.instance = settings.instance_id or default_instance_id()
        spool = LifecycleSpool(
            default_spool_dir(settings), max_bytes=int(settings.lifecycle_spool_max_mb * 1024 * 1024)
        )
        self.outbox = LifecycleOutbox(bus, spool=spool, instance=self.instance)
        interval = settings.gateway_beat_interval_s
        self.heartbeat = Heartbeat(
            bus,
            subjects.gateway_beat_subject(self.instance),
            lambda: GatewayBeat(instance=self.instance, calls=sorted(self.sessions), interval_s=interval),
            interval,
        )
        self.pool: asyncpg.Pool | None = None
        self.sessions: dict[str, CallSession] = {}
        self.accepting = True
        self.draining = False  # SIGTERM: no new calls while the live ones finish (services/gateway/drain.py)
        self.agents = ConfigResolver(bus)
        self.audio_cache = AudioCache()
        self._pool_task: asyncio.Task[None] | None = None
        self.global_stop = GlobalStopWatcher(bus.js)
        self.worker_watch = WorkerWatch(bus, lost_after_s=settings.worker_lost_after_s)
        self.clients: dict[str, Any] = {}  # provider REST clients (Twilio, Telnyx), made on first use
        self.tools_http = tools_client()  # agents' HTTP tools, every call's (call/http_tool.py)
        self.tokens: CallTokens = tokens_from_secret(
            settings.stream_token_secret.get_secret_value(), settings.stream_token_ttl_s
        )
        # a token is spent once on every replica, not once per replica (a stream replayed to another one)
        self.spent_tokens = SharedSeen(
            bus.js, "nonce", bucket=subjects.CALL_TOKENS_BUCKET, ttl_s=settings.stream_token_ttl_s + 60
        )
        self.browser_clients: Counter[str] = Counter()  # open simulator sockets per client address
        self._reserved: dict[str, float] = {}  # phone call id -> until when its answered stream holds a slot
        self.call_control = CallControlRouter(self)  # commands for calls that may live on another replica
        self.turn_model: TurnModel | None = None  # the end-of-turn model, shared by every call (loaded at start)

    async def check_call_token(self, token: object, kind: TokenKind, *, call_id: str | None = None) -> CallClaims:
        """The token's claims when it is valid here and no replica has spent it yet (:class:`TokenError` if
        not). While NATS is unreachable, this replica's own memory of spent tokens decides."""
        claims = self.tokens.check(token, kind, call_id=call_id)
        if not await self.spent_tokens.add(claims.nonce):
            raise TokenError("replayed", "call token already used")
        return claims

    async def start(self) -> None:
        self.turn_model = await load_turn_model(self.settings)
        await self.bus.ensure_lifecycle_stream()
        self.outbox.start()
        self.heartbeat.start()
        await self.agents.start()
        await self.global_stop.start()
        await self.worker_watch.start()
        await self.call_control.start()
        self._pool_task = asyncio.create_task(self._connect_db())

    async def _connect_db(self) -> None:
        """Keep trying: the gateway serves calls without PostgreSQL; readiness reports it missing."""
        delay = 0.5
        while self.pool is None:
            try:
                self.pool = await asyncpg.create_pool(
                    self.settings.database_url.get_secret_value(), min_size=1, max_size=5, timeout=5
                )
                self.agents.store = AgentStore(self.pool)
                log.info("database_connected")
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("database_unavailable", error=str(exc) or type(exc).__name__, retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)

    async def end_calls_now(self, timeout_s: float = 5.0) -> None:
        """End every call still live as ``gateway_shutdown`` (close 1012: call again), at once, each bounded by
        ``timeout_s``: before uvicorn closes the sockets (which a session would take for the caller hanging up)
        and again at stop. After a drain only a second signal, or goodbyes that timed out, leave any."""
        left = [s for s in self.sessions.values() if not s.ended]
        if not left:
            return
        log.warning("gateway_ending_calls_now", calls=len(left))
        ends = [asyncio.create_task(s.end("gateway_shutdown", close_code=CLOSE_RESTART)) for s in left]
        _done, pending = await asyncio.wait(ends, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*ends, return_exceptions=True)

    async def stop(self) -> None:
        """SIGTERM: refuse new calls, end the live ones, flush lifecycle events, close connections."""
        self.accepting = False
        await self.end_calls_now()
        await self.call_control.stop()
        await self.agents.stop()
        await self.outbox.stop()
        await self.heartbeat.stop()
        await self.global_stop.stop()
        await self.worker_watch.stop()
        for client in self.clients.values():
            await client.aclose()
        await self.tools_http.aclose()
        if self._pool_task:
            self._pool_task.cancel()
        if self.pool is not None:
            await self.pool.close()
        await self.bus.close()

    def new_session(self, call_id: str, transport: Transport, config: CallConfig, **ids: Any) -> CallSession:
        """A call's session wired to this gateway's bus, outbox, VAD and audio cache (not yet started)."""
        from services.gateway.call.session import CallSession

        return CallSession(
            call_id=call_id,
            transport=transport,
            bus=self.bus,
            outbox=self.outbox,
            settings=self.settings,
            config=config,
            vad=self.new_vad(),
            audio_cache=self.audio_cache,
            worker_watch=self.worker_watch,
            http=self.tools_http,
            model=self.turn_model,
            **ids,
        )

    def new_vad(self) -> VadEngine:
        if self.settings.vad_engine == "webrtc+silero":
            from services.gateway.call.vad_silero import GatedSileroVad

            return GatedSileroVad(self.settings.vad_aggressiveness)
        if self.settings.vad_engine == "silero":
            from services.gateway.call.vad_silero import SileroVad

            return SileroVad()
        from services.gateway.call.vad_webrtc import WebRtcVad

        return WebRtcVad(self.settings.vad_aggressiveness)

    def refusal(self, call_id: str | None = None) -> str | None:
        """Why a new call can't start now (None = it can). ``busy`` is capacity (``MAX_CALLS``), never an
        error: it is counted in ``victoria_calls_rejected_total`` and never reaches the global stop. A phone
        call whose webhook reserved a slot (``call_id``) is not refused as busy when its stream arrives."""
        if not self.accepting:
            return "shutting_down"
        if self.draining and (call_id is None or self._reserved.get(call_id, 0.0) <= time.monotonic()):
            return "draining"  # a phone call answered before the drain began may still connect its stream
        if not self.bus.connected:
            return "bus_unavailable"
        if self.global_stop.active:
            return "global_stop"
        if call_id is not None and call_id in self._reserved:
            return None
        if self.load() >= self.settings.max_calls:
            return "busy"
        return None

    def load(self) -> int:
        """Live calls plus phone calls answered whose stream has not connected yet."""
        now = time.monotonic()
        if self._reserved:
            self._reserved = {k: until for k, until in self._reserved.items() if until > now}
        return len(self.sessions) + sum(1 for k in self._reserved if k not in self.sessions)

    def reserve(self, call_id: str) -> None:
        """A webhook answered ``call_id`` with a stream: keep it a slot until the stream starts."""
        self._reserved[call_id] = time.monotonic() + RESERVATION_S

    def release(self, call_id: str) -> None:
        self._reserved.pop(call_id, None)

    @staticmethod
    def refusal_message(code: str) -> str:
        return {
            "shutting_down": "this gateway is shutting down; call again",
            "draining": "this gateway is restarting and takes no new calls; call again (another one answers)",
            "bus_unavailable": "the gateway has lost its message bus; try again shortly",
            "global_stop": "new calls are paused by the operator's global stop (repeated critical errors); "
            "try again later",
            "busy": "all lines are busy; try again shortly",
        }.get(code, code)

    async def config_for_call(self, client_type: ClientType, agent_id: str | None) -> CallConfig:
        """The frozen config a new call runs with; ``LookupError`` for an unknown or unusable agent."""
        return await self.agents.config_for_call(client_type, agent_id)
