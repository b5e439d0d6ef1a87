"""One end-of-turn scorer per gateway process: every call's pause goes through one queue and one worker
thread, which takes whatever has queued up and scores it in one go.

Why one thread: the model costs ~15-40 ms of CPU per pause (the 6 s window; less for a short turn); run on
the event loop it would stall every call's audio, and a thread per call would fight over the cores (the
gateway's other work included). Why a queue with
a deadline: under overload an answer that comes late is worse than none. A pause is asked at ~200 ms of
silence; if its answer is not ready within ``timeout_s`` (or it waited in the queue over ``max_wait_s``, or the
queue already holds ``max_queue``), the caller gets :class:`EndOfTurnUnavailable` at once and decides without
the model (the silence window, as with ``end_of_turn: silence``): a pause is never answered later than
``timeout_s`` (0.5 s). A caller that is cancelled while waiting simply leaves: the worker skips its request
and scores the rest as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

from services.gateway.end_of_turn import features
from services.gateway.metrics import END_OF_TURN_BATCH, END_OF_TURN_SECONDS


class EndOfTurnUnavailable(RuntimeError):
    """No probability for this pause (overloaded, too late, model missing or failed, scorer closed): the caller
    decides with the silence window instead."""


class Model(Protocol):
    frames: int  # feature frames of its whole window (800 = 8 s)

    def frames_for_turn(self, samples: int) -> int: ...  # the frames it reads a turn of this many samples with

    def predict(self, features: np.ndarray) -> np.ndarray: ...


def _load_model(window_s: float, margin_s: float) -> Model:
    from services.gateway.end_of_turn.smart_turn import SmartTurnModel

    return SmartTurnModel(window_s=window_s, margin_s=margin_s)


@dataclass
class _Request:
    audio: bytes
    future: asyncio.Future[float]
    loop: asyncio.AbstractEventLoop
    queued_at: float = field(default_factory=time.monotonic)


def _settle(future: asyncio.Future[float], value: float | BaseException) -> None:
    """On the caller's loop: answer, unless the caller already left (cancelled or timed out)."""
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


class EndOfTurnScorer:
    """``await scorer.probability(pcm)``: the probability (0..1) that the caller's turn is complete, for the
    turn so far as PCM16 mono 16 kHz (any length; the model reads the last ``window_s``, 8 s as published). Raises
    :class:`EndOfTurnUnavailable` instead of answering late."""

    _shared: ClassVar[EndOfTurnScorer | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        max_queue: int = 64,
        max_wait_s: float = 0.3,
        timeout_s: float = 0.5,
        max_batch: int = 16,
        window_s: float = 8.0,
        margin_s: float = 0.0,
        model_factory: Callable[[float], Model] | None = None,
    ) -> None:
        self.max_queue, self.max_wait_s, self.timeout_s, self.max_batch = max_queue, max_wait_s, timeout_s, max_batch
        self.window_s = window_s
        self._model_factory = model_factory or (lambda window: _load_model(window, margin_s))
        self._model: Model | None = None
        self._model_lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def shared(cls, window_s: float = 8.0, margin_s: float = 0.0) -> EndOfTurnScorer:
        """The process's scorer (created on first use, reading ``window_s`` or, with ``margin_s``, what each turn
        needs; a closed one is replaced)."""
        with cls._shared_lock:
            if cls._shared is None or cls._shared._closed:
                cls._shared = cls(window_s=window_s, margin_s=margin_s)
            return cls._shared

    async def warm(self) -> None:
        """Load the model and run one inference (at startup, so the first pause pays neither); raises
        :class:`EndOfTurnUnavailable` when the model is not installed."""
        await asyncio.to_thread(lambda: self._predict(b""))

    def model(self) -> Model:
        """The loaded model (loaded on first use, once)."""
        with self._model_lock:
            if self._model is None:
                try:
                    self._model = self._model_factory(self.window_s)
                except Exception as exc:  # SmartTurnMissing, or onnxruntime refusing the file
                    raise EndOfTurnUnavailable(f"end-of-turn model unavailable: {exc}") from exc
            return self._model

    async def probability(self, audio: bytes) -> float:
        """Queue this pause and wait for its probability: at most ``timeout_s``, else (or when the queue is full,
        or the scorer closed, or the model missing) :class:`EndOfTurnUnavailable`."""
        loop = asyncio.get_running_loop()
        request = _Request(audio, loop.create_future(), loop)
        with self._wake:
            if self._closed:
                raise EndOfTurnUnavailable("end-of-turn scorer closed")
            if len(self._queue) >= self.max_queue:
                raise EndOfTurnUnavailable(f"end-of-turn queue full ({self.max_queue} pauses waiting)")
            self._queue.append(request)
            self._start_worker()
            self._wake.notify()
        try:
            return await asyncio.wait_for(request.future, self.timeout_s)
        except TimeoutError:
            raise EndOfTurnUnavailable(f"end-of-turn model did not answer within {self.timeout_s} s") from None

    def close(self) -> None:
        """Stop the worker; requests still queued get :class:`EndOfTurnUnavailable`."""
        with self._wake:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._wake.notify_all()
        for request in pending:
            self._answer(request, EndOfTurnUnavailable("end-of-turn scorer closed"))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _start_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="end-of-turn", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                taken = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._score(taken)

    def _score(self, taken: list[_Request]) -> None:
        """Score what was queued together: one inference per pause, in queue order, each answered as soon as it
        is ready. A batched ``run`` costs no less CPU per pause (bench/turn_model_cpu.py: the same at 4, 10-40 %
        more at 8) and would make the first pause wait for the last. Before each inference: a request whose caller
        left is skipped, one that has waited over ``max_wait_s`` is answered unavailable (no CPU spent on an
        answer that would come too late)."""
        END_OF_TURN_BATCH.observe(len(taken))
        for request in taken:
            if request.future.done():  # cancelled or timed out: nobody waits for it
                continue
            if time.monotonic() - request.queued_at > self.max_wait_s:
                self._answer(request, EndOfTurnUnavailable(f"end-of-turn queue wait over {self.max_wait_s} s"))
                continue
            try:
                value: float | BaseException = self._predict(request.audio)
            except EndOfTurnUnavailable as exc:
                value = exc
            except Exception as exc:  # a model failure means the silence window, never a crash
                value = EndOfTurnUnavailable(f"end-of-turn model failed: {exc!r}")
            END_OF_TURN_SECONDS.observe(time.monotonic() - request.queued_at)
            self._answer(request, value)

    def _predict(self, audio: bytes) -> float:
        model = self.model()
        return float(model.predict(features.batch([audio], model.frames_for_turn(len(audio) // 2)))[0])

    @staticmethod
    def _answer(request: _Request, value: float | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody to answer
            request.loop.call_soon_threadsafe(_settle, request.future, value)
