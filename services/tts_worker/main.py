"""TTS worker wiring: settings, the handler, and the shared queue-group runtime."""

from __future__ import annotations

from services.tts_worker.handler import SERVICE, TtsHandler
from shared import subjects
from shared.events import TtsRequest
from shared.service import run_service
from shared.settings import TtsSettings
from shared.worker import serve_worker


def main() -> None:
    settings = TtsSettings()
    run_service(
        "tts_worker",
        settings,
        lambda stop: serve_worker(
            settings,
            stop,
            service=SERVICE,
            subject=subjects.TTS_REQUEST,
            queue=subjects.TTS_QUEUE,
            model=TtsRequest,
            make_handler=lambda instance: TtsHandler(settings, instance),
        ),
    )
