"""The import graph keeps the rooms apart: ``shared/`` imports no service and no tool, the gateway no worker, recorder
or tool, each worker no other service or tool, and the recorder no other service. Every import counts: at module
level, inside functions and under ``TYPE_CHECKING`` (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKERS = ("services.stt_worker", "services.llm_worker", "services.tts_worker")
SERVICES = (*WORKERS, "services.call_recorder", "services.gateway")


def imported(source: str) -> set[str]:
    """Every module ``source`` imports, anywhere in it (``from a import b`` counts as ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def forbidden_for(package: str) -> tuple[str, ...]:
    """What code under ``package`` must not import."""
    if package == "shared":
        return ("services", "tools")
    if package == "services.gateway":
        return (*WORKERS, "services.call_recorder", "tools")
    if package in WORKERS:
        return (*(s for s in SERVICES if s != package), "tools")
    if package == "services.call_recorder":
        return tuple(s for s in SERVICES if s != package)
    raise AssertionError(package)


def violations(package: str) -> list[str]:
    root = REPO.joinpath(*package.split("."))
    files = sorted(root.rglob("*.py"))
    assert files, f"no modules under {root}"
    bad = forbidden_for(package)
    found = []
    for path in files:
        for module in sorted(imported(path.read_text(encoding="utf-8"))):
            if any(within(module, b) for b in bad):
                found.append(f"{path.relative_to(REPO)} imports {module}")
    return found


@pytest.mark.parametrize("package", ["shared", "services.gateway", *WORKERS, "services.call_recorder"])
def test_no_import_crosses_a_boundary(package: str) -> None:
    assert violations(package) == []


def test_lazy_and_type_checking_imports_count() -> None:
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from services.llm_worker.providers import base
def later():
    import tools.check_env
    from services import tts_worker
"""
    found = imported(source)
    assert {"services.llm_worker.providers", "tools.check_env", "services.tts_worker"} <= found
    assert any(within(m, "services.llm_worker") for m in found) and not within("services.gatewayx", "services.gateway")
