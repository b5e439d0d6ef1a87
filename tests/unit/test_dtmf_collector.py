"""Keypad keys into entries per the agent's ``dtmf`` mode, and the masking of sensitive entries."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.gateway.call.dtmf import DigitCollector, Masker, llm_text, mask
from shared.agent_tools import DtmfSpec


class Entries:
    def __init__(self) -> None:
        self.got: list[tuple[str, float]] = []
        self.started = time.monotonic()

    async def __call__(self, digits: str) -> None:
        self.got.append((digits, time.monotonic() - self.started))

    @property
    def digits(self) -> list[str]:
        return [d for d, _ in self.got]


async def press(collector: DigitCollector, keys: str) -> None:
    for key in keys:
        await collector.press(key)


async def test_each_key_is_an_entry_at_once() -> None:
    entries = Entries()
    await press(DigitCollector(DtmfSpec(mode="each"), entries), "12#")
    assert entries.digits == ["1", "2", "#"]


async def test_off_ignores_every_key() -> None:
    entries = Entries()
    await press(DigitCollector(DtmfSpec(mode="off"), entries), "123#")
    assert entries.digits == []


async def test_collect_gathers_until_the_terminator_which_is_not_part_of_the_entry() -> None:
    entries = Entries()
    collector = DigitCollector(DtmfSpec(mode="collect", terminator="#", timeout_s=5), entries)
    await press(collector, "1234#")
    assert entries.digits == ["1234"]
    await press(collector, "#")  # a terminator alone is no entry
    await press(collector, "9*#")  # keys other than the terminator are kept
    assert entries.digits == ["1234", "9*"]


async def test_collect_stops_at_max_digits() -> None:
    entries = Entries()
    collector = DigitCollector(DtmfSpec(mode="collect", max_digits=3, timeout_s=5), entries)
    await press(collector, "123456")
    assert entries.digits == ["123", "456"]


async def test_collect_ends_an_entry_after_timeout_without_a_key() -> None:
    entries = Entries()
    collector = DigitCollector(DtmfSpec(mode="collect", timeout_s=0.5), entries)
    await press(collector, "12")
    await asyncio.sleep(0.3)
    await press(collector, "3")  # a key restarts the wait
    await asyncio.sleep(0.3)
    assert entries.digits == []
    await asyncio.sleep(0.4)
    assert entries.digits == ["123"]
    assert 0.3 + 0.5 - 0.05 <= entries.got[0][1] < 1.2  # 0.5 s after the last key, not the first


async def test_with_no_terminator_only_the_timeout_or_the_count_ends_an_entry() -> None:
    entries = Entries()
    collector = DigitCollector(DtmfSpec(mode="collect", terminator="", timeout_s=0.5), entries)
    await press(collector, "12#")
    await asyncio.sleep(0.7)
    assert entries.digits == ["12#"]


async def test_a_closed_collector_drops_the_half_typed_entry() -> None:
    entries = Entries()
    collector = DigitCollector(DtmfSpec(mode="collect", timeout_s=0.5), entries)
    await press(collector, "12")
    collector.close()
    await asyncio.sleep(0.7)
    assert entries.digits == []


@pytest.mark.parametrize("key", ["x", "", "12", " "])
async def test_what_is_not_a_key_is_dropped(key: str) -> None:
    entries = Entries()
    await DigitCollector(DtmfSpec(mode="each"), entries).press(key)
    assert entries.digits == []


async def test_letters_are_keys_in_either_case() -> None:
    entries = Entries()
    await press(DigitCollector(DtmfSpec(mode="each"), entries), "aD")
    assert entries.digits == ["A", "D"]


def test_masks_and_the_text_the_llm_gets() -> None:
    assert mask("1234") == "••••"
    assert llm_text("1234") == "DTMF: 1234"


def test_the_masker_hides_every_sensitive_entry_longest_first() -> None:
    masker = Masker()
    assert masker('{"pin": "1234"}') == '{"pin": "1234"}'
    masker.add("12")
    masker.add("1234")
    masker.add("")
    assert masker('{"pin": "1234", "again": "12345", "short": "12"}') == (
        '{"pin": "••••", "again": "••••5", "short": "••"}'
    )


def test_the_masker_never_masks_a_lone_key_and_masks_the_run_of_keys_as_it_stands() -> None:
    masker = Masker()
    masker.add("5")
    assert masker("5 minutes, 15 euros") == "5 minutes, 15 euros"
    masker.add("9")  # the run is "59" now
    assert masker("59 and 5 and 9") == "•• and 5 and 9"
    masker.add("1")  # "591": "59" alone is no longer the secret
    assert masker("591 59") == "••• 59"
    masker.break_run()
    masker.add("7")  # a new run of one key; "591" stays masked
    assert masker("591 7") == "••• 7"
