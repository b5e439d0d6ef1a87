"""TTS worker wiring: settings (its own and its providers'), the handler, the shared queue-group runtime, and
the micro service metadata that describes its providers."""

from __future__ import annotations

from services.tts_worker.handler import SERVICE, TtsHandler
from services.tts_worker.providers import TtsWorkerSettings, describe
from shared import subjects
from shared.events import TtsRequest
from shared.service import run_worker


def main() -> None:
    settings = TtsWorkerSettings()
    run_worker(
        settings,
        service=SERVICE,
        subject=subjects.TTS_REQUEST,
        queue=subjects.TTS_QUEUE,
        model=TtsRequest,
        handler=TtsHandler,
        metadata=describe(settings),
    )
