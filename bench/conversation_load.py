"""Orchestration overhead under load: N concurrent browser callers through the real gateway, NATS and
workers running fixed-latency test providers, so that whatever time remains is Victoria's own.

    python -m bench.conversation_load                 # N = 1, 20, 50; 3 turns per call
    python -m bench.conversation_load --n 1 10 20 50 --turns 3
    CHAIN_STAGES=false python -m bench.conversation_load ...   # every request sent by the gateway

Method (../shared/docs/benchmarking.md): providers STT 200 ms after the turn, LLM first token 150 ms then
50 tokens/s, TTS first byte 100 ms per segment; VAD end-of-turn window 200 ms. The whole server (devstack
and every service under it) is pinned to core 0, the callers to core 1. Each caller: greeting, then T turns
of a ~3 s utterance followed by silence until the reply has played; in its last turn it talks over the
reply (barge-in). Reported, median / p99 over all turns:

- overhead = (VAD end of turn → first reply byte sent, measured by the gateway) − providers' budget
  (200 + 150 + 100 ms; the fake reply's first token is a whole sentence, so no first-segment wait);
- the same from the caller's side: last speech frame sent → first reply audio received − (200 ms VAD
  window + 450 ms budget), which adds VAD granularity and both WebSocket hops;
- per hop beyond each provider's latency: STT, LLM, TTS, gateway send;
- barge-in reaction: first frame of the interrupting speech sent → ``clear`` received;
- pacing: a playback clock per reply at the audio rate; the longest underrun gap and the lead;
- server CPU (user+system) and peak RSS per concurrent call, for all server processes (the embedded
  PostgreSQL included) and the gateway, and CPU per process;
- each event kind's mean delivery (creation → handling in the next process), and the fake providers' own
  timer error (their first result's actual delay − the configured one: part of the overhead, not Victoria's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

from bench.stack import add_placement_args, place, running_stack
from tools.simcaller import SimCaller
from tools.talk import synthesize

RATE = 16000
BYTES_PER_S = RATE * 2
PROVIDER_BUDGET_MS = {"stt": 200, "llm": 150, "tts": 100}  # the fakes' first results (LLM: first token)
BUDGET_MS = sum(PROVIDER_BUDGET_MS.values())
VAD_STOP_MS = 200
PROVIDERS = {
    "FAKE_STT_LATENCY_MS": "200",
    "FAKE_LLM_FIRST_TOKEN_MS": "150",
    "FAKE_LLM_TOKENS_PER_S": "50",
    "FAKE_TTS_FIRST_BYTE_MS": "100",
    "FAKE_LLM_REPLY": "Sure. I can help you with that booking. What time would you like to come in?",
    # every simulated caller comes from 127.0.0.1: the per-address admission cap (4) would refuse all but four.
    # Not a performance setting; the workers and the gateway run their shipped defaults.
    "MAX_BROWSER_CALLS_PER_CLIENT": "1000",
}


@dataclass
class Results:
    overhead: list[float] = field(default_factory=list)
    client_overhead: list[float] = field(default_factory=list)
    hops: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in ("stt", "llm", "tts", "send")})
    barge: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    leads: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    behind: int = 0
    turn_log: list[dict[str, float]] = field(default_factory=list)  # per measured turn, for --dump


def speech_onset_s(pcm: bytes, threshold_dbfs: float = -40.0) -> float:
    """Where speech starts in ``pcm``: the first 20 ms frame louder than ``threshold_dbfs`` (synthesised
    speech begins with a few tens of ms of near-silence that no VAD could or should react to)."""
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    frames = x[: len(x) // 320 * 320].reshape(-1, 320)
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) / 32768 + 1e-12)
    loud = np.flatnonzero(level > threshold_dbfs)
    return float(loud[0]) * 0.02 if len(loud) else 0.0


def trim_trailing_silence(pcm: bytes, threshold_dbfs: float = -40.0) -> bytes:
    """Cut the synthesiser's trailing near-silence, so that the last frame sent is the end of speech."""
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    frames = x[: len(x) // 320 * 320].reshape(-1, 320)
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) / 32768 + 1e-12)
    loud = np.flatnonzero(level > threshold_dbfs)
    return pcm[: (int(loud[-1]) + 1) * 640] if len(loud) else pcm


def pacing(arrivals: list[tuple[float, int]]) -> tuple[float, float]:
    """Longest underrun gap and largest lead (s) of one reply, from (arrival time, bytes) of its chunks."""
    if not arrivals:
        return 0.0, 0.0
    start = arrivals[0][0]
    play_end = start
    gap = lead = 0.0
    for at, size in arrivals:
        if at > play_end:
            gap = max(gap, at - play_end)
            play_end = at
        lead = max(lead, play_end - at)
        play_end += size / BYTES_PER_S
    return gap, lead


