"""Several llama.cpp contexts over one model, so that each conversation finds its own words still read.

llama.cpp re-reads a prompt only from the first token that differs from what its context last read. With one
context per model, every call and every post-call extraction overwrites the one before: the next turn of a live
call then re-reads its whole conversation (SmolLM2 reads ~400 prompt tokens/s on two cores, Qwen 0.5B a
quarter of that), which is most of its time to the first words. A :class:`ContextPool` keeps up to ``size``
contexts of the same model file (mmapped: the weights are shared, each context adds its KV cache and buffers,
~70 MB at 2048 tokens) and sends each chat to the context that last read the start of that same conversation;
a conversation seen nowhere takes the context idle the longest, so one call's extraction does not cost a live
call its cache. That context is first given the cache of the one sharing most of the new chat's start (a new
call of an agent: its prompt and greeting, ~70 tokens, ~0.3 s of Qwen), copied (a few MB, milliseconds).

Contexts are created at warm-up (or when first needed, without it); one generation runs at a time (the
caller holds the lock): the pool decides only *which* context reads the next prompt.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from llama_cpp import Llama

Chat = list[dict[str, str]]
C = TypeVar("C")


@dataclass
class Slot(Generic[C]):
    """One context and the chat it last read (its KV cache holds that chat, and the reply it wrote)."""

    context: C
    chat: Chat = field(default_factory=list)
    used: float = 0.0


def shared_messages(a: Chat, b: Chat) -> int:
    """How many leading messages two chats have in common."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def continues(slot_chat: Chat, chat: Chat) -> bool:
    """Whether ``chat`` is the conversation ``slot_chat`` was: its next turn (``slot_chat`` is a prefix of it),
    or the same turn asked again (a reply started at an earlier pause: all but the caller's last message
    shared). For the latter, the shared part must hold a caller's message: every call of an agent starts
    with the same prompt and greeting, so two first turns look alike without being one conversation."""
    shared = shared_messages(slot_chat, chat)
    if shared == 0:
        return False
    if shared == len(slot_chat):
        return True
    return shared == len(slot_chat) - 1 and any(m.get("role") == "user" for m in slot_chat[:shared])


class ContextPool(Generic[C]):
    """Up to ``size`` contexts made by ``create``; :meth:`take` picks the one for a chat."""

    def __init__(self, create: Callable[[], C], size: int, copy: Callable[[C, C], None] | None = None) -> None:
        if size < 1:
            raise ValueError("a context pool needs at least one context")
        self.create = create
        self.size = size
        self.copy = copy  # (from, to): the cache of one context into another
        self.slots: list[Slot[C]] = []

    def fill(self) -> list[C]:
        """Every context, created now where missing (warm-up: no live turn waits for a context to load)."""
        while len(self.slots) < self.size:
            self.slots.append(Slot(self.create()))
        return [slot.context for slot in self.slots]

    def take(self, chat: Chat) -> Slot[C]:
        """The context for ``chat``: the one that read this conversation (the longest shared start wins), else
        an unused one, a new one while the pool has room, or the one idle the longest, given first the cache
        of the context that shares most of ``chat``'s start. The caller records what it reads by :meth:`read`."""
        best = max(self.slots, key=lambda s: shared_messages(s.chat, chat), default=None)
        if best is not None and continues(best.chat, chat):
            return best
        slot = self._free()
        if (
            best is not None
            and self.copy is not None
            and shared_messages(best.chat, chat) > shared_messages(slot.chat, chat)
        ):
            self.copy(best.context, slot.context)
            slot.chat = best.chat
        return slot

    def _free(self) -> Slot[C]:
        unused = [s for s in self.slots if not s.chat]
        if unused:
            return unused[0]
        if len(self.slots) < self.size:
            slot: Slot[C] = Slot(self.create())
            self.slots.append(slot)
            return slot
        return min(self.slots, key=lambda s: s.used)

    @staticmethod
    def read(slot: Slot[C], chat: Chat) -> None:
        """``slot`` is reading ``chat`` now."""
        slot.chat = list(chat)
        slot.used = time.monotonic()


def prompt_tokens_read(llm: Llama) -> int:
    """Prompt tokens llama.cpp evaluated since its counters were last reset (what the cache did not hold)."""
    from llama_cpp import llama_cpp as capi

    return int(capi.llama_perf_context(llm.ctx).n_p_eval)


def reset_counters(llm: Llama) -> None:
    from llama_cpp import llama_cpp as capi

    capi.llama_perf_context_reset(llm.ctx)


def copy_cache(source: Llama, target: Llama) -> None:
    """``source``'s KV cache and tokens into ``target`` (two contexts of the same model); llama-cpp-python then
    keeps of it what the next prompt shares, as with its own cache."""
    from llama_cpp import llama_cpp as capi

    size = capi.llama_state_seq_get_size(source.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = capi.llama_state_seq_get_data(source.ctx, buffer, size, 0)
    if not written or not capi.llama_state_seq_set_data(target.ctx, buffer, written, 0):
        target.reset()  # (nothing copied: the target reads its prompt whole)
        return
    target.input_ids[: source.n_tokens] = source.input_ids[: source.n_tokens]
    target.n_tokens = source.n_tokens
    target._requires_eval = True  # its logits are not the source's: the next prompt's last token is decoded again
