"""Smart Turn v3.2 (CPU build) through onnxruntime: is the caller's turn complete at this pause?

The model is Daily's Smart Turn v3.2 (https://github.com/pipecat-ai/smart-turn, BSD-2-Clause): a Whisper-tiny
style encoder with a classifier head, 8.7 MB int8 ONNX, trained on 23 languages. Its weights ship inside the
``pipecat-ai`` wheel, installed with ``--no-deps`` (``make install``); we only read the file, never import pipecat
(its dependencies are not installed). Input ``input_features`` float32 (batch, 80, 800) from :mod:`.features`;
output ``logits`` (batch, 1), already a probability that the turn is complete.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort

DISTRIBUTION = "pipecat-ai"
VERSION = "1.14.0"
INSTALL = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"
MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


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


class SmartTurnModel:
    """The loaded model; :meth:`predict` may be called from any one thread at a time."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or model_path()
        self._session = ort.InferenceSession(
            str(self.path), sess_options=session_options(), providers=["CPUExecutionProvider"]
        )

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities that each turn is complete, float (batch,), for features (batch, 80, 800)."""
        (logits,) = self._session.run(["logits"], {"input_features": features})
        return np.asarray(logits, dtype=np.float64).reshape(len(features))
