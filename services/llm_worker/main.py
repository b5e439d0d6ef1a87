"""LLM worker wiring: settings (its own and its providers'), the handler, the shared queue-group runtime, and
the micro service metadata that describes its providers."""

from __future__ import annotations

from services.llm_worker.handler import SERVICE, LlmHandler
from services.llm_worker.providers import LlmWorkerSettings, describe
from shared import subjects
from shared.events import LlmRequest
from shared.service import run_worker


def main() -> None:
    settings = LlmWorkerSettings()
    run_worker(
        settings,
        service=SERVICE,
        subject=subjects.LLM_REQUEST,
        queue=subjects.LLM_QUEUE,
        model=LlmRequest,
        handler=LlmHandler,
        metadata=describe(settings),
    )