async def one_call(url: str, utterance: bytes, barge: bytes, turns: int, res: Results) -> None:
    caller = SimCaller(url)
    try:
        await caller.connect("bench")
        await caller.next(lambda m: m["type"] == "transcript", timeout=30)  # greeting
        for t in range(turns):
            last_frame = await caller.send_frames(utterance)
            metrics = await caller.next(lambda m: m["type"] == "turn_metrics", timeout=30) if t < turns - 1 else None
            if t < turns - 1:
                await caller.next(lambda m: m["type"] == "transcript" and m["role"] == "assistant", timeout=60)
                audio = caller.audio_after(last_frame)
                gap, lead = pacing([(r.at, len(r.data)) for r in audio])
                res.gaps.append(gap * 1000)
                res.leads.append(lead * 1000)
                if audio:
                    res.client_overhead.append((audio[0].at - last_frame) * 1000 - VAD_STOP_MS - BUDGET_MS)
                assert metrics is not None
                res.overhead.append(metrics["first_audio_sent_ms"] - BUDGET_MS)
                res.hops["stt"].append(metrics["stt_done_ms"] - 200)
                res.hops["llm"].append(metrics["llm_first_token_ms"] - metrics["stt_done_ms"] - 150)
                res.hops["tts"].append(metrics["tts_first_audio_ms"] - metrics["llm_first_token_ms"] - 100)
                res.hops["send"].append(metrics["first_audio_sent_ms"] - metrics["tts_first_audio_ms"])
                res.turn_log.append(
                    {"last_frame_wall": time.time() - (time.perf_counter() - last_frame), "turn": t}
                    | {k: float(v) for k, v in metrics.items() if k.endswith("_ms")}
                )
            else:  # last turn: wait for the reply to start, let it play 0.5 s, then talk over it
                while not caller.has_audio_after(last_frame):
                    await caller.send_silence(0.02)
                await caller.send_silence(0.5)
                onset = time.perf_counter() + speech_onset_s(barge)
                sender = asyncio.create_task(caller.send_frames(barge))
                await caller.next(lambda m: m["type"] == "clear", timeout=10)
                res.barge.append((caller.last_at - onset) * 1000)
                await sender
        res.behind += caller.fell_behind
    except Exception as exc:  # one failed call is a result, not the end of the run
        res.failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        await caller.hang_up()


def server_processes(root_pid: int) -> list[psutil.Process]:
    """devstack and everything under it, plus its embedded PostgreSQL: ``pg_ctl`` daemonises the postmaster,
    so it and its backends are no longer devstack's descendants (they still run on the server's cores)."""
    root = psutil.Process(root_pid)
    procs = [root, *root.children(recursive=True)]
    run_dir = _environ(root).get("VICTORIA_RUN_DIR")
    if run_dir:
        for p in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(p.info["cmdline"] or [])
            if p.info["name"] == "postgres" and f"{run_dir}/pgdata" in cmdline:
                procs += [p, *p.children(recursive=True)]
    return procs


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except psutil.Error:
        return {}


def cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


ROLES = ("gateway", "stt_worker", "llm_worker", "tts_worker", "call_recorder", "nats-server", "postgres", "devstack")


def role(proc: psutil.Process) -> str:
    """Which part of the server a process is (for the CPU breakdown)."""
    try:
        cmdline = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return "other"
    return next((r for r in ROLES if r in cmdline), "other")


def gateway_pid(procs: list[psutil.Process]) -> int | None:
    for p in procs:
        try:
            if "services.gateway" in " ".join(p.cmdline()):
                return p.pid
        except psutil.NoSuchProcess:
            pass
    return None


SCRAPED = {  # histogram → the label that names its series
    "victoria_bus_delivery_seconds": "kind",
    "victoria_provider_first_result_seconds": "service",
}


