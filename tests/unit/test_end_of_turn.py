"""The end-of-turn scorer with the real Smart Turn v3.2 model: its features against a direct reading of the
Whisper recipe, its verdicts on complete and cut-off turns, and the shared queue (batching, order,
cancellation, overload). The recorded Spanish questions of ``tests/data/es`` are the speech."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from prometheus_client import REGISTRY

from services.gateway.end_of_turn import EndOfTurnScorer, EndOfTurnUnavailable, features, smart_turn
from services.gateway.end_of_turn.smart_turn import SmartTurnMissing, SmartTurnModel
from tools.talk import load_utterance

DATA = Path(__file__).resolve().parents[1] / "data" / "es"
RATE = 16000
PAUSE = bytes(2 * RATE * 200 // 1000)  # the 200 ms of silence the gateway waits before asking


def clip(name: str, until_s: float | None = None) -> bytes:
    pcm = load_utterance(DATA / name)
    return (pcm if until_s is None else pcm[: 2 * round(until_s * RATE)]) + PAUSE


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    return SmartTurnModel()


# --- features -------------------------------------------------------------------------------------------


def reference_features(pcm: bytes) -> np.ndarray:
    """The recipe read literally: frame by frame, filters built one triangle at a time."""
    x = np.zeros(features.SAMPLES, dtype=np.float32)
    samples = np.frombuffer(pcm, dtype=np.int16)[-features.SAMPLES :].astype(np.float32) / 32768.0
    x[features.SAMPLES - samples.size :] = samples
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), 200, mode="reflect")
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    spectra = [np.abs(np.fft.rfft(padded[k * 160 : k * 160 + 400] * hann)) ** 2 for k in range(801)]
    power = np.stack(spectra, axis=1)  # (201, 801)
    mel = np.log10(np.maximum(1e-10, triangles().T @ power))[:, :800]
    mel = np.maximum(mel, mel.max() - 8.0)
    return (mel + 4.0) / 4.0


def triangles() -> np.ndarray:
    def to_mel(f: float) -> float:
        return 3 * f / 200 if f < 1000 else 15 + np.log(f / 1000) * 27 / np.log(6.4)

    def to_hz(m: float) -> float:
        return 200 * m / 3 if m < 15 else 1000 * np.exp((m - 15) * np.log(6.4) / 27)

    edges = [to_hz(m) for m in np.linspace(to_mel(0.0), to_mel(8000.0), 82)]
    bins = np.linspace(0, 8000, 201)
    out = np.zeros((201, 80))
    for m in range(80):
        lo, mid, hi = edges[m : m + 3]
        rise = (bins - lo) / (mid - lo)
        fall = (hi - bins) / (hi - mid)
        out[:, m] = np.maximum(0, np.minimum(rise, fall)) * 2 / (hi - lo)
    return out


def test_features_match_the_recipe_read_literally() -> None:
    pcm = clip("q01.wav")
    got = features.features(pcm)
    assert got.shape == (80, 800) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_features(pcm), atol=1e-5)
    assert got.max() <= 2.0 and got.min() >= got.max() - 2.0  # clamped to 8 decades, scaled by 1/4


def test_mel_filterbank_is_unit_area_triangles_on_the_slaney_scale() -> None:
    bank = features.mel_filterbank()
    assert bank.shape == (201, 80) and (bank >= 0).all()
    np.testing.assert_allclose(bank, triangles(), atol=1e-12)
    peaks = bank.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > 180
    wide = (bank > 0).sum(axis=0) >= 6  # wide enough that the sampled triangle's area is its integral
    np.testing.assert_allclose(bank[:, wide].sum(axis=0) * 40.0, 1.0, rtol=0.05)  # 40 Hz per bin


def test_a_tone_lights_the_band_around_its_frequency() -> None:
    t = np.arange(RATE) / RATE
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16).tobytes()
    mel = features.features(tone)
    band = int(mel[:, -50:].mean(axis=1).argmax())
    assert abs(features.mel_filterbank()[:, band].argmax() * 40 - 1000) <= 40


def test_only_the_last_eight_seconds_count_and_a_short_turn_is_left_padded() -> None:
    long = clip("q03.wav") * 4  # ~13 s
    np.testing.assert_array_equal(features.features(long), features.features(long[-2 * features.SAMPLES :]))
    short = clip("q01.wav")
    window, padding = features.last_window(short)
    assert padding == features.SAMPLES - len(short) // 2 and not window[:padding].any()
    np.testing.assert_array_equal(features.features(short), features.log_mel(window))  # no shortcut taken
    assert (features.features(b"") == -1.5).all()


# --- the model -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cut_s"),
    [("q03.wav", 1.15), ("q07.wav", 1.27)],  # "Mi pedido | no ha llegado…", "Me cobraron dos veces | la…"
)
def test_a_complete_turn_scores_far_above_the_same_turn_cut_off(model: SmartTurnModel, name: str, cut_s: float) -> None:
    complete, cut = model.predict(features.batch([clip(name), clip(name, cut_s)]))
    assert complete > 0.8 and cut < 0.3, (complete, cut)


def test_a_shorter_window_reads_the_last_frames_of_the_same_features() -> None:
    for pcm in (clip("q01.wav"), b""):  # the whole turn inside the window: the same numbers
        full = features.features(pcm)
        for frames in (600, 400, 300):
            np.testing.assert_array_equal(features.features(pcm, frames), full[:, -frames:])
    long = clip("q03.wav") + clip("q07.wav") + clip("q01.wav")  # ~6 s: the 3 s window drops its start
    kept, full = features.features(long, 300), features.features(long)[:, -300:]
    # the same but for the floor (8 decades under the loudest frame kept, not the loudest of all)
    assert kept.min() < full.min()
    np.testing.assert_array_equal(np.maximum(kept, full.min()), full)


def test_the_window_cut_keeps_the_model_and_shortens_its_input(model: SmartTurnModel) -> None:
    graph = smart_turn.windowed(onnx.load(str(model.path)), smart_turn.POSITIONS)  # cut to 8 s: a no-op
    same = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = features.batch([clip("q03.wav"), clip("q03.wav", 1.15)])
    np.testing.assert_allclose(same.run(["logits"], {"input_features": x})[0].ravel(), model.predict(x), atol=1e-6)
    short = SmartTurnModel(window_s=4)
    assert short.frames == 400
    complete, cut = short.predict(features.batch([clip("q03.wav"), clip("q03.wav", 1.15)], 400))
    assert complete > 0.8 and cut < 0.3, (complete, cut)
    with pytest.raises(Exception, match="input_features"):
        short.predict(x)  # 800 frames: not what the 4 s model reads
    with pytest.raises(ValueError, match=re.escape("0.5..8")):
        smart_turn.frames_for(9)


async def test_the_scorer_feeds_its_model_the_window_it_reads() -> None:
    seen: list[tuple[int, ...]] = []

    class Recorder:
        frames = 300

        def frames_for_turn(self, samples: int) -> int:
            return self.frames

        def predict(self, x: np.ndarray) -> np.ndarray:
            seen.append(x.shape)
            return np.full(len(x), 0.25)

    scorer = EndOfTurnScorer(window_s=3, model_factory=lambda w: Recorder() if w == 3 else None)
    try:
        assert await scorer.probability(clip("q01.wav")) == 0.25
    finally:
        scorer.close()
    assert seen == [(1, 80, 300)]


def test_a_fitted_model_reads_each_turn_with_the_smallest_cut_that_holds_it_and_its_margin() -> None:
    fitted = SmartTurnModel(window_s=6, margin_s=2)
    seconds = {1.0: 300, 2.0: 400, 2.5: 500, 3.5: 600, 5.0: 600, 30.0: 600}  # 3 s at least, the window at most
    assert {s: fitted.frames_for_turn(int(s * RATE)) for s in seconds} == seconds
    whole = SmartTurnModel(window_s=6)  # margin 0: always the window
    assert {whole.frames_for_turn(int(s * RATE)) for s in seconds} == {600}
    with pytest.raises(ValueError, match="reads \\[600\\]"):
        whole.predict(features.batch([clip("q03.wav")], 400))
    # each cut still tells a complete turn from the same turn cut off
    for name, cut_s in (("q03.wav", 1.15), ("q07.wav", 1.27)):
        done, cut = clip(name), clip(name, cut_s)
        assert fitted.frames_for_turn(len(cut) // 2) < 600  # a short turn: not the whole 6 s
        complete = fitted.predict(features.batch([done], fitted.frames_for_turn(len(done) // 2)))[0]
        cut_off = fitted.predict(features.batch([cut], fitted.frames_for_turn(len(cut) // 2)))[0]
        assert complete > 0.8 and cut_off < 0.3, (name, complete, cut_off)


async def test_the_scorer_reads_a_short_turn_with_a_fitted_cut() -> None:
    seen: list[int] = []

    class Watched(SmartTurnModel):
        def predict(self, x: np.ndarray) -> np.ndarray:
            seen.append(x.shape[-1])
            return super().predict(x)

    scorer = EndOfTurnScorer(window_s=6, margin_s=2, model_factory=lambda w: Watched(window_s=w, margin_s=2))
    try:
        long = clip("q03.wav") + clip("q07.wav") + clip("q01.wav")  # ~6 s: the whole window
        assert 0 <= await scorer.probability(clip("q01.wav")) <= 1
        assert 0 <= await scorer.probability(long) <= 1
    finally:
        scorer.close()
    assert seen[0] < 600 and seen[1] == 600, seen


def test_a_missing_wheel_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(smart_turn.metadata, "files", missing)
    with pytest.raises(SmartTurnMissing, match=re.escape("pip install --no-deps pipecat-ai==1.14.0")):
        smart_turn.model_path()


async def test_a_missing_model_is_unavailable_not_a_crash() -> None:
    scorer = EndOfTurnScorer(model_factory=lambda w: SmartTurnModel(Path("/nonexistent/smart-turn.onnx"), w))
    try:
        with pytest.raises(EndOfTurnUnavailable, match="unavailable"):
            await scorer.probability(clip("q01.wav"))
        with pytest.raises(EndOfTurnUnavailable):
            await scorer.warm()
    finally:
        scorer.close()


# --- the shared queue -----------------------------------------------------------------------------------


class GatedModel:
    """The real model, held before each inference until the test opens the gate (to fill the queue)."""

    def __init__(self, model: SmartTurnModel) -> None:
        self.model, self.gate, self.entered = model, threading.Event(), threading.Event()
        self.frames = model.frames

    def frames_for_turn(self, samples: int) -> int:
        return self.model.frames_for_turn(samples)

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(10)
        return self.model.predict(x)


def batch_stats() -> tuple[float, float]:
    name = "victoria_end_of_turn_batch_size"
    return REGISTRY.get_sample_value(f"{name}_count") or 0.0, REGISTRY.get_sample_value(f"{name}_sum") or 0.0


async def test_concurrent_pauses_are_batched_and_each_gets_its_own_answer(model: SmartTurnModel) -> None:
    audios = [clip("q03.wav"), clip("q03.wav", 1.15), clip("q07.wav"), clip("q07.wav", 1.27), clip("q01.wav", 0.6)]
    expected = [float(model.predict(features.batch([a]))[0]) for a in audios]
    scorer = EndOfTurnScorer(timeout_s=10, max_wait_s=10, model_factory=lambda w: model)
    count, total = batch_stats()
    try:
        got = await asyncio.gather(*(scorer.probability(a) for a in audios * 2))
    finally:
        scorer.close()
    np.testing.assert_allclose(got, expected * 2, rtol=1e-6)
    rounds, scored = batch_stats()[0] - count, batch_stats()[1] - total
    assert scored == 10 and rounds < 10  # at least one round scored several pauses together


async def test_a_cancelled_caller_leaves_the_rest_of_the_batch_intact(model: SmartTurnModel) -> None:
    gated = GatedModel(model)
    scorer = EndOfTurnScorer(timeout_s=10, max_wait_s=10, model_factory=lambda w: gated)
    audios = [clip("q03.wav"), clip("q03.wav", 1.15), clip("q07.wav"), clip("q07.wav", 1.27)]
    try:
        first = asyncio.create_task(scorer.probability(audios[0]))
        await asyncio.to_thread(gated.entered.wait, 10)
        rest = [asyncio.create_task(scorer.probability(a)) for a in audios[1:]]
        await asyncio.sleep(0.01)
        rest[0].cancel()
        gated.gate.set()
        answers = await asyncio.gather(first, *rest, return_exceptions=True)
    finally:
        scorer.close()
    assert isinstance(answers[1], asyncio.CancelledError)
    for audio, answer in zip(audios[:1] + audios[2:], answers[:1] + answers[2:], strict=True):
        assert answer == pytest.approx(float(model.predict(features.batch([audio]))[0]), rel=1e-6)


async def test_overload_falls_back_fast(model: SmartTurnModel) -> None:
    gated = GatedModel(model)
    scorer = EndOfTurnScorer(max_queue=3, max_wait_s=0.1, timeout_s=2, model_factory=lambda w: gated)
    pcm = clip("q01.wav")
    try:
        busy = asyncio.create_task(scorer.probability(pcm))  # the worker takes it and waits at the gate
        await asyncio.to_thread(gated.entered.wait, 10)
        queued = [asyncio.create_task(scorer.probability(pcm)) for _ in range(3)]
        await asyncio.sleep(0)
        started = time.monotonic()
        with pytest.raises(EndOfTurnUnavailable, match="queue full"):
            await scorer.probability(pcm)
        assert time.monotonic() - started < 0.05
        await asyncio.sleep(0.15)  # the queued ones wait past max_wait_s
        gated.gate.set()
        assert 0 < await busy < 1
        started = time.monotonic()
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        assert all(isinstance(o, EndOfTurnUnavailable) and "queue wait" in str(o) for o in outcomes), outcomes
        assert time.monotonic() - started < 0.1  # answered without spending an inference on each
    finally:
        scorer.close()
    with pytest.raises(EndOfTurnUnavailable, match="closed"):
        await scorer.probability(pcm)


async def test_an_inference_that_overruns_the_deadline_is_abandoned(model: SmartTurnModel) -> None:
    gated = GatedModel(model)
    scorer = EndOfTurnScorer(timeout_s=0.2, model_factory=lambda w: gated)
    try:
        started = time.monotonic()
        with pytest.raises(EndOfTurnUnavailable, match="did not answer"):
            await scorer.probability(clip("q01.wav"))
        assert time.monotonic() - started < 0.3
    finally:
        gated.gate.set()
        scorer.close()


def test_make_install_strict_check_fails_without_the_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.models import _check_smart_turn

    assert _check_smart_turn(strict=True) == 0
    monkeypatch.setattr(smart_turn.metadata, "files", lambda name: [])  # the wheel without its data file
    assert _check_smart_turn(strict=True) == 1
    assert _check_smart_turn(strict=False) == 0
    assert "pipecat-ai==1.14.0" in capsys.readouterr().err
