"""Turn-taking over the Twilio protocol: voice-to-voice latency, callers cut off at a mid-sentence pause, and
backchannels that interrupt the agent, for the fixed silence window and the end-of-turn model.

    python -m bench.turn_taking                                   # fake providers, both detectors, en + es
    python -m bench.turn_taking --providers local --language en --detector silence --calls 1
    python -m bench.turn_taking --providers fake --detector model --calls 2 --dump /tmp/tt.json

The caller is a scripted Twilio Media Streams client (``tools.phonecaller``: ``connected``, ``start``, 160-byte
μ-law ``media`` every 20 ms on an absolute clock, ``stop``; marks echoed as they play). Per call it waits out
the greeting, then says the pause set (``bench.pause_set``) one utterance after another, each followed by
silence until the reply has played; during four of the replies it says a backchannel ("mm-hm", "yeah", "okay"
/ "sí", "ajá", "vale") or a cough, half a second into the reply. Per utterance:

- voice-to-voice latency = last speech frame sent → first reply ``media`` with sound;
- cut off = the agent took the turn before the caller finished: reply audio or a ``clear`` arrived before the
  last speech frame was sent (or a ``clear`` before the reply), or the call history (``GET
  /api/v1/calls/{id}``) has the utterance as more than one user turn;
- a backchannel interrupted the agent = a ``clear`` after it began (counted only if the reply was still
  playing when it began).

The detector is switched only through the agent's ``turn`` (one agent per language and detector, reached by
its own phone number): ``silence`` = the old detector (``end_of_turn: "silence"``, no preemptive reply, any
speech over the agent interrupts) with ``vad_stop_ms`` 500 (the old default;
with the fake providers also 200, the method's window for the latency figure); ``model`` = the shipped
defaults of the new fields. Fake providers: fixed latency (STT 200 ms, LLM first token 150 ms, TTS first byte
100 ms; ../shared/docs/benchmarking.md); local: the offline models of ``make run`` (English: the default agent;
Spanish: the ``es`` agent). Server pinned to core 0, caller to core 1; calls run one after another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx
import numpy as np

from bench.conversation_load import PROVIDERS
from bench.pause_set import Utterance, load
from bench.stack import add_placement_args, place, running_stack
from shared.audio import ulaw_to_pcm16
from tools.phonecaller import PhoneCaller

# the detector before issue 17: a fixed window, no reply started at a pause, any speech over the agent barges in
SILENCE = {"end_of_turn": "silence", "preempt_ms": 0, "interrupt_min_ms": 0, "resume_after_false_interruption": False}
BACKCHANNEL_AT_S = 0.5  # into the reply
AUDIBLE = 32  # a frame with any sample beyond this (of 32768) carries sound, not digital silence


@dataclass(frozen=True)
class Detector:
    name: str
    turn: dict[str, Any]  # overrides of the agent's ``turn``


def detectors(choice: str, providers: str) -> list[Detector]:
    silence = [Detector("silence-500", {**SILENCE, "vad_stop_ms": 500})]
    if providers == "fake":  # the method's window for the fakes' latency figure; 500 ms for the cut-offs too
        silence.insert(0, Detector("silence-200", {**SILENCE, "vad_stop_ms": 200}))
    model = [Detector("model", {"end_of_turn": "model"})]  # every other new field at its shipped default
    return {"silence": silence, "model": model, "both": silence + model}[choice]


@dataclass
class TurnResult:
    utterance: str
    kind: str
    pause_ms: int
    latency_ms: float | None = None
    early_audio: bool = False  # reply audio before the caller's last speech frame
    clear: bool = False  # a clear before the reply to the whole utterance
    user_turns: int | None = None  # in the call history, between its first frame and the reply
    stages: dict[str, float] = field(default_factory=dict)  # the reply's latency_ms as the history has it
    backchannel: str | None = None
    backchannel_applicable: bool = False  # the reply was still playing when it began
    backchannel_interrupted: bool = False
    backchannel_played_on: bool = False
    error: str | None = None

    @property
    def cut_off(self) -> bool:
        return self.early_audio or self.clear or (self.user_turns or 0) > 1


@dataclass
class Run:
    language: str
    detector: str
    providers: str
    turns: list[TurnResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def audible(payload: bytes) -> bool:
    return bool(np.abs(np.frombuffer(ulaw_to_pcm16(payload), dtype="<i2").astype(np.int32)).max() > AUDIBLE)


def first_audible(caller: PhoneCaller, start: int, after: float) -> float | None:
    return next((f.at for f in caller.frames[start:] if f.at > after and audible(f.payload)), None)


def clears(caller: PhoneCaller, since: float, until: float) -> int:
    return sum(since < at <= until for at, _ in caller.sent_events("clear"))


async def silence_until(caller: PhoneCaller, until: float) -> None:
    while time.perf_counter() < until and not caller.closed.is_set():
        await caller.silence(0.02)


async def wait_audio(caller: PhoneCaller, start: int, after: float, timeout: float) -> float | None:
    """When the first sounding reply frame after ``after`` arrived (sending silence meanwhile); None: none."""
    deadline = time.perf_counter() + timeout
    while (at := first_audible(caller, start, after)) is None:
        if caller.closed.is_set() or time.perf_counter() > deadline:
            return None
        await caller.silence(0.02)
    return at


async def settle(caller: PhoneCaller, quiet_s: float, timeout: float) -> None:
    """After an interruption the agent may answer what interrupted it: wait until ``quiet_s`` pass with no
    reply audio, so the next utterance starts on a quiet line."""
    while not caller.closed.is_set():
        before = len(caller.frames)
        await silence_until(caller, time.perf_counter() + quiet_s)
        if len(caller.frames) == before:
            return
        await caller.wait_quiet(timeout)


async def one_turn(
    caller: PhoneCaller, u: Utterance, backchannel: Utterance | None, timeout: float, settle_s: float
) -> tuple[TurnResult, float, float | None]:
    """Say ``u``, wait for the reply (saying ``backchannel`` into it), until it has played. Returns the result,
    when the first frame left and when the reply began (perf_counter)."""
    result = TurnResult(u.id, u.kind, u.pause_ms)
    start_frame, began = len(caller.frames), time.perf_counter()
    last = await caller.speak(u.pcm)
    reply = await wait_audio(caller, start_frame, last, timeout)
    early = first_audible(caller, start_frame, began)
    result.early_audio = early is not None and early <= last
    result.clear = clears(caller, began, reply if reply is not None else time.perf_counter()) > 0
    if reply is None:
        result.error = "no reply"
        return result, began, None
    result.latency_ms = round((reply - last) * 1000, 1)
    if backchannel is not None:
        result.backchannel = backchannel.id
        await silence_until(caller, reply + BACKCHANNEL_AT_S)
        now = time.perf_counter()
        result.backchannel_applicable = bool(caller.frames) and caller.frames[-1].at > now - 0.1
        said = await caller.speak(backchannel.pcm)
        await caller.wait_quiet(timeout)
        result.backchannel_interrupted = clears(caller, now, time.perf_counter()) > 0
        result.backchannel_played_on = first_audible(caller, start_frame, said + 0.1) is not None
    else:
        await caller.wait_quiet(timeout)
    if result.backchannel_interrupted:  # the agent may now answer the backchannel (as slowly as it answered)
        await settle(caller, max(settle_s, 2 * result.latency_ms / 1000), timeout)
    return result, began, reply


def plan(utterances: list[Utterance]) -> list[tuple[Utterance, Utterance | None]]:
    """The call's script: pauses with a control after every third; a backchannel or the cough into the replies
    of the 2nd, 5th, 8th and 10th turns."""
    pauses = [u for u in utterances if u.kind == "pause"]
    controls = [u for u in utterances if u.kind == "control"]
    extras = [u for u in utterances if u.kind in ("backchannel", "cough")]
    turns: list[Utterance] = []
    for i, p in enumerate(pauses):
        turns.append(p)
        if i % 3 == 0 and controls:
            turns.append(controls.pop(0))
    turns += controls
    slots = dict(zip((1, 4, 7, 9), extras, strict=False))
    return [(u, slots.get(i)) for i, u in enumerate(turns)]


async def call_history(base: str, call_id: str, timeout: float = 20.0) -> dict[str, Any] | None:
    """The recorded call, once the recorder has written its end."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            resp = await client.get(f"/api/v1/calls/{call_id}")
            if resp.status_code == 200 and resp.json()["status"] != "in_progress":
                return resp.json()
            await asyncio.sleep(0.5)
    return None


