"""Join the offline models that are split across registry packages, so the first call pays nothing.

    python -m tools.models            # every installed split model, into $VICTORIA_MODEL_CACHE
    python -m tools.models --strict   # exit 1 when a model's part packages are missing

``make install`` runs it after the pip installs. The workers would join a model at warm-up anyway
(``shared.model_parts.assemble``); doing it here moves the ~0.7 GB of copying and hashing out of the first call.
A model whose packages are not installed is skipped with a note (that provider then reports itself unusable).
Models that ship whole inside one wheel (the gateway's Smart Turn end-of-turn model) need no joining; ``--strict``
checks that their file is there.
"""

from __future__ import annotations

import argparse
import sys
import time

from services.gateway.end_of_turn.smart_turn import SmartTurnMissing, model_path
from shared.model_parts import OFFLINE_MODELS, ModelPartsError, assemble, model_cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.models", description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="fail when a model's packages are missing")
    args = parser.parse_args(argv)
    print(f"==> preparing offline models ({', '.join(m.title.split(' (')[0] for m in OFFLINE_MODELS)})", flush=True)
    failed = 0
    for model in OFFLINE_MODELS:
        if not model.installed():
            print(f"    {model.title}: packages not installed, skipped", flush=True)
            failed += args.strict
            continue
        started = time.monotonic()
        try:
            path = assemble(model, progress=lambda line: print(f"    {line}", flush=True))
        except ModelPartsError as exc:
            print(f"    {model.title}: FAILED: {exc}", file=sys.stderr, flush=True)
            failed += 1
            continue
        print(f"    {model.title}: ready in {time.monotonic() - started:.1f} s: {path}", flush=True)
    print(f"==> offline models in {model_cache()}", flush=True)
    failed += _check_smart_turn(args.strict)
    return 1 if failed else 0


def _check_smart_turn(strict: bool) -> int:
    """1 when ``strict`` and the end-of-turn model's file is missing (the gateway then uses the silence window)."""
    try:
        path = model_path()
    except SmartTurnMissing as exc:
        print(f"    Smart Turn v3.2 (end of turn): {exc}", file=sys.stderr if strict else sys.stdout, flush=True)
        return int(strict)
    print(f"    Smart Turn v3.2 (end of turn): {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
