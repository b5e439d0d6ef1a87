"""Smart Turn v3.2 (CPU build) through onnxruntime: is the caller's turn complete at this pause?

The model is Daily's Smart Turn v3.2 (https://github.com/pipecat-ai/smart-turn, BSD-2-Clause): a Whisper-tiny
style encoder with a classifier head, 8.7 MB int8 ONNX, trained on 23 languages. Its weights ship inside the
``pipecat-ai`` wheel, installed with ``--no-deps`` (``make install``); we only read the file, never import pipecat
(its dependencies are not installed). Input ``input_features`` float32 (batch, 80, 800) from :mod:`.features`;
output ``logits`` (batch, 1), already a probability that the turn is complete.

A shorter window costs less: the encoder's cost grows with its positions (attention quadratically), and the
graph only fixes 8 s through its positional-embedding table (400 positions after the stride-2 conv) and the
reshapes that name 400. :func:`windowed` cuts both at load time to the last N positions (the audio is
left-padded, so the turn's end sits at the end). The head pools the encoder's output by learned attention
(Linear-Tanh-Linear, softmax over positions, weighted sum), not a mean, so dropping the oldest positions (mostly
padding in a short turn) changes little: ``bench/turn_model_window.py`` measures it.

A short turn also needs no full window: most of a 2 s turn's 6 s would be padding. With ``margin_s`` the model
keeps one cut per whole second from 3 s up to the window and reads each turn with the smallest that holds the
turn plus ``margin_s`` of padding (a 2 s turn: 4 s, half the CPU of 6 s). Some padding must stay: the model
was trained on left-padded turns, and with under ~2 s of it verdicts drift (``bench/turn_model_window.py
--fit``).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from services.gateway.end_of_turn.features import RATE

DISTRIBUTION = "pipecat-ai"
VERSION = "1.14.0"
INSTALL = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"
MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
POSITIONS = 400  # the encoder's positions for 8 s: 800 feature frames, halved by the stride-2 conv
SMALLEST_FIT_S = 3  # the shortest cut a fitted turn is read with
_EMBEDDING = "inner.encoder.embed_positions.weight"


class SmartTurnMissing(FileNotFoundError):
    """The wheel that carries the model is not installed (or lost the file)."""


def model_path() -> Path:
    """The ONNX file inside the installed ``pipecat-ai`` wheel (found from its file list; nothing imported)."""
    try:
        files = metadata.files(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        raise SmartTurnMissing(f"the Smart Turn model is not installed: {INSTALL} (make install)") from None
    for entry in files:
        if entry.as_posix() == MODEL_FILE:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
            break
    raise SmartTurnMissing(f"{MODEL_FILE} is missing from {DISTRIBUTION}: reinstall it ({INSTALL})")


def session_options() -> ort.SessionOptions:
    """One thread, sequential: the gateway shares its cores with every call; a batch is faster than threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def frames_for(window_s: float) -> int:
    """Feature frames (10 ms each, even: two per position) for a window of ``window_s`` seconds (0.5..8)."""
    if not 0.5 <= window_s <= 8.0:
        raise ValueError(f"end-of-turn window {window_s} s: must be 0.5..8")
    return 2 * round(window_s * 50)


def windowed(model: onnx.ModelProto, positions: int) -> onnx.ModelProto:
    """The model reading only the last ``positions`` encoder positions (input (batch, 80, 2 * positions)): the
    positional-embedding table keeps its last rows, every shape constant of 400 becomes ``positions``, and the
    stored intermediate shapes (all for 400) are dropped for onnxruntime to infer again. Edits ``model``."""
    graph = model.graph
    found = 0
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        if init.name == _EMBEDDING and value.shape[0] == POSITIONS:
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value[-positions:]), init.name))
            found += 1
        elif value.dtype == np.int64 and value.shape == (1,) and value[0] == POSITIONS:  # reshape targets
            init.CopyFrom(numpy_helper.from_array(np.array([positions], dtype=np.int64), init.name))
    if found != 1:
        raise ValueError(f"{_EMBEDDING} ({POSITIONS} rows) not found: not the Smart Turn v3.2 graph")
    graph.input[0].type.tensor_type.shape.dim[2].dim_value = 2 * positions
    del graph.value_info[:]
    return model


class SmartTurnModel:
    """The loaded model, reading the last ``window_s`` seconds (8 = as published), or with ``margin_s`` > 0 only
    as much as each turn needs (:meth:`frames_for_turn`); :meth:`predict` may be called from any one thread at a
    time."""

    def __init__(self, path: Path | None = None, window_s: float = 8.0, margin_s: float = 0.0) -> None:
        self.path = path or model_path()
        self.frames = frames_for(window_s)
        self.margin_s = margin_s
        cuts = [self.frames]
        if margin_s > 0:
            cuts += [frames_for(s) for s in range(SMALLEST_FIT_S, int(window_s) + 1) if frames_for(s) < self.frames]
        self._sessions = {frames: self._session(frames) for frames in sorted(set(cuts))}

    def _session(self, frames: int) -> ort.InferenceSession:
        source: str | bytes = str(self.path)
        if frames < 2 * POSITIONS:
            source = windowed(onnx.load(str(self.path)), frames // 2).SerializeToString()
        return ort.InferenceSession(source, sess_options=session_options(), providers=["CPUExecutionProvider"])

    def frames_for_turn(self, samples: int) -> int:
        """The frames to read a turn of ``samples`` (16 kHz) with: the smallest cut holding it and ``margin_s``
        of padding, the whole window when none does (or ``margin_s`` is 0)."""
        need = 100 * (samples / RATE + self.margin_s)
        return next((frames for frames in self._sessions if frames >= need), self.frames)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities that each turn is complete, float (batch,), for features (batch, 80, frames) of one of
        the model's cuts."""
        session = self._sessions.get(features.shape[-1])
        if session is None:
            raise ValueError(f"input_features of {features.shape[-1]} frames: the model reads {list(self._sessions)}")
        (logits,) = session.run(["logits"], {"input_features": features})
        return np.asarray(logits, dtype=np.float64).reshape(len(features))
