"""STT worker wiring: settings (its own and its providers'), the handler, the shared queue-group runtime, and
the micro service metadata that describes its providers."""

from __future__ import annotations

from services.stt_worker.handler import SERVICE, SttHandler
from services.stt_worker.providers import SttWorkerSettings, describe
from shared import subjects
from shared.events import SttRequest
from shared.service import run_worker


def main() -> None:
    settings = SttWorkerSettings()
    run_worker(
        settings,
        service=SERVICE,
        subject=subjects.STT_REQUEST,
        queue=subjects.STT_QUEUE,
        model=SttRequest,
        handler=SttHandler,
        metadata=describe(settings),
    )
