"""The TTS worker process: its settings, request, subjects and handler, run by ``shared.service.run_worker``."""

from __future__ import annotations

from services.tts_worker.handler import SERVICE, TtsHandler
from services.tts_worker.providers import TtsWorkerSettings, describe
from shared import subjects
from shared.events import TtsRequest
from shared.service import run_worker


def main() -> None:
    settings = TtsWorkerSettings()
    run_worker(settings, SERVICE, subjects.TTS_REQUEST, subjects.TTS_QUEUE, TtsRequest, TtsHandler, describe(settings))
