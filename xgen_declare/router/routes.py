"""The OpenAI-compatible endpoints: `GET /v1/models` and every other `/v1/*` path, forwarded to the
backend the request's `model` names (JSON body field, else the `model` query parameter).

Answers are passed through as they come (`aiter_raw`: no buffering, no re-encoding), so SSE streams
reach the client chunk by chunk. A client that goes away cancels the upstream request (the upstream
response is closed at once, `ProxyStream`). A backend that dies mid-answer ends an SSE stream with an
OpenAI-style `error` event.
"""

from __future__ import annotations

import json
import logging

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from xgen_declare.http.security import token_ok
from xgen_declare.router.errors import RouterError, clip, error_body
from xgen_declare.router.paths import upstream_path
from xgen_declare.router.service import Router

log = logging.getLogger("xgen_declare.router")

api = APIRouter()

HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                 "transfer-encoding", "upgrade", "host", "content-length", "authorization", "date", "server"})


def _router(request: Request) -> Router:
    return request.app.state.router


def check_token(request: Request) -> None:
    token = _router(request).ctx.token
    if token is not None and not token_ok(request.headers.get("authorization"), token):
        raise RouterError(401, "the router needs `Authorization: Bearer <token>` (the token of api.token_file / "
                          "XGEN_API_TOKEN; with the openai client: api_key=TOKEN)", code="invalid_api_key",
                          headers={"WWW-Authenticate": "Bearer"})


@api.get("/v1/models")
async def list_models(request: Request):
    """Every declared model with its state (`Idle` for an on-demand model that is not running)."""
    check_token(request)
    router = _router(request)
    table = await router.table()
    data = []
    for name in table.names():
        route = table.routes[name]
        data.append({"id": name, "object": "model", "created": 0, "owned_by": "xgen-declare",
                     "state": router.state_of(route).value, "activation": route.activation,
                     "aliases": list(route.aliases), "server_type": route.server_type})
        if route.manifest_error:  # invalid now: requests go to the last good process
            data[-1]["manifest_error"] = router.ctx.scrub.text(route.manifest_error)
    return {"object": "list", "data": data, "conflicts": list(table.conflicts)}  # aliases two models claim


