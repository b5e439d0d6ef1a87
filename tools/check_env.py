"""Which providers can run with the current environment, and whether every stored agent can run.

    python -m tools.check_env            # exit 0: every agent's providers are usable
    python -m tools.check_env --no-db    # only the providers (no database needed)

Exit 1 when an agent (or a worker's default) needs a provider that has no key or no model package, naming
the env var or package to fix (each provider's module says what it needs: ``usable(env)``). The seeds'
``scripts/check_env.py``, for the split services.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

from services.llm_worker.providers import PROVIDERS as LLM
from services.stt_worker.providers import PROVIDERS as STT
from services.tts_worker.providers import PROVIDERS as TTS
from shared.call_config import AgentSpec
from shared.provider_catalog import ProviderModule
from shared.settings import CommonSettings, LlmSettings, SttSettings, TtsSettings

# each kind's provider modules: each says what it needs (``usable(env)``: keys set, model packages installed)
REGISTRIES: dict[str, dict[str, ProviderModule]] = {"stt": STT, "llm": LLM, "tts": TTS}
DEFAULT_ENV = {
    kind: (field.upper(), str(cls.model_fields[field].default))
    for kind, cls, field in (
        ("stt", SttSettings, "stt_provider"),
        ("llm", LlmSettings, "llm_provider"),
        ("tts", TtsSettings, "tts_provider"),
    )
}


@dataclass(frozen=True)
class Status:
    usable: bool
    why: str


def provider_status(kind: str, name: str) -> Status:
    module = REGISTRIES[kind].get(name)
    if module is None:
        return Status(False, f"unknown {kind} provider")
    return Status(*module.usable(os.environ))


def defaults() -> dict[str, str]:
    return {kind: os.environ.get(var, default) for kind, (var, default) in DEFAULT_ENV.items()}


def agent_problems(agent_id: str, spec: AgentSpec) -> list[str]:
    wanted = defaults()
    problems = []
    for client_type in ("browser", "twilio", "telnyx"):
        fields = spec.fields_for(client_type)
        for kind, name in (("stt", fields.stt.provider), ("llm", fields.llm.provider), ("tts", fields.voice.provider)):
            chosen = name or wanted[kind]
            status = provider_status(kind, chosen)
            if not status.usable:
                problems.append(f"agent {agent_id!r} ({client_type}) needs {kind} provider {chosen!r}: {status.why}")
    return sorted(set(problems))


async def stored_agents(dsn: str) -> list[tuple[str, AgentSpec]]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch("SELECT agent_id, spec::text AS spec FROM agents ORDER BY agent_id")
    finally:
        await conn.close()
    return [(r["agent_id"], AgentSpec.model_validate_json(r["spec"])) for r in rows]


def gateway_problems() -> list[str]:
    """What would keep the gateway from starting in its mode (``APP_ENV=production`` needs every secret)."""
    from services.gateway.edge.production import production_problems
    from shared.settings import GatewaySettings

    settings = GatewaySettings()
    found = production_problems(settings)
    print(f"gateway: APP_ENV={settings.app_env}, {'ok' if not found else f'{len(found)} problem(s)'}")
    return [f"gateway: {p}" for p in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-db", action="store_true", help="don't read the agents from DATABASE_URL")
    args = parser.parse_args(argv)
    print("providers")
    for kind, registry in sorted(REGISTRIES.items()):
        for name in sorted(registry):
            status = provider_status(kind, name)
            mark = "ok " if status.usable else "-- "
            default = "  (default)" if defaults()[kind] == name else ""
            print(f"  {mark}{kind}:{name:14s} {status.why}{default}")
    problems: list[str] = gateway_problems()
    for kind, name in defaults().items():
        status = provider_status(kind, name)
        if not status.usable:
            problems.append(f"the {kind} worker's default provider {name!r}: {status.why}")
    if not args.no_db:
        dsn = CommonSettings().database_url.get_secret_value()
        try:
            agents = asyncio.run(stored_agents(dsn))
        except Exception as exc:  # no database: say so, the provider table above still stands
            print(f"\nagents: cannot read them ({type(exc).__name__}: {exc}); use --no-db to skip")
            return 2
        print(f"\nagents: {', '.join(a for a, _ in agents) or 'none'}")
        for agent_id, spec in agents:
            problems += agent_problems(agent_id, spec)
    if problems:
        print("\nproblems")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nevery configured provider is usable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
