"""How a replica's micro STATS answer becomes a ``ServiceInfo`` (``shared.health``), and the provider names agents
are validated against (``shared.call_config``) without asking a worker."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from nats.micro.service import EndpointStats, ServiceStats
from pydantic import ValidationError

from shared.call_config import AgentSpec
from shared.health import micro_name, parse_stats, stats_subject


def stats_answer(metadata: dict[str, str], data: dict | None) -> bytes:
    """A STATS answer as nats.micro writes it."""
    endpoint = EndpointStats(
        name="status",
        subject="victoria.status.llm",
        queue_group="q",
        num_requests=0,
        num_errors=0,
        processing_time=0,
        average_processing_time=0,
        data=data,
    )
    stats = ServiceStats(
        name="llm_worker", id="abc", version="0.1.0", metadata=metadata, endpoints=[endpoint], started=datetime.now()
    )
    return json.dumps(stats.to_dict()).encode()


def test_a_replicas_stats_say_who_it_is_and_whether_it_is_ready() -> None:
    data = {"uptime_s": 12.5, "ready": False, "detail": {"draining": True, "in_flight": 2}}
    info = parse_stats(stats_answer({"service": "llm", "instance": "vm-7", "providers": "[]"}, data))
    assert info is not None
    assert (info.service, info.instance, info.version, info.ready, info.uptime_s) == (
        "llm",
        "vm-7",
        "0.1.0",
        False,
        12.5,
    )
    assert info.detail == {"draining": True, "in_flight": 2} and info.metadata["providers"] == "[]"


def test_other_micro_services_and_garbage_are_not_replicas() -> None:
    assert parse_stats(stats_answer({"owner": "someone else"}, {"ready": True})) is None
    assert parse_stats(stats_answer({"service": "llm", "instance": "x"}, None)) is None  # no readiness: not ours
    assert parse_stats(b"not json") is None


def test_micro_names_and_subjects() -> None:
    assert [micro_name(s) for s in ("stt", "llm", "tts", "call_recorder", "gateway")] == [
        "stt_worker",
        "llm_worker",
        "tts_worker",
        "call_recorder",
        "gateway",
    ]
    assert stats_subject() == "$SRV.STATS" and stats_subject("tts") == "$SRV.STATS.tts_worker"


@pytest.mark.parametrize(
    ("fields", "path"),
    [({"llm": {"provider": "skynet"}}, "llm.provider"), ({"voice": {"provider": "nope"}}, "voice.provider")],
)
def test_an_agent_naming_an_unknown_provider_is_refused_with_the_field(fields: dict, path: str) -> None:
    with pytest.raises(ValidationError) as info:
        AgentSpec(**fields)
    assert path in str(info.value)
    AgentSpec(llm={"provider": "groq"}, voice={"provider": "azure"}, stt={"provider": "local_whisper"})
