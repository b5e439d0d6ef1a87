"""The dev stack's CPU priorities: work off a reply's critical path (history, the rest of a reply being
written) yields to the services on it; an operator's PROCESS_NICE wins."""

from __future__ import annotations

import pytest

from tools.console import Console
from tools.devstack import DevStack, parse_args
from tools.service_group import SERVICES


def envs(monkeypatch: pytest.MonkeyPatch, base: dict[str, str]) -> dict[str, dict[str, str]]:
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # (not root: the gateway keeps its priority)
    stack = DevStack(parse_args([]), Console([s.name for s in SERVICES], False))
    return {spec.name: stack._service_env(spec, dict(base), 0) for spec in SERVICES}


def test_the_llm_and_the_recorder_yield_to_stt_tts_and_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    env = envs(monkeypatch, {})
    assert env["llm_worker"]["PROCESS_NICE"] == "10" and env["call_recorder"]["PROCESS_NICE"] == "10"
    assert all("PROCESS_NICE" not in env[name] for name in ("stt_worker", "tts_worker", "gateway"))


def test_an_explicit_process_nice_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert envs(monkeypatch, {"PROCESS_NICE": "3"})["llm_worker"]["PROCESS_NICE"] == "3"