def user_turns_between(history: dict[str, Any], since_wall: float, until_wall: float) -> int:
    """User turns whose end (the gateway's end of turn) falls in [since, until] (wall clock)."""
    ends = [
        datetime.fromisoformat(line["ended_at"]).timestamp()
        for line in history["transcript"]
        if line["role"] == "user" and not line.get("dtmf")
    ]
    return sum(since_wall <= e <= until_wall for e in ends)


def reply_stages(history: dict[str, Any], began_wall: float, reply_wall: float) -> dict[str, float]:
    """The gateway's stage latencies (from its end of turn) of the reply that began playing at ``reply_wall``:
    the assistant turn with figures that started between the utterance's first frame and then."""
    for line in history["transcript"]:
        started = datetime.fromisoformat(line["started_at"]).timestamp()
        if line["role"] == "assistant" and line["latency_ms"] and began_wall <= started <= reply_wall:
            return dict(line["latency_ms"])
    return {}


async def one_call(base: str, number: str, script: list[tuple[Utterance, Utterance | None]], run: Run) -> None:
    host = base.removeprefix("http://")
    caller = PhoneCaller(f"ws://{host}/twilio/media", "twilio")
    local = run.providers == "local"
    timeout, settle_s = (90.0, 20.0) if local else (30.0, 3.0)
    wall_offset = time.time() - time.perf_counter()
    windows: list[tuple[TurnResult, float, float | None]] = []
    try:
        await caller.dial_and_connect(base, to_number=number)
        await caller.wait_reply(0, timeout=timeout)  # the greeting
        for u, backchannel in script:
            result, began, reply = await one_turn(caller, u, backchannel, timeout, settle_s)
            windows.append((result, began, reply))
            run.turns.append(result)
            print(f"    {_line(result)}", flush=True)
            if caller.closed.is_set():
                raise ConnectionError(f"call closed ({caller.close_code} {caller.close_reason})")
        await caller.stop()
    except Exception as exc:  # a failed call is a result
        run.failures.append(f"{type(exc).__name__}: {exc}")
        await caller.close()
    history = await call_history(base, caller.call_id)
    if history is None:
        run.failures.append(f"no history for {caller.call_id}")
        return
    for result, began, reply in windows:
        if reply is not None:
            result.user_turns = user_turns_between(history, began + wall_offset, reply + wall_offset)
            result.stages = reply_stages(history, began + wall_offset, reply + wall_offset)


