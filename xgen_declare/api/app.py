"""The FastAPI app: the management routes, the dashboard and the /v1 router on one app, one guard and
one set of error handlers (no traceback ever reaches a client). What the routes share is
context.py's `ApiContext`."""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from xgen_declare import __version__
from xgen_declare.api.context import ApiContext
from xgen_declare.api.fleet import router as fleet_router
from xgen_declare.api.routes import router
from xgen_declare.api.source import router as source_router
from xgen_declare.api.ui import mount_dashboard
from xgen_declare.http.security import ApiProblem, allowed_hosts
from xgen_declare.readers.validation_errors import field_path
from xgen_declare.router import PathGuard, mount_router

__all__ = ["ApiContext", "AnsweredOnce", "create_app", "clip_json"]

log = logging.getLogger("xgen_declare.api")

MAX_ECHO = 2048        # characters of any one string in an error body (a name, a field path, a message)
TRACE_FRAMES = 6       # innermost frames of the traceback logged the first time an error is seen
MAX_KINDS = 256
_LOGGED = "xgen.error_logged"
_seen: set[tuple[str, str, int]] = set()


def clip_json(value):
    """`value` with every string cut to MAX_ECHO characters: what a client sent is never echoed whole."""
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO else f"{value[:MAX_ECHO]}… ({len(value) - MAX_ECHO} more characters)"
    if isinstance(value, list):
        return [clip_json(v) for v in value]
    if isinstance(value, dict):
        return {clip_json(k): clip_json(v) for k, v in value.items()}
    return value


def log_500(method: str, path: str, exc: BaseException) -> None:
    """One record per 500: the error in one line, plus a short traceback the first time this kind is seen
    (a RecursionError's thousand frames are not logged)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = frames[-1] if frames else None
    kind = (type(exc).__name__, where.filename if where else "", (where.lineno or 0) if where else 0)
    text = _one_line(f"{type(exc).__name__}: {str(exc)[:500]}")
    path = _one_line(path[:200])
    if kind in _seen:
        log.error("API error on %s %s: %s (traceback logged before)", method, path, text)
        return
    if len(_seen) >= MAX_KINDS:
        _seen.clear()
    _seen.add(kind)
    short = "".join(traceback.format_list(frames[-TRACE_FRAMES:])).rstrip()
    log.error("API error on %s %s: %s\n  innermost %d of %d frames:\n%s", method, path, text,
              min(TRACE_FRAMES, len(frames)), len(frames), short)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class AnsweredOnce:
    """The outermost ASGI layer under uvicorn: Starlette re-raises every exception after its 500 handler
    answered (so that a server may log it); uvicorn would then log it a second time, traceback and all.
    An error the app's handler logged ends here; one it did not is logged here, once."""

    def __init__(self, app):
        self.app = app

    def __getattr__(self, name):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope.get(_LOGGED) is not exc:
                log_500(scope.get("method", scope.get("type", "?")), scope.get("path", ""), exc)


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="xgen-declare management API", version=__version__, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.include_router(router)
    app.include_router(source_router)  # the git source: status and webhook (api/source.py)
    app.include_router(fleet_router)  # every host of the config's fleet.hosts (api/fleet.py)
    mount_dashboard(app)  # the web dashboard at /ui/ and its endpoints (docs/dashboard.md)
    mount_router(app, ctx)  # the OpenAI-compatible /v1 router (docs/router.md)

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if "retry_after" in exc.extra:  # a full control-loop inbox (context.py): come back later
            headers = {"Retry-After": str(exc.extra["retry_after"])}
        return JSONResponse(clip_json(ctx.scrub.json(exc.body())), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"field": field_path(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid"), "hint": ""}
                  for e in exc.errors()]
        return JSONResponse(clip_json({"status": "error", "detail": "invalid request", "errors": errors}),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return JSONResponse(clip_json({"status": "error", "detail": str(exc.detail)}), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log_500(request.method, request.url.path, exc)
        request.scope[_LOGGED] = exc  # Starlette raises it again: AnsweredOnce knows it is logged
        return JSONResponse({"status": "error", "detail": "internal error (details are in the daemon's log)"},
                            status_code=500)

    app.add_middleware(PathGuard, hosts=allowed_hosts(ctx.settings, ctx.bind_host), max_body=ctx.max_body,
                       router_max_body=ctx.env.config.router.max_body_mib * 1024 * 1024)
    return app
