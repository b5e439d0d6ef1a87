"""Write the dashboard's TypeScript types of the browser protocol from its pydantic models, so the two cannot drift.

    python -m tools.gen_protocol_ts           # (or `make protocol`) rewrite services/gateway/web/src/lib/protocol.ts
    python -m tools.gen_protocol_ts --check   # exit 1 if the committed file is not what the models give

The models (``services/gateway/transports/protocol.py``) are the source of truth; each becomes an interface, and
``ClientMessage`` / ``ServerMessage`` the unions of each direction. Only the small JSON-schema subset those models
use is translated (strings, numbers, booleans, null, ``const``/``enum`` literals, ``anyOf`` unions): anything else
is an error here rather than a wrong type there. A field is optional (``?``) unless the schema requires it, except
the ``type`` tag, which is always sent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from services.gateway.transports.protocol import CLIENT_MESSAGES, SERVER_MESSAGES

OUT = Path(__file__).resolve().parents[1] / "services" / "gateway" / "web" / "src" / "lib" / "protocol.ts"
COMMAND = "make protocol (python -m tools.gen_protocol_ts)"
SCALARS = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "null": "null"}


def literal(value: object) -> str:
    """A TypeScript literal in the dashboard's style (single-quoted strings)."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return json.dumps(value)


def ts_type(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return literal(schema["const"])
    if "enum" in schema:
        return " | ".join(literal(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(ts_type(s) for s in schema["anyOf"])
    if schema.get("type") in SCALARS:
        return SCALARS[schema["type"]]
    raise ValueError(f"no TypeScript translation for the schema {schema}: extend tools/gen_protocol_ts.py")


def doc(text: str, indent: str = "") -> str:
    """A one-line JSDoc comment from a docstring (reST ````code```` becomes Markdown ```code```)."""
    return f"{indent}/** {' '.join(text.replace('``', '`').split())} */\n"


def interface(model: type[BaseModel], mode: str) -> str:
    schema = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
    required = set(schema.get("required", ())) | {"type"}
    lines = [doc(schema["description"]) if "description" in schema else "", f"export interface {model.__name__} {{\n"]
    for name, prop in schema["properties"].items():
        notes = [prop["description"]] if "description" in prop else []
        if prop.get("default") is not None and name != "type":
            notes.append(f"default {literal(prop['default'])}")
        if notes:
            lines.append(doc("; ".join(notes), "  "))
        lines.append(f"  {name}{'' if name in required else '?'}: {ts_type(prop)};\n")
    lines.append("}\n")
    return "".join(lines)


def union(name: str, description: str, models: tuple[type[BaseModel], ...]) -> str:
    return doc(description) + f"export type {name} = {' | '.join(m.__name__ for m in models)};\n"


def render() -> str:
    """The whole of ``protocol.ts``."""
    parts = [
        f"// Generated from services/gateway/transports/protocol.py by {COMMAND}: do not edit.\n"
        "// The browser simulator's WebSocket protocol (/ws/simulator); see docs/ARCHITECTURE.md.\n",
        "// --- client → server ---\n",
        *(interface(m, "validation") for m in CLIENT_MESSAGES),
        union("ClientMessage", "A JSON message the browser sends; binary frames carry PCM16 audio.", CLIENT_MESSAGES),
        "// --- server → client ---\n",
        *(interface(m, "serialization") for m in SERVER_MESSAGES),
        union("ServerMessage", "A JSON message the gateway sends; binary frames carry reply audio.", SERVER_MESSAGES),
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare: exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