def _line(r: TurnResult) -> str:
    cut = [why for why, hit in (("early audio", r.early_audio), ("clear", r.clear)) if hit]
    bc = ""
    if r.backchannel:
        bc = f"  {r.backchannel}: {'interrupted' if r.backchannel_interrupted else 'ignored'}"
        bc += "" if r.backchannel_applicable else " (reply had ended)"
    return f"{r.utterance:16s} latency {r.latency_ms} ms{'  CUT OFF: ' + ', '.join(cut) if cut else ''}{bc}"


async def configure_agents(base: str, language: str, providers: str, dets: list[Detector]) -> dict[str, str]:
    """An agent per detector, copied from the language's agent with only its ``turn`` changed and a phone
    number of its own; returns {detector: number}."""
    source = "es" if language == "es" and providers == "local" else "default"
    numbers = {}
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as client:
        agent = (await client.get(f"/api/v1/agents/{source}")).raise_for_status().json()
        for i, det in enumerate(dets):
            number = f"+1555017{'01'[language == 'es']}{i:03d}"
            spec = {**agent["spec"], **dict.fromkeys(agent["catalogue_texts"]), "phone_numbers": [number]}
            # a long silence timeout: a re-prompt in the middle of the script is not turn-taking
            spec["turn"] = {**spec["turn"], **det.turn, "silence_timeout_s": 120}
            agent_id = f"tt-{language}-{det.name}"
            resp = await client.post("/api/v1/agents", json={"agent_id": agent_id, **spec})
            if resp.status_code == 409:
                resp = await client.put(f"/api/v1/agents/{agent_id}", json=spec)
            resp.raise_for_status()
            numbers[det.name] = number
    return numbers


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.0f} / {float(np.percentile(values, 99)):.0f}"


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.0f} %)" if total else "-"