def scrape_means(procs: list[psutil.Process], gateway_url: str) -> dict[str, tuple[float, float]]:
    """(sum, count) per series of the ``SCRAPED`` histograms, from every server process's /metrics:
    ``delivery:<kind>`` is how long events spent between creation and handling (NATS plus each process's
    scheduling); ``provider:<service>`` is how long the fake providers actually took to their first result
    (their configured latency plus their own timer's error, which is not Victoria's)."""
    urls = [f"{gateway_url}/metrics"]
    for p in procs:
        try:
            if "_worker" in " ".join(p.cmdline()):
                urls += [
                    f"http://127.0.0.1:{c.laddr.port}/metrics"
                    for c in p.net_connections("tcp")
                    if c.status == psutil.CONN_LISTEN
                ]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    out: dict[str, list[float]] = {}
    for url in urls:
        try:
            text = httpx.get(url, timeout=2, trust_env=False).text
        except httpx.HTTPError:
            continue
        for line in text.splitlines():
            for metric, label in SCRAPED.items():
                if not (line.startswith(f"{metric}_sum{{") or line.startswith(f"{metric}_count{{")):
                    continue
                name, value = line.rsplit(" ", 1)
                series = name.split(f'{label}="', 1)[1].split('"', 1)[0]
                slot = out.setdefault(f"{'delivery' if label == 'kind' else 'provider'}:{series}", [0.0, 0.0])
                slot[0 if "_sum{" in name else 1] += float(value)
    return {k: (v[0], v[1]) for k, v in out.items()}


def fmt(values: list[float]) -> str:
    if not values:
        return "      -"
    return f"{statistics.median(values):7.1f} / {float(np.percentile(values, 99)):7.1f}"


async def run_level(
    base: str, n: int, turns: int, utterance: bytes, barge: bytes, root_pid: int, stagger_s: float = 1.0
) -> dict[str, object]:
    url = base.replace("http", "ws", 1) + "/ws/simulator"
    procs = server_processes(root_pid)
    gw = gateway_pid(procs)
    before = cpu_seconds(procs)
    scraped_before = scrape_means(procs, base)
    gw_proc = psutil.Process(gw) if gw else None
    rss_peak = {p.pid: p.memory_info().rss for p in procs}
    res = Results()
    started = time.perf_counter()

    async def sample_rss() -> None:
        while True:
            for p in procs:
                try:
                    rss_peak[p.pid] = max(rss_peak.get(p.pid, 0), p.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    calls = []
    for _ in range(n):  # stagger call starts (1 s: not lock-step, yet every turn ends within about a second)
        calls.append(asyncio.create_task(one_call(url, utterance, barge, turns, res)))
        await asyncio.sleep(stagger_s / n)
    await asyncio.gather(*calls)
    sampler.cancel()
    wall = time.perf_counter() - started
    after = cpu_seconds(procs)
    used = {pid: after.get(pid, 0) - before.get(pid, 0) for pid in before}
    total_cpu = sum(used.values())
    gw_cpu = used.get(gw, 0.0) if gw else 0.0
    roles = {p.pid: role(p) for p in procs}
    by_role: dict[str, float] = {}
    for pid, seconds in used.items():
        by_role[roles.get(pid, "other")] = by_role.get(roles.get(pid, "other"), 0.0) + seconds
    gw_rss_base = gw_proc.memory_info().rss if gw_proc else 0
    scraped = {  # mean ms per series over this level's run
        series: 1000
        * (s - scraped_before.get(series, (0.0, 0.0))[0])
        / max(1.0, c - scraped_before.get(series, (0.0, 0.0))[1])
        for series, (s, c) in scrape_means(procs, base).items()
    }
    return {
        "n": n,
        "wall": wall,
        "res": res,
        "cpu_total": total_cpu,
        "cpu_gateway": gw_cpu,
        "cpu_by_role": by_role,
        "rss_total": sum(rss_peak.values()),
        "rss_gateway": rss_peak.get(gw, 0) if gw else 0,
        "rss_gateway_now": gw_rss_base,
        "scraped": scraped,
    }


def report(level: dict[str, object]) -> None:
    res: Results = level["res"]  # type: ignore[assignment]
    n = int(level["n"])  # type: ignore[arg-type]
    wall = float(level["wall"])  # type: ignore[arg-type]
    print(
        f"\n=== N = {n} concurrent calls ({len(res.overhead)} measured turns, {len(res.failures)} failed calls, "
        f"{wall:.1f} s) ==="
    )
    print(f"  {'figure':58s} median / p99")
    print(f"  {'overhead, gateway (VAD end → first byte sent) − 450 ms':58s} {fmt(res.overhead)} ms")
    print(f"  {'overhead, caller (last frame → first audio) − 650 ms':58s} {fmt(res.client_overhead)} ms")
    for hop, label in (
        ("stt", "STT hop beyond 200 ms"),
        ("llm", "LLM hop beyond 150 ms"),
        ("tts", "TTS hop beyond 100 ms"),
        ("send", "gateway: first TTS chunk in → first byte out"),
    ):
        print(f"  {label:58s} {fmt(res.hops[hop])} ms")
    print(f"  {'barge-in: first speech frame sent → clear received':58s} {fmt(res.barge)} ms")
    print(f"  {'pacing: longest underrun gap per reply':58s} {fmt(res.gaps)} ms   (max {max(res.gaps, default=0):.1f})")
    print(f"  {'pacing: largest lead per reply':58s} {fmt(res.leads)} ms")
    print(
        f"  server CPU per call: {1000 * float(level['cpu_total']) / n / wall:6.1f} ms/s all processes, "
        f"{1000 * float(level['cpu_gateway']) / n / wall:6.1f} ms/s gateway  "
        f"(→ {n * wall / max(1e-9, float(level['cpu_total'])):.0f} calls per core for the whole server)"
    )
    by_role: dict[str, float] = level["cpu_by_role"]  # type: ignore[assignment]
    print(
        "  server CPU per call by process, ms/s: "
        + ", ".join(f"{r} {1000 * c / n / wall:.2f}" for r, c in sorted(by_role.items(), key=lambda rc: -rc[1]))
    )
    print(
        f"  peak RSS: {float(level['rss_total']) / 2**20:7.1f} MiB all processes, "
        f"gateway {float(level['rss_gateway']) / 2**20:6.1f} MiB"
    )
    scraped: dict[str, float] = level["scraped"]  # type: ignore[assignment]
    delivery = {k.split(":", 1)[1]: v for k, v in scraped.items() if k.startswith("delivery:")}
    if delivery:
        print(
            "  event delivery (created → handled), mean ms: "
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(delivery.items()))
        )
    late = {
        service: scraped[f"provider:{service}"] - budget
        for service, budget in PROVIDER_BUDGET_MS.items()
        if f"provider:{service}" in scraped
    }
    if late:
        print(
            "  fake providers' own timer error (first result − configured latency), mean ms: "
            + ", ".join(f"{k} {v:+.2f}" for k, v in late.items())
        )
    if res.behind:
        print(f"  note: the callers fell behind real time {res.behind} times (caller core saturated)")
    for failure in res.failures[:5]:
        print(f"  failed call: {failure}")


