"""The FastAPI app and what its routes share (`ApiContext`): the daemon, the token, the bus, metrics.

The control loop owns every model: routes read snapshots (the state records on disk, written
atomically by the loop) and hand work to the loop with `ctx.call(fn)` (`Daemon.submit`), never
touching the supervisor from the server's thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from xgen_declare import __version__, states
from xgen_declare.config import Api
from xgen_declare.manifests.validation_errors import field_path
from xgen_declare.api.events import EventBus, EventFeeder
from xgen_declare.api.metrics import Metrics
from xgen_declare.api.security import MAX_BODY, ApiProblem, Scrubber, allowed_hosts

log = logging.getLogger("xgen_declare.api")

CALL_TIMEOUT = 120.0


@dataclass
class ApiContext:
    daemon: Any                          # xgen_declare.reconciler.daemon.Daemon
    settings: Api
    bind_host: str
    token: str | None
    bus: EventBus = field(default_factory=EventBus)
    closing: threading.Event = field(default_factory=threading.Event)
    max_body: int = MAX_BODY

    def __post_init__(self) -> None:
        env = self.daemon.env
        self.scrub = Scrubber([(p, "") for p in env.paths] + [(str(env.store.root), "$STATE_DIR/")])
        self.feeder = EventFeeder(self.bus, self.scrub)
        self.metrics = Metrics(env.store, env.proc_root, lambda: self.daemon.inventory)
        self.write_lock = asyncio.Lock()
        self._attached = False

    @property
    def env(self):
        return self.daemon.env

    @property
    def root(self) -> str:
        """The manifests dir that holds api/ (the first DIR given to `run`)."""
        return self.env.paths[0]

    def attach(self) -> None:
        if not self._attached:
            states.add_listener(self.feeder.on_transition)
            states.add_listener(self.metrics.on_transition)
            self.daemon.pass_hooks.extend([self.feeder.on_pass, self.metrics.on_pass])
            self.daemon.sup.on_event = self.bus.publish  # rollout events (supervisor.py)
            self._attached = True
            if getattr(self, "router", None) is not None:
                self.router.attach()

    def detach(self) -> None:
        self.closing.set()
        if self._attached:
            states.remove_listener(self.feeder.on_transition)
            states.remove_listener(self.metrics.on_transition)
            for hook in (self.feeder.on_pass, self.metrics.on_pass):
                if hook in self.daemon.pass_hooks:
                    self.daemon.pass_hooks.remove(hook)
            if getattr(self, "router", None) is not None:
                self.router.detach()
            self._attached = False

    async def call(self, fn: Callable, timeout: float = CALL_TIMEOUT):
        """Run fn(daemon) on the control loop and await its result."""
        fut = self.daemon.submit(fn)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            fut.cancel()
            raise ApiProblem(503, f"the control loop did not answer within {timeout:g}s") from None


def create_app(ctx: ApiContext) -> FastAPI:
    from xgen_declare.router import PathGuard, mount_router
    from xgen_declare.api.routes import router
    from xgen_declare.api.ui import mount_dashboard

    app = FastAPI(title="xgen-declare management API", version=__version__, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.include_router(router)
    mount_dashboard(app)  # the web dashboard at /ui/ and its endpoints (docs/dashboard.md)
    mount_router(app, ctx)  # the OpenAI-compatible /v1 router (docs/router.md)

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem):
        return JSONResponse(ctx.scrub.json(exc.body()), status_code=exc.status,
                            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"field": field_path(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid"), "hint": ""}
                  for e in exc.errors()]
        return JSONResponse({"status": "error", "detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"status": "error", "detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("API error on %s %s", request.method, request.url.path)
        return JSONResponse({"status": "error", "detail": "internal error (details are in the daemon's log)"},
                            status_code=500)

    app.add_middleware(PathGuard, hosts=allowed_hosts(ctx.settings, ctx.bind_host), max_body=ctx.max_body,
                       router_max_body=ctx.env.config.router.max_body_mib * 1024 * 1024)
    return app
