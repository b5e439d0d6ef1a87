"""Joining split model packages: in order, verified, atomic, idempotent, and safe when workers start together."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from shared import model_parts
from shared.model_parts import (
    OFFLINE_MODELS,
    ModelPartsError,
    PackageFile,
    SplitModel,
    assemble,
    model_cache,
    model_family,
)

PARTS = (b"alpha-" * 1000, b"beta-" * 700, b"gamma")


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three fake part packages (data only, never imported) and a companion file, on sys.path."""
    site = tmp_path / "site"
    for i, blob in enumerate(PARTS, 1):
        pkg = site / f"fake_model_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('part packages are never imported')\n")
        (pkg / "data" / f"part{i}.bin").write_bytes(blob)
    (site / "fake_model_part1" / "data" / "config.json").write_text('{"ok": true}')
    monkeypatch.syspath_prepend(str(site))
    return site


def fake_model(*, sha256: str | None = None, size: int | None = None) -> SplitModel:
    joined = b"".join(PARTS)
    return SplitModel(
        title="fake",
        target="fake/model.bin",
        parts=tuple(PackageFile(f"fake_model_part{i}", f"data/part{i}.bin") for i in range(1, 4)),
        size=len(joined) if size is None else size,
        sha256=hashlib.sha256(joined).hexdigest() if sha256 is None else sha256,
        companions=(PackageFile("fake_model_part1", "data/config.json"),),
    )


def test_parts_are_joined_in_order_with_their_companions(packages: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    path = assemble(fake_model(), tmp_path / "cache", progress=lines.append)
    assert path == tmp_path / "cache" / "fake" / "model.bin"
    assert path.read_bytes() == b"".join(PARTS)
    assert (path.parent / "config.json").read_text() == '{"ok": true}'
    assert len(lines) == 1 and "3 parts" in lines[0]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]  # no temp file left behind
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_a_second_call_reuses_the_verified_file(packages: Path, tmp_path: Path) -> None:
    path = assemble(fake_model(), tmp_path)
    before = path.stat().st_mtime_ns
    lines: list[str] = []
    assert assemble(fake_model(), tmp_path, progress=lines.append) == path
    assert lines == [] and path.stat().st_mtime_ns == before


def test_a_damaged_file_of_the_right_size_is_joined_again(packages: Path, tmp_path: Path) -> None:
    path = assemble(fake_model(), tmp_path)
    damaged = bytearray(path.read_bytes())
    damaged[10] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, a later mtime: the stamp no longer vouches for it
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    lines: list[str] = []
    assemble(fake_model(), tmp_path, progress=lines.append)
    assert path.read_bytes() == b"".join(PARTS) and len(lines) == 1


def test_a_file_without_a_stamp_is_hashed_and_kept_when_it_matches(packages: Path, tmp_path: Path) -> None:
    target = tmp_path / "fake" / "model.bin"
    target.parent.mkdir()
    target.write_bytes(b"".join(PARTS))  # e.g. copied in by hand
    lines: list[str] = []
    assert assemble(fake_model(), tmp_path, progress=lines.append) == target
    assert lines == []


def test_parts_that_are_not_the_pinned_model_are_refused(packages: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelPartsError, match="sha256"):
        assemble(fake_model(sha256="0" * 64), tmp_path)
    with pytest.raises(ModelPartsError, match="bytes"):
        assemble(fake_model(size=3), tmp_path)
    folder = tmp_path / "fake"
    assert not (folder / "model.bin").exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


def test_a_missing_part_package_is_named(packages: Path, tmp_path: Path) -> None:
    model = fake_model()
    missing = SplitModel(model.title, model.target, (*model.parts, PackageFile("no_such_part9", "x")), 1, "0" * 64)
    with pytest.raises(ModelPartsError, match="no-such-part9 is not installed"):
        assemble(missing, tmp_path)
    assert not missing.installed() and model.installed()


def test_threads_starting_together_join_once(packages: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    results: list[Path] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        results.append(assemble(fake_model(), tmp_path, progress=lines.append))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert len(lines) == 1  # the others waited on the lock, then found the file ready
    assert results[0].read_bytes() == b"".join(PARTS)


def _assemble_in_child(site: str, cache: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import sys

    sys.path.insert(0, site)
    out.put(str(assemble(fake_model(), Path(cache))))


def test_processes_starting_together_get_the_same_complete_file(packages: Path, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    children = [ctx.Process(target=_assemble_in_child, args=(str(packages), str(tmp_path), out)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    paths = {out.get(timeout=5) for _ in children}
    assert len(paths) == 1 and Path(paths.pop()).read_bytes() == b"".join(PARTS)


def test_the_cache_follows_the_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VICTORIA_MODEL_CACHE", str(tmp_path / "models"))
    assert model_cache() == tmp_path / "models"
    monkeypatch.delenv("VICTORIA_MODEL_CACHE")
    assert model_cache() == Path(os.path.expanduser("~")) / ".cache" / "victoria" / "models"


@pytest.mark.parametrize(
    ("language", "family"),
    [(None, "en"), ("en", "en"), ("en-US", "en"), ("en-GB", "en"), ("es", "multilingual"), ("es-ES", "multilingual")],
)
def test_english_stays_on_the_english_models(language: str | None, family: str) -> None:
    assert model_family(language) == family


def test_the_offline_models_are_pinned() -> None:
    assert {m.title.split(" (")[0] for m in OFFLINE_MODELS} == {"Whisper base", "Kokoro", "Qwen 0.5B"}
    for model in OFFLINE_MODELS:
        assert len(model.sha256) == 64 and model.size > 50_000_000 and len(model.parts) >= 2


def test_a_read_only_cache_with_a_verified_model_is_used_as_it_is(
    packages: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image's cache is joined at build time by root and read by an unprivileged user."""
    path = assemble(fake_model(), tmp_path)
    path.with_name("model.bin.sha256").unlink()  # e.g. a stamp lost: the file is hashed again, nothing written

    def read_only(target: Path, _data: bytes) -> None:
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(model_parts, "_write_atomic", read_only)
    assert assemble(fake_model(), tmp_path) == path


def test_the_install_step_prepares_every_model_and_says_so(
    packages: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import models

    missing = SplitModel("Absent (nowhere)", "absent/x", (PackageFile("no_such_part9", "x"),), 1, "0" * 64)
    monkeypatch.setattr(models, "OFFLINE_MODELS", (fake_model(), missing))
    monkeypatch.setenv("VICTORIA_MODEL_CACHE", str(tmp_path / "cache"))
    assert models.main([]) == 0  # a model whose packages are not installed is skipped
    out = capsys.readouterr().out
    assert out.startswith("==> preparing offline models (fake, Absent)")
    assert "Absent (nowhere): packages not installed, skipped" in out
    assert (tmp_path / "cache" / "fake" / "model.bin").read_bytes() == b"".join(PARTS)
    assert models.main(["--strict"]) == 1
