"""Serves the dashboard (the React app in ``web/``, built into ``web/dist`` by ``make install``) at ``/``.

Any path that is not an API, WebSocket, probe or docs path and not a file in ``dist`` answers ``index.html``, so
the app's own routes (``/agents``, ``/history/<call id>``) survive a reload. Without a build, every such path
answers 503 with a page that says how to build it and what works meanwhile (calls from a terminal, the API docs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, status
from fastapi.responses import FileResponse, HTMLResponse, Response

WEB = Path(__file__).parent
DIST = WEB / "dist"
ASSET_SUFFIXES = {".js", ".mjs", ".css", ".map", ".png", ".jpg", ".svg", ".ico", ".json", ".txt", ".woff", ".woff2"}
RESERVED = ("api/", "admin/", "ws/", "twilio/", "telnyx/", "docs", "redoc", "openapi.json", "metrics", "health")

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Victoria: dashboard not built</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:720px;margin:3rem auto;padding:0 1rem;color:#1d2433}
code{background:#eef1f5;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><h1>The dashboard is not built</h1>
<p>The gateway serves the dashboard from <code>services/gateway/web/dist</code>, which does not exist yet.
Build it with <code>make install</code> (runs <code>npm ci</code> and <code>npm run build</code>; needs Node.js 18+ and
npm), or by hand:</p>
<pre><code>cd services/gateway/web &amp;&amp; npm ci &amp;&amp; npm run build</code></pre>
<p>Then reload this page. Meanwhile:</p>
<ul><li>call an agent from a terminal, from WAV files or text, with
<code>python -m tools.talk --say "What time do you open tomorrow?"</code> (<code>--help</code> for more);</li>
<li>the HTTP API and its docs are at <a href="/docs">/docs</a>; the WebSocket protocol is in
<code>docs/ARCHITECTURE.md</code>.</li></ul></body></html>
"""


def _file_in(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a file inside ``root`` (no ``..`` escapes, no symlinks out)."""
    if not relative:
        return None
    try:
        base = root.resolve()
        candidate = (base / relative).resolve()
    except (OSError, ValueError):
        return None
    if base not in candidate.parents or not candidate.is_file():
        return None
    return candidate


def mount_dashboard(app: FastAPI, dist: Path = DIST) -> None:
    """Register the catch-all dashboard route; call after every other route."""

    @app.get("/", include_in_schema=False)
    @app.get("/{path:path}", include_in_schema=False)
    async def dashboard(path: str = "") -> Response:
        if path.startswith(RESERVED):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
        index = dist / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
        found = _file_in(dist, path)
        if found is not None:
            # hashed assets never change; everything else is revalidated
            immutable = found.parent.name == "assets"
            cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
            return FileResponse(found, headers={"Cache-Control": cache})
        if Path(path).suffix.lower() in ASSET_SUFFIXES:  # a missing file (e.g. /favicon.ico), not an app route
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
        return FileResponse(index, headers={"Cache-Control": "no-cache"})
