"""The dashboard in a real browser: Debian's chromium driven by playwright-core (``web/e2e/dashboard.e2e.mjs``)
against the whole stack on fixed-latency test providers. It edits the default agent's first message and hears it
as the greeting, talks through a WAV file used as the microphone and sees the words transcribed, watches the call
on the Status page, and finds it in the History with its transcript. Screenshots go to docs/screenshots/.

Agent actions (``web/e2e/agent_actions.e2e.mjs``): the default agent gets an HTTP tool (served by this test on
127.0.0.1), a transfer target and a webhook in the Agents page; a call's words make the fake LLM call the tool and
the keypad sends digits; the call's page shows the tool turn collapsed, then its arguments and result, the keys as
keypad input, and resends the webhook, which this test's receiver gets signed.

Builds nothing: it uses the dashboard ``make install`` built, and skips (saying what is missing) without chromium,
Node.js, the build or playwright-core. ``DASHBOARD_SCREENSHOTS=<dir>`` puts the screenshots elsewhere."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from shared.global_stop import GlobalStopState, write_state
from shared.signing import DELIVERY_HEADER, SIGNATURE_HEADER, key_for, verify
from tests.integration.conftest import FAST as INTEGRATION_FAST
from tools.embedded import migrate, with_database
from tools.talk import RATE, synthesize

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "services" / "gateway" / "web"
SCRIPT = WEB / "e2e" / "dashboard.e2e.mjs"
ACTIONS_SCRIPT = WEB / "e2e" / "agent_actions.e2e.mjs"
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


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names in lowercase
    body: bytes


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Received]]]:
    """A real HTTP server on 127.0.0.1 for the agent's HTTP tool (``/tools/...``: answers the free tables) and its
    post-call webhook (``/hooks``: 200); every request it got, in order."""
    got: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = b'{"free_tables": 3, "at": "21:00"}' if self.path.startswith("/tools/") else b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


async def _run_node(script: Path, env: dict[str, str], failure: Path) -> dict:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        cwd=WEB,
        env={**os.environ, **env, "FAILURE_SCREENSHOT": str(failure), "CHROMIUM": str(CHROMIUM)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    assert proc.returncode == 0, f"browser run failed ({failure}):\n{err.decode()[-4000:]}"
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_agent_actions_in_chromium(
    own_database: str, run_service, bus, tmp_path: Path, receiver: tuple[str, list[Received]]
) -> None:
    """The tool, keypad and webhook pieces of the dashboard against the real gateway, workers and recorder."""
    await write_state(bus.js, GlobalStopState())
    base, got = receiver
    secret = f"e2e-{uuid.uuid4().hex}"
    tool = "check_tables"
    script = [{"when": "book a table", "say": "Let me check.", "call": tool, "arguments": {"party": 2}}]
    env = {
        **FAST,
        "RECORDER_DURABLE": f"recorder-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": own_database,
        "FAKE_LLM_TOOL_SCRIPT": json.dumps(script),
        "WEBHOOK_SIGNING_SECRET": secret,
        "WEBHOOK_RETRY_BASE_S": "0.2",
    }
    for name in ("stt_worker", "llm_worker", "tts_worker", "call_recorder"):
        run_service(name, env)
    gateway = run_service("gateway", {**env, "API_KEYS": API_KEY})
    wav, ready = await asyncio.gather(_mic_wav(tmp_path / "mic.wav"), gateway.wait_ready(timeout=60))
    assert ready["ready"]

    result = await _run_node(
        ACTIONS_SCRIPT,
        {
            "BASE_URL": gateway.url,
            "MIC_WAV": str(wav),
            "SCREENSHOTS": str(SCREENSHOTS),
            "USER_TEXT": FAST["FAKE_STT_TEXT"],
            "TOOL_NAME": tool,
            "TOOL_URL": f"{base}/tools/{tool}",
            "WEBHOOK_URL": f"{base}/hooks",
            "KEYS": "42#",
            "API_KEY": API_KEY,
        },
        tmp_path / "failure.png",
    )
    assert result["ok"] is True and result["problems"] == [], result
    assert result["schemaRefused"] is True, result  # the browser kept a schema that is not JSON
    assert "Sales" in result["apiErrorOnTool"], result  # the API's 422, shown on the tool it names
    assert tool in result["liveToolLine"], result
    assert result["collapsed"] is True and tool in result["toolSummary"], result
    assert json.loads(result["toolArguments"]) == {"party": 2}, result
    assert json.loads(result["toolResult"]) == {"free_tables": 3, "at": "21:00"}, result
    assert "42" in result["dtmfLine"], result

    # what the browser saw is what the API has and what the receiver got
    async with httpx.AsyncClient(
        base_url=gateway.url, trust_env=False, timeout=10, headers={"X-API-Key": API_KEY}
    ) as client:
        agent = (await client.get("/api/v1/agents/default")).json()["spec"]
        call = (await client.get(f"/api/v1/calls/{result['callId']}")).json()
    assert [t["kind"] for t in agent["tools"]] == ["end_call", "transfer_call", "http"]
    assert agent["tools"][1]["targets"] == {"sales": "+34910000001"}
    assert agent["webhook"]["url"] == f"{base}/hooks"
    tool_calls = [r for r in got if r.path == f"/tools/{tool}"]
    assert tool_calls and json.loads(tool_calls[0].body) == {"party": 2}
    assert [line["tool"]["name"] for line in call["transcript"] if line["role"] == "tool"][:1] == [tool]
    assert any(line["dtmf"] for line in call["transcript"])
    by_id = {d["id"]: d for d in call["webhook_deliveries"]}
    assert by_id[result["resentId"]]["status"] == "delivered"
    assert by_id[result["resentId"]]["requested_by"] == "resend"
    hooks = [r for r in got if r.path == "/hooks"]
    assert result["resentId"] in {r.headers[DELIVERY_HEADER.lower()] for r in hooks}
    hook_key, tool_key = key_for(secret, f"{base}/hooks"), key_for(secret, f"{base}/tools/{tool}")
    assert all(verify(hook_key, r.body, r.headers[SIGNATURE_HEADER.lower()]) for r in hooks)
    assert all(verify(tool_key, r.body, r.headers[SIGNATURE_HEADER.lower()]) for r in tool_calls)
    for name in ("agent-tools", "simulator-actions", "call-detail-actions"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name
