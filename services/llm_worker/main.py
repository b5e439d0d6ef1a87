"""LLM worker wiring: settings, the handler, and the shared queue-group runtime."""

from __future__ import annotations

from services.llm_worker.handler import SERVICE, LlmHandler
from shared import subjects
from shared.events import LlmRequest
from shared.service import run_service
from shared.settings import LlmSettings
from shared.worker import serve_worker


def main() -> None:
    settings = LlmSettings()
    run_service(
        "llm_worker",
        settings,
        lambda stop: serve_worker(
            settings,
            stop,
            service=SERVICE,
            subject=subjects.LLM_REQUEST,
            queue=subjects.LLM_QUEUE,
            model=LlmRequest,
            make_handler=lambda instance: LlmHandler(settings, instance),
        ),
    )
