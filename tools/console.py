"""Prefixed, optionally coloured output lines for several processes at once (the dev stack's terminal)."""

from __future__ import annotations

import contextlib
import sys
from typing import IO


class Console:
    """Prefixed, optionally coloured lines, one writer, so output of several processes never interleaves."""

    COLORS = ("36", "33", "32", "35", "34", "96", "93")
    SELF = "devstack"

    def __init__(self, names: list[str], color: bool, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.color = color
        self.width = max(len(n) for n in [*names, self.SELF])
        self.codes = {name: self.COLORS[i % len(self.COLORS)] for i, name in enumerate(names)}
        self.codes[self.SELF] = "1"

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def line(self, name: str, text: str) -> None:
        label = self._paint(f"{name.ljust(self.width)} |", self.codes.get(name, "0"))
        self.write(f"{label} {text}")

    def say(self, text: str) -> None:
        self.line(self.SELF, text)

    def error(self, text: str) -> None:
        self.line(self.SELF, self._paint(text, "1;31"))

    def write(self, text: str) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.out.write(text + "\n")
            self.out.flush()

    def banner(self, lines: list[str]) -> None:
        rule = "=" * min(100, max(len(s) for s in lines))
        for text in [rule, *lines, rule]:
            self.write(self._paint(text, "1;32"))