def table(runs: list[Run]) -> str:
    head = (
        "| language | detector | providers | voice-to-voice p50 / p99 ms (all) | pause utt. p50 / p99 | "
        "control p50 / p99 | cut off, pause set | cut off, controls | backchannels interrupting | failed |"
    )
    rows = [head, "|" + "---|" * 10]
    for run in runs:
        pause = [t for t in run.turns if t.kind == "pause"]
        control = [t for t in run.turns if t.kind == "control"]
        bcs = [t for t in run.turns if t.backchannel and t.backchannel_applicable]
        lat = [t.latency_ms for t in run.turns if t.latency_ms is not None]
        failed = len(run.failures) + sum(t.error is not None for t in run.turns)
        rows.append(
            f"| {run.language} | {run.detector} | {run.providers} | {spread(lat)} | "
            f"{spread([t.latency_ms for t in pause if t.latency_ms is not None])} | "
            f"{spread([t.latency_ms for t in control if t.latency_ms is not None])} | "
            f"{rate(sum(t.cut_off for t in pause), len(pause))} | "
            f"{rate(sum(t.cut_off for t in control), len(control))} | "
            f"{rate(sum(t.backchannel_interrupted for t in bcs), len(bcs))} | {failed} |"
        )
    for run in runs:
        pause = [t for t in run.turns if t.kind == "pause"]
        rows.append(
            f"\n{run.language} {run.detector}: pause set cut off by reply audio heard early "
            f"{sum(t.early_audio for t in pause)}, by a clear {sum(t.clear for t in pause)}, split in the history "
            f"{sum((t.user_turns or 0) > 1 for t in pause)}; cut off per pause length (ms): "
            + ", ".join(f"{t.pause_ms}{'✗' if t.cut_off else '✓'}" for t in sorted(pause, key=lambda t: t.pause_ms))
            + "; gateway stages from its end of turn, median ms: "
            + ", ".join(
                f"{k.removesuffix('_ms')} {statistics.median(v):.0f}"
                for k in ("stt_done_ms", "llm_first_token_ms", "tts_first_audio_ms", "first_audio_sent_ms")
                if (v := [t.stages[k] for t in run.turns if k in t.stages])
            )
        )
    return "\n".join(rows)


async def main_async(args: argparse.Namespace, base: str) -> list[Run]:
    runs = []
    languages = ["en", "es"] if args.language == "both" else [args.language]
    dets = detectors(args.detector, args.providers)
    for language in languages:
        script = plan(await load(language))
        numbers = await configure_agents(base, language, args.providers, dets)
        if args.providers == "local":  # a model loaded at its first use (Kokoro) is not what a turn costs
            warm = Run(language, "warm-up", args.providers)
            print(f"  {language} warm-up call (not measured)", flush=True)
            await one_call(base, numbers[dets[0].name], [(u, None) for u, _ in script[:2]], warm)
        for det in dets:
            run = Run(language, det.name, args.providers)
            for i in range(args.calls):
                print(f"  {language} {det.name} call {i + 1}/{args.calls}", flush=True)
                await one_call(base, numbers[det.name], script, run)
            for failure in run.failures:
                print(f"  failed: {failure}")
            runs.append(run)
    return runs


def read_dump(path: str) -> list[Run]:
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    return [Run(**{**r, "turns": [TurnResult(**t) for t in r["turns"]]}) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", choices=("silence", "model", "both"), default="both")
    parser.add_argument("--providers", choices=("fake", "local"), default="fake")
    parser.add_argument("--language", choices=("en", "es", "both"), default="both")
    parser.add_argument("--calls", type=int, default=1, help="calls per language and detector (one at a time)")
    parser.add_argument("--dump", help="write every turn's figures (JSON) to this file")
    parser.add_argument("--table", nargs="+", metavar="DUMP", help="print the table of earlier --dump files; no run")
    add_placement_args(parser)
    args = parser.parse_args()
    if args.table:
        print(table([run for path in args.table for run in read_dump(path)]))
        return
    stack_args = place(args)
    print(
        f"victoria turn_taking {time.strftime('%Y-%m-%d %H:%M')}  providers={args.providers}  "
        f"detector={args.detector}  language={args.language}  calls={args.calls}  "
        f"server cpus={args.server_cpus!r} caller cpus={args.caller_cpus!r}  "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    fake = args.providers == "fake"
    with running_stack(fake=fake, env=PROVIDERS if fake else {}, **stack_args) as stack:
        runs = asyncio.run(main_async(args, stack.url))
    print(f"\nmachine load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(table(runs))
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            json.dump([{**asdict(r), "turns": [asdict(t) for t in r.turns]} for r in runs], f, indent=1)
        print(f"\nper-turn figures written to {args.dump}")


if __name__ == "__main__":
    main()
