"""The OpenAI-compatible router of `run --api` (docs/router.md): one base URL for every model, the
request's `model` picks the backend; on-demand start, idle stop and making room by the memory ledger.

    table.py     model names and aliases -> Route (pure)
    activity.py  per-model in-flight / waiting counts and last use (thread-safe)
    keys.py      the backends' api_key_file contents, read on the control loop (bounded), looked up by requests
    ondemand.py  wake (with eviction, least recently used first) and idle stop, on the control loop
    service.py   Router: request -> Ready backend URL (waits bounded by ready_timeout), upstream client
    routes.py    GET /v1/models and the pass-through of /v1/* (streaming, client disconnect)
    paths.py     the path forwarded upstream stays under /v1/ (dot segments refused, plain or encoded)
    guard.py     the API's guard for /v1 (larger body limit, OpenAI-shaped errors)
    errors.py    OpenAI-style error bodies (`RouterError`)
    metrics.py   xgen_router_* series in the API's registry
"""

from __future__ import annotations

from xgen_declare.router.errors import RouterError
from xgen_declare.router.guard import ROUTER_MAX_BODY, PathGuard
from xgen_declare.router.service import Router

__all__ = ["PathGuard", "ROUTER_MAX_BODY", "Router", "RouterError", "mount_router"]


def mount_router(app, ctx) -> Router:
    """Serve /v1 on the management API's app (same bind, same token); hooks join the daemon on attach."""
    from xgen_declare.router.routes import api, router_error

    limits = ctx.env.config.router
    router = Router(ctx, queue_limit=limits.queue_limit, read_timeout=limits.upstream_read_timeout,
                    connections=limits.connections_per_model)
    ctx.router = router
    app.state.router = router
    app.include_router(api)
    app.add_exception_handler(RouterError, router_error)
    if ctx.attached:
        router.attach()
    return router
