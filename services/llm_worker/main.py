"""The LLM worker process: its settings, request, subjects and handler, run by ``shared.service.run_worker``."""

from __future__ import annotations

from services.llm_worker.handler import SERVICE, LlmHandler
from services.llm_worker.providers import LlmWorkerSettings, describe
from shared import subjects
from shared.events import LlmRequest
from shared.service import run_worker


def main() -> None:
    settings = LlmWorkerSettings()
    run_worker(settings, SERVICE, subjects.LLM_REQUEST, subjects.LLM_QUEUE, LlmRequest, LlmHandler, describe(settings))
