"""STT worker wiring: settings, the handler, and the shared queue-group runtime."""

from __future__ import annotations

from services.stt_worker.handler import SERVICE, SttHandler
from shared import subjects
from shared.events import SttRequest
from shared.service import run_service
from shared.settings import SttSettings
from shared.worker import serve_worker


def main() -> None:
    settings = SttSettings()
    run_service(
        "stt_worker",
        settings,
        lambda stop: serve_worker(
            settings,
            stop,
            service=SERVICE,
            subject=subjects.STT_REQUEST,
            queue=subjects.STT_QUEUE,
            model=SttRequest,
            make_handler=lambda instance: SttHandler(settings, instance),
        ),
    )
