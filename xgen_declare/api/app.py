"""The FastAPI app: the management routes, the dashboard and the /v1 router on one app, one guard and
one set of error handlers (no traceback ever reaches a client). What the routes share is
context.py's `ApiContext`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from xgen_declare import __version__
from xgen_declare.api.context import ApiContext
from xgen_declare.api.routes import router
from xgen_declare.api.ui import mount_dashboard
from xgen_declare.http.security import ApiProblem, allowed_hosts
from xgen_declare.manifests.validation_errors import field_path
from xgen_declare.router import PathGuard, mount_router

__all__ = ["ApiContext", "create_app", "clip_json"]

log = logging.getLogger("xgen_declare.api")

MAX_ECHO = 2048        # characters of any one string in an error body (a name, a field path, a message)


def clip_json(value):
    """`value` with every string cut to MAX_ECHO characters: what a client sent is never echoed whole."""
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO else f"{value[:MAX_ECHO]}… ({len(value) - MAX_ECHO} more characters)"
    if isinstance(value, list):
        return [clip_json(v) for v in value]
    if isinstance(value, dict):
        return {clip_json(k): clip_json(v) for k, v in value.items()}
    return value


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="xgen-declare management API", version=__version__, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.include_router(router)
    mount_dashboard(app)  # the web dashboard at /ui/ and its endpoints (docs/dashboard.md)
    mount_router(app, ctx)  # the OpenAI-compatible /v1 router (docs/router.md)

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem):
        return JSONResponse(clip_json(ctx.scrub.json(exc.body())), status_code=exc.status,
                            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)

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
        log.exception("API error on %s %s", request.method, request.url.path)
        return JSONResponse({"status": "error", "detail": "internal error (details are in the daemon's log)"},
                            status_code=500)

    app.add_middleware(PathGuard, hosts=allowed_hosts(ctx.settings, ctx.bind_host), max_body=ctx.max_body,
                       router_max_body=ctx.env.config.router.max_body_mib * 1024 * 1024)
    return app
