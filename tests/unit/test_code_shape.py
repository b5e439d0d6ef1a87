"""The code's shape, enforced: no module under ``services/``, ``shared/`` or ``tools/`` over 400 lines and no
function or method over 60 lines (tests and benchmarks aside). A module that grows past that has stopped doing
one job; a function that long hides several steps that want names. The failure lists every offender at once,
so one run shows all that needs splitting."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("services", "shared", "tools")
SKIPPED_DIRS = {"tests", "bench", "node_modules", "__pycache__", ".venv"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def source_files(root: Path = ROOT) -> list[Path]:
    """Every Python module of the project's code (not tests, benchmarks or installed packages)."""
    files = []
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root).parts
            if SKIPPED_DIRS.isdisjoint(parts) and not path.name.startswith("test_"):
                files.append(path)
    return files


def offenders(source: str, name: str) -> list[str]:
    """What in one module's ``source`` breaks the limits, one line each (``name`` says where)."""
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{name}: module has {lines} lines (max {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name}() has {length} lines (max {MAX_FUNCTION_LINES})")
    return found


def test_the_limits_are_measured_as_said() -> None:
    """The measure itself: a def of 60 lines passes, one of 61 does not (async and methods too); 400 lines of
    module pass, 401 do not."""
    body = "    x = 1\n"
    ok = "def f():\n" + body * 59
    long = "async def g():\n" + body * 60
    method = "class C:\n    def m(self):\n" + ("        x = 1\n" * 60)
    assert offenders(ok, "a.py") == []
    assert offenders(long, "a.py") == ["a.py:1 g() has 61 lines (max 60)"]
    assert offenders(method, "a.py") == ["a.py:2 m() has 61 lines (max 60)"]
    assert offenders("x = 1\n" * 400, "a.py") == []
    assert offenders("x = 1\n" * 401, "a.py") == ["a.py: module has 401 lines (max 400)"]


def test_the_scan_covers_the_code_and_leaves_out_tests(tmp_path: Path) -> None:
    for rel in ("services/gateway/app.py", "shared/tests/helper.py", "tools/test_x.py", "tools/bench/run.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    assert [p.relative_to(tmp_path).as_posix() for p in source_files(tmp_path)] == ["services/gateway/app.py"]
    real = {p.relative_to(ROOT).as_posix() for p in source_files()}
    assert {"services/gateway/app.py", "shared/subjects.py", "tools/devstack.py"} <= real


def test_no_module_or_function_is_too_long() -> None:
    found = [
        line
        for path in source_files()
        for line in offenders(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    ]
    assert not found, f"{len(found)} over the limits (split them by job):\n" + "\n".join(found)
