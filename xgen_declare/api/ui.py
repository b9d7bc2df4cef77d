"""The web dashboard's files (xgen_declare/api/ui/: plain HTML, CSS and JavaScript, no build step) served
at /ui/ on the API's address, `/` redirecting there; `mount_dashboard` also adds its endpoints
(`dashboard.py`).

Every answer of /ui/ carries a strict Content-Security-Policy: scripts, styles and connections from
this origin only, no inline script or style, no frames, no plugins. The page renders every string it
gets (manifests, logs, backends) as text, never as HTML.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse, Response

UI_DIR = Path(__file__).resolve().parent / "ui"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}

router = APIRouter()


def assets() -> dict[str, bytes]:
    """File name -> content of every shipped asset (read once; nothing else is ever served)."""
    return {p.name: p.read_bytes() for p in sorted(UI_DIR.iterdir()) if p.suffix in TYPES}


def page_weight() -> int:
    return sum(len(v) for v in assets().values())


def _serve(files: dict[str, bytes], name: str) -> Response:
    data = files.get(name)
    if data is None:
        return Response(b'{"status": "error", "detail": "no such file"}', status_code=404,
                        media_type="application/json", headers=HEADERS)
    return Response(data, media_type=TYPES[Path(name).suffix], headers=HEADERS)


def mount_dashboard(app: FastAPI) -> None:
    from xgen_declare.api.dashboard import router as endpoints

    files = assets()
    app.include_router(endpoints)

    @app.get("/", include_in_schema=False)
    def root():
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui", include_in_schema=False)
    def ui_bare():
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui/", include_in_schema=False)
    def index():
        return _serve(files, "index.html")

    @app.get("/ui/{name}", include_in_schema=False)
    def asset(name: str):
        return _serve(files, name)
