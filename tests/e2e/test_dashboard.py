"""The dashboard in a real browser: Debian's chromium driven by playwright-core (``web/e2e/dashboard.e2e.mjs``)
against the whole stack on fixed-latency test providers. It edits the default agent's first message and hears it
as the greeting, talks through a WAV file used as the microphone and sees the words transcribed, watches the call
on the Status page, and finds it in the History with its transcript. Screenshots go to docs/screenshots/.

Builds nothing: it uses the dashboard ``make install`` built, and skips (saying what is missing) without chromium,
Node.js, the build or playwright-core. ``DASHBOARD_SCREENSHOTS=<dir>`` puts the screenshots elsewhere."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
import wave
from pathlib import Path

import httpx
import pytest

from shared.global_stop import GlobalStopState, write_state
from tests.integration.conftest import FAST as INTEGRATION_FAST
from tools.embedded import migrate, with_database
from tools.talk import RATE, synthesize

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "services" / "gateway" / "web"
SCRIPT = WEB / "e2e" / "dashboard.e2e.mjs"
SCREENSHOTS = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or REPO / "docs" / "screenshots")
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
API_KEY = "e2e-dashboard-key"
FAST = {**INTEGRATION_FAST, "FAKE_STT_TEXT": "hello, I would like to book a table for two"}


def _missing() -> str | None:
    node = shutil.which("node")
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: install Debian chromium (`make install` does, as root)"
    if node is None:
        return "node not found: install Node.js >= 18"
    if not (WEB / "dist" / "index.html").is_file():
        return "the dashboard is not built: run `make install` (npm ci + npm run build in services/gateway/web)"
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        return "playwright-core missing in services/gateway/web/node_modules: run `make install`"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture
async def own_database(database_url: str):
    """A database of this test's own on the session's server: the test edits the default agent, which must stay
    as migrated in the database the other tests share."""
    import asyncpg

    name = f"victoria_e2e_{uuid.uuid4().hex[:10]}"
    dsn = with_database(database_url, name)
    await migrate(dsn)
    try:
        yield dsn
    finally:
        conn = await asyncpg.connect(with_database(database_url, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _mic_wav(path: Path) -> Path:
    """Speech between pauses (Chrome loops the file): 0.8 s silence, a sentence, 4 s silence."""
    speech = await synthesize("Hello, I would like to book a table for two, please.")
    silence = b"\x00\x00" * RATE
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(silence[: int(0.8 * RATE) * 2] + speech + silence * 4)
    return path


async def test_dashboard_in_chromium(own_database: str, run_service, bus, tmp_path: Path) -> None:
    """With API keys set, as in production: the dashboard sends the key it was given and gets a call token for
    each browser call (its page's Origin is the gateway's own, so the socket is accepted)."""
    await write_state(bus.js, GlobalStopState())  # calls are accepted whatever an earlier test left behind
    env = {**FAST, "RECORDER_DURABLE": f"recorder-{uuid.uuid4().hex[:8]}", "DATABASE_URL": own_database}
    gateway_env = {**env, "API_KEYS": API_KEY}
    for name in ("stt_worker", "llm_worker", "tts_worker", "call_recorder"):
        run_service(name, env)
    gateway = run_service("gateway", gateway_env)
    wav, ready = await asyncio.gather(_mic_wav(tmp_path / "mic.wav"), gateway.wait_ready(timeout=60))
    assert ready["ready"]

    first_message = f"Hello from the dashboard test {uuid.uuid4().hex[:6]}."
    keyed = {"X-API-Key": API_KEY}
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=10, headers=keyed) as client:
        original = (await client.get("/api/v1/agents/default")).json()
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(SCRIPT),
            cwd=WEB,
            env={
                **os.environ,
                "BASE_URL": gateway.url,
                "MIC_WAV": str(wav),
                "SCREENSHOTS": str(SCREENSHOTS),
                "FAILURE_SCREENSHOT": str(tmp_path / "failure.png"),
                "FIRST_MESSAGE": first_message,
                "USER_TEXT": FAST["FAKE_STT_TEXT"],
                "CHROMIUM": str(CHROMIUM),
                "API_KEY": API_KEY,
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
        assert proc.returncode == 0, f"browser run failed ({tmp_path / 'failure.png'}):\n{err.decode()[-4000:]}"
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["ok"] is True
        assert result["latencyRows"] >= 1 and result["historyLines"] >= 3, result
        assert result["endReason"] == "caller_hangup", result
        assert result["bargeIns"] >= 1, result  # the caller spoke over the greeting

        # what the browser saw is what the API has
        agent = (await client.get("/api/v1/agents/default")).json()
        assert agent["spec"]["first_message"] == first_message
        assert agent["version"] == original["version"] + 1
        detail = (await client.get(f"/api/v1/calls/{result['greetingCallId']}")).json()
        assert detail["transcript"][0]["text"] == first_message
        call = (await client.get(f"/api/v1/calls/{result['callId']}")).json()
        assert [line["role"] for line in call["transcript"]][:3] == ["assistant", "user", "assistant"]
        assert call["transcript"][1]["text"] == FAST["FAKE_STT_TEXT"]
    for name in ("agents", "simulator", "status", "history", "call-detail"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name
