"""Silero VAD v5 through onnxruntime, with the model file from the ``silero-vad`` wheel (installed with
``--no-deps``: the wheel's torch dependency is only for its own Python helpers, not the ONNX model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort

from shared.audio import pcm16_to_float

_CONTEXT = 64  # samples of the previous window the v5 model expects in front of each 512-sample window


def model_path() -> str:
    """Locate the ONNX file in the installed wheel without importing ``silero_vad`` (its ``__init__`` imports
    torch, which we deliberately don't install)."""
    spec = importlib.util.find_spec("silero_vad")  # finds the package; doesn't execute its __init__
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero-vad is not installed: pip install --no-deps silero-vad")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "silero_vad.onnx"
        if path.is_file():
            return str(path)
    raise FileNotFoundError(f"silero_vad.onnx not found under {list(spec.submodule_search_locations)}")


_SESSIONS: dict[str, ort.InferenceSession] = {}


def shared_session(path: str | None = None) -> ort.InferenceSession:
    """One ONNX session per process, shared by every call: the model keeps no state of its own (each call's
    recurrent state goes in and out of ``run``), so a session per call would only cost ~30 ms of CPU to
    build and several MB of memory each."""
    key = path or model_path()
    if key not in _SESSIONS:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        _SESSIONS[key] = ort.InferenceSession(key, sess_options=opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


class SileroVad:
    name = "silero"
    sample_rate = 16000
    frame_samples = 512  # 32 ms: the window the 16 kHz model is trained on

    def __init__(self, threshold: float = 0.5, path: str | None = None) -> None:
        self._session = shared_session(path)
        self.threshold = threshold
        self._sr = np.array(self.sample_rate, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)

    def probability(self, frame: bytes) -> float:
        x = pcm16_to_float(frame).reshape(1, -1)
        x = np.concatenate([self._context, x], axis=1)
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[:, -_CONTEXT:]
        return float(out[0][0])

    def is_speech(self, frame: bytes) -> bool:
        return self.probability(frame) >= self.threshold

    def on_turn(self, open_: bool) -> None:
        """Decides every frame the same way, in a turn or not."""

    def confirm_onset(self, audio: bytes) -> bool:
        return True

    def max_probability(self, audio: bytes, last_windows: int, warmup_windows: int | None = None) -> float:
        """From a fresh state, run the whole windows of ``audio`` (or only the last ``warmup_windows`` +
        ``last_windows`` of them); the highest speech probability among the last ``last_windows`` (the
        earlier ones only warm the recurrent state up)."""
        self.reset()
        step = self.frame_samples * 2
        usable = len(audio) - len(audio) % step
        first = 0 if warmup_windows is None else max(0, usable - (warmup_windows + last_windows) * step)
        probs = [self.probability(audio[i : i + step]) for i in range(first, usable, step)]
        return max(probs[-last_windows:], default=0.0)


class GatedSileroVad:
    """WebRTC on every 20 ms frame (microseconds each); Silero only to confirm a turn about to open.

    WebRTC alone opens turns on clicks and coughs over background noise (it flags ~60 ms of "speech" after any
    transient); Silero alone is accurate but costs ~85 µs per 32 ms window for every call all the time.
    Asking Silero only when WebRTC has heard a whole start window keeps Silero's accuracy on the decision
    that causes false barge-ins, at a small fraction of its cost: one short pass per candidate onset. The
    end of a turn stays with WebRTC (plus the detector's volume floor): in the VAD benchmark it ended turns
    in noise sooner than Silero did, for nothing.
    """

    name = "webrtc+silero"
    sample_rate = 16000
    frame_samples = 320  # WebRTC's 20 ms frames drive the turn detector

    def __init__(
        self, aggressiveness: int = 2, threshold: float = 0.5, confirm_windows: int = 4, warmup_windows: int = 2
    ) -> None:
        from services.gateway.call.vad_webrtc import WebRtcVad

        self._webrtc = WebRtcVad(aggressiveness)
        self._silero = SileroVad(threshold)
        self.threshold = threshold
        self.confirm_windows = confirm_windows
        # windows before the judged ones that only warm the recurrent state up: the pass runs in the event
        # loop (~0.24 ms a window here), so it reads no more of the preroll than that needs
        self.warmup_windows = warmup_windows

    def is_speech(self, frame: bytes) -> bool:
        return self._webrtc.is_speech(frame)

    def confirm_onset(self, audio: bytes) -> bool:
        probability = self._silero.max_probability(audio, self.confirm_windows, self.warmup_windows)
        return probability >= self.threshold

    def on_turn(self, open_: bool) -> None:
        """Decides every frame the same way, in a turn or not."""

    def reset(self) -> None:
        self._webrtc.reset()
        self._silero.reset()
