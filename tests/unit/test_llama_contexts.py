"""Which llama.cpp context reads a chat: each conversation goes back to the context that read it."""

from __future__ import annotations

import itertools

import pytest

from services.llm_worker.providers.llama_contexts import Chat, ContextPool, continues

SYSTEM = {"role": "system", "content": "You are Victoria."}
GREETING = {"role": "assistant", "content": "Hello, how can I help?"}


def call(*turns: str) -> Chat:
    """A conversation: the agent's prompt and greeting, then the caller's and the agent's turns in turn."""
    roles = itertools.cycle(["user", "assistant"])
    return [SYSTEM, GREETING, *({"role": role, "content": text} for role, text in zip(roles, turns, strict=False))]


def pool(size: int) -> ContextPool[int]:
    made = itertools.count()
    p = ContextPool(lambda: next(made), size)
    p.fill()
    return p


def ask(p: ContextPool[int], chat: Chat) -> int:
    slot = p.take(chat)
    p.read(slot, chat)
    return slot.context


def test_each_conversation_goes_back_to_the_context_that_read_it() -> None:
    p = pool(3)
    a = ask(p, call("I'd like a table."))
    b = ask(p, call("When do you open?"))
    extraction = ask(p, [{"role": "system", "content": "Extract JSON."}, {"role": "user", "content": "transcript"}])
    assert len({a, b, extraction}) == 3
    assert ask(p, call("I'd like a table.", "For how many?", "Four.")) == a
    assert ask(p, call("When do you open?", "At nine.", "And on Sundays?")) == b


def test_a_reply_asked_again_at_a_later_pause_reuses_its_context() -> None:
    p = pool(2)
    a = ask(p, call("I'd like a table.", "For how many?", "Four people"))
    ask(p, call("Is there parking?"))
    assert ask(p, call("I'd like a table.", "For how many?", "Four people, at eight.")) == a


def test_first_turns_of_two_calls_do_not_share_a_context() -> None:
    p = pool(3)
    assert ask(p, call("I'd like a table.")) != ask(p, call("When do you open?"))


def test_a_new_conversation_takes_the_context_idle_the_longest() -> None:
    p = pool(2)
    a = ask(p, call("I'd like a table."))
    b = ask(p, call("When do you open?"))
    ask(p, call("I'd like a table.", "For how many?", "Four."))  # A is live: its context was used last
    extraction = [{"role": "system", "content": "Extract JSON."}, {"role": "user", "content": "B's transcript"}]
    assert ask(p, extraction) == b
    assert ask(p, call("I'd like a table.", "For how many?", "Four.", "At eight?", "Yes.")) == a


def test_one_context_reads_everything() -> None:
    p = pool(1)
    assert {ask(p, call("A")), ask(p, call("B", "b", "C")), ask(p, [{"role": "user", "content": "x"}])} == {0}


def test_without_warm_up_contexts_are_made_when_needed_up_to_the_size() -> None:
    made: list[int] = []
    p: ContextPool[int] = ContextPool(lambda: made.append(len(made)) or len(made) - 1, 2)
    assert ask(p, call("A")) == 0
    assert ask(p, [{"role": "user", "content": "x"}]) == 1
    assert ask(p, [{"role": "user", "content": "y"}]) == 0  # full: the one idle the longest
    assert made == [0, 1]


def test_continues() -> None:
    assert continues(call("A"), call("A", "a", "B"))  # the next turn
    assert continues(call("A", "a", "B"), call("A", "a", "B and C"))  # the same turn, asked again
    assert not continues(call("A", "a", "B"), call("X", "x", "Y"))  # another call of the same agent
    assert not continues(call("A"), call("X"))  # two first turns: only the agent's prompt and greeting shared
    assert not continues([], call("A"))


def test_a_pool_needs_a_context() -> None:
    with pytest.raises(ValueError):
        ContextPool(lambda: 0, 0)


def test_a_new_call_is_given_the_cache_of_the_context_sharing_its_start() -> None:
    made = itertools.count()
    copies: list[tuple[int, int]] = []
    p: ContextPool[int] = ContextPool(lambda: next(made), 3, lambda source, target: copies.append((source, target)))
    p.fill()
    a = ask(p, call("I'd like a table.", "For how many?", "Four."))
    assert copies == []  # nothing shares anything yet
    b = ask(p, call("When do you open?"))  # the agent's prompt and greeting are in A's context
    assert b != a and copies == [(a, b)]
    ask(p, call("I'd like a table.", "For how many?", "Four.", "At eight?", "Yes."))  # A goes on: no copy
    assert copies == [(a, b)]
    ask(p, [{"role": "system", "content": "Extract JSON."}, {"role": "user", "content": "transcript"}])
    assert copies == [(a, b)]  # shares nothing with anyone: read whole
