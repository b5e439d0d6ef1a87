"""The STT worker process: its settings, request, subjects and handler, run by ``shared.service.run_worker``."""

from __future__ import annotations

from services.stt_worker.handler import SERVICE, SttHandler
from services.stt_worker.providers import SttWorkerSettings, describe
from shared import subjects
from shared.events import SttRequest
from shared.service import run_worker


def main() -> None:
    settings = SttWorkerSettings()
    run_worker(settings, SERVICE, subjects.STT_REQUEST, subjects.STT_QUEUE, SttRequest, SttHandler, describe(settings))