async def configure_agent(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
        spec = (await client.get("/api/v1/agents/default")).json()["spec"]
        spec["first_message"] = "Hi, how can I help?"
        spec["turn"] = spec["turn"] | {"vad_stop_ms": VAD_STOP_MS, "silence_timeout_s": 120}
        resp = await client.post("/api/v1/agents", json={"agent_id": "bench", **spec})
        if resp.status_code == 409:
            resp = await client.put("/api/v1/agents/bench", json=spec)
        resp.raise_for_status()


async def main_async(
    levels: list[int], turns: int, base: str, root_pid: int, dump: str | None = None, stagger_s: float = 1.0
) -> None:
    utterance = trim_trailing_silence(
        await synthesize("I would like to book a table for two people for tomorrow evening at eight")
    )
    barge = await synthesize("Actually, wait a moment please.")
    print(f"utterance {len(utterance) / BYTES_PER_S:.2f} s, barge-in {len(barge) / BYTES_PER_S:.2f} s")
    await configure_agent(base)
    dumped = []
    for n in levels:
        level = await run_level(base, n, turns, utterance, barge, root_pid, stagger_s)
        report(level)
        dumped.append({"n": n, "turns": level["res"].turn_log})  # type: ignore[attr-defined]
    if dump:
        await asyncio.to_thread(Path(dump).write_text, json.dumps(dumped))
        print(f"\nper-turn figures written to {dump}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 20, 50])
    parser.add_argument("--turns", type=int, default=3)
    add_placement_args(parser)
    parser.add_argument(
        "--server-rt", action="store_true", help="server processes real-time round-robin (shared, noisy machines)"
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=1.0,
        help="seconds over which the calls start (1 s: all turns end within about a second of each other, the "
        "standard; the length of a turn cycle, ~8 s, spreads them like unsynchronised real calls)",
    )
    parser.add_argument("--dump", default=None, help="write every measured turn's figures (JSON) to this file")
    args = parser.parse_args()
    stack_args = place(args)
    print(
        f"victoria conversation_load {time.strftime('%Y-%m-%d %H:%M')}  server cpus={args.server_cpus!r} "
        f"caller cpus={args.caller_cpus!r}  turns={args.turns}  stagger={args.stagger:g}s  "
        f"chain_stages={os.environ.get('CHAIN_STAGES', 'true')}"
        f"{'  server real-time' if args.server_rt else ''}  gateway nice={args.gateway_nice}"
    )
    with running_stack(fake=True, env=PROVIDERS, realtime=args.server_rt, **stack_args) as stack:
        asyncio.run(main_async(args.n, args.turns, stack.url, stack.pid, args.dump, args.stagger))


if __name__ == "__main__":
    main()