def _model_of(request: Request, raw: bytes) -> tuple[str, bool]:
    """The request's `model`, and whether it asks for a streamed answer."""
    stream = False
    if request.method in ("POST", "PUT", "PATCH") and raw.strip():
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            where = f" (line {exc.lineno} column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) \
                else ""
            raise RouterError(400, f"the body is not valid JSON{where}", code="invalid_json") from None
        except RecursionError:
            raise RouterError(400, "the body nests too deeply to be read as JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise RouterError(400, "the body must be a JSON object with a `model` field", code="invalid_body")
        model = body.get("model")
        stream = body.get("stream") is True
    else:
        model = request.query_params.get("model")
    if model is None or model == "":
        raise RouterError(400, "missing `model`: name the model to use (see GET /v1/models)", code="missing_model",
                          param="model")
    if not isinstance(model, str):
        raise RouterError(400, "`model` must be a string", code="invalid_model", param="model")
    return model, stream


@api.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def forward(request: Request, path: str):
    router = _router(request)
    arrived = router.clock()
    check_token(request)
    target = upstream_path(path)  # before anything else: a path that leaves /v1/ reaches no backend
    raw = await request.body()
    model, stream = _model_of(request, raw)
    table = await router.table()
    route = table.resolve(model)
    if route is None and model in table.elsewhere:
        raise RouterError(404, f"the model {clip(model)!r} is not served on this host: its spec.hosts does not "
                          f"select it ({clip(table.elsewhere[model])}); send the request to a host that runs it",
                          code="model_not_found", param="model", known=table.known())
    if route is None:
        known = table.known()
        raise RouterError(404, f"the model {clip(model)!r} does not exist; known models: {', '.join(known) or 'none'}",
                          code="model_not_found", param="model", known=known)
    name = route.name
    router.tracker.begin(name)
    router.metrics.in_flight.labels(model=name).inc()
    done = _Once(lambda: (router.tracker.end(name), router.metrics.in_flight.labels(model=name).dec()))
    try:
        # without a token, a GET (an <img> on any page, old browsers send no Sec-Fetch-Site) starts nothing
        may_wake = router.ctx.token is not None or request.method not in ("GET", "HEAD")
        url = await router.ready(route, arrived, may_wake)
        port = httpx.URL(url).port or 0
        if not router.tracker.try_bind(name, port, router.connections):  # its pool is full: 429 now, not 504 later
            raise router.busy(route)
        done = _Once(lambda: (router.tracker.end(name), router.tracker.unbind(name, port),
                              router.metrics.in_flight.labels(model=name).dec()))
        upstream = await _open(router, request, route, url + target, raw, stream)
    except RouterError as exc:
        done()
        router.metrics.requests.labels(model=name, code=str(exc.status)).inc()
        raise
    except BaseException:
        done()
        raise
    router.metrics.requests.labels(model=name, code=str(upstream.status_code)).inc()
    headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
    sse = upstream.headers.get("content-type", "").startswith("text/event-stream")
    if sse:
        headers["X-Accel-Buffering"] = "no"

    async def body():
        first = True
        try:
            async for chunk in upstream.aiter_raw():
                if first:
                    router.metrics.ttfb.labels(model=name).observe(router.clock() - arrived)
                    first = False
                yield chunk
        except httpx.HTTPError as exc:
            router.nudge()
            log.warning("%s: upstream answer broken off: %s", name, exc)
            if sse:
                err = error_body(502, f"backend {name} closed the connection mid-answer ({type(exc).__name__}); "
                                 "its state is being updated", code="backend_disconnected")
                yield f"data: {json.dumps(err)}\n\n".encode()

    async def close():
        try:
            await upstream.aclose()
        finally:
            done()

    return ProxyStream(body(), status_code=upstream.status_code, headers=headers, on_close=close)


async def _open(router: Router, request: Request, route, url: str, raw: bytes, stream: bool) -> httpx.Response:
    """Send the request upstream; the answer is streamed back. llama-server closes a connection after a
    streamed answer without saying so, and a pooled connection the backend closed fails at once
    ("Server disconnected without sending a response"): streamed requests therefore ask for
    `Connection: close`, and a request that failed that way, before any answer, is sent once more on a
    new connection (the backend never read it)."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    key = await router.api_key(route)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if stream:
        headers["Connection"] = "close"
    client = router.client(route.name)
    for attempt in (1, 2):
        req = client.build_request(request.method, url, params=request.query_params, headers=headers, content=raw)
        try:
            return await client.send(req, stream=True)
        except httpx.RemoteProtocolError:
            if attempt == 1:
                headers["Connection"] = "close"  # a new connection: the pool's idle ones may be stale too
                continue
            router.nudge()
            raise RouterError(502, f"backend {route.name} is not answering (RemoteProtocolError); its state is "
                              "being updated", code="backend_unreachable") from None
        except httpx.PoolTimeout:  # try_bind keeps within the pool; should it fill anyway: busy, not a timeout
            raise router.busy(route) from None
        except httpx.TimeoutException as exc:
            raise RouterError(504, f"backend {route.name} did not answer in time ({type(exc).__name__})",
                              code="backend_timeout") from None
        except httpx.HTTPError as exc:
            router.nudge()
            raise RouterError(502, f"backend {route.name} is not answering ({type(exc).__name__}); its state is "
                              "being updated", code="backend_unreachable") from None
    raise AssertionError("unreachable")


class _Once:
    def __init__(self, fn):
        self.fn, self.called = fn, False

    def __call__(self) -> None:
        if not self.called:
            self.called = True
            self.fn()


class ProxyStream(StreamingResponse):
    """A StreamingResponse that always watches for the client going away (whatever the ASGI spec
    version) and always runs `on_close` (closes the upstream answer: that cancels the upstream request)."""

    def __init__(self, content, *, on_close, **kw):
        super().__init__(content, **kw)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                async def stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:  # the client went away while we wrote
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(stream)
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
                await self.on_close()


async def router_error(request: Request, exc: RouterError) -> JSONResponse:
    return JSONResponse(_router(request).ctx.scrub.json(exc.body()), status_code=exc.status, headers=exc.headers)
