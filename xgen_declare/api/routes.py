"""The endpoints: `/api/management/*` (seed-compatible, declarative) and `/metrics`.

Writes (POST) need the bearer token when one is set. Answers are JSON; errors are
`{"status": "error", "detail": ..., "errors"?: [{field, message, hint}]}`.
"""

from __future__ import annotations

import asyncio
import time

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from xgen_declare.reconciler.client import status_rows
from xgen_declare.reconciler.door import Control
from xgen_declare.reconciler.plan import Request as Asked
from xgen_declare.states import RUNNING_STATES, State
from xgen_declare.api import body, declare
from xgen_declare.api.context import ApiContext
from xgen_declare.http.security import ApiProblem, host_of, require_token
from xgen_declare.api.views import advertised_endpoint, model_json

router = APIRouter()
P = "/api/management"
DEFAULT_WAIT = 60.0
MAX_WAIT = 600.0
FAILED_STATES = frozenset({State.FAILED, State.BLOCKED, State.INVALID, State.CRASH_LOOP_BACK_OFF})
KEEPALIVE = 10.0


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


async def _json_body(request: Request, empty_ok: bool = False):
    return body.parse_body(await request.body(), empty_ok)


def _request_host(request: Request) -> str:
    return host_of(request.headers.get("host", ""))


# ---- load / unload ------------------------------------------------------------------------------

@router.post(P + "/load")
async def load(request: Request, wait: float = Query(DEFAULT_WAIT, ge=0, le=MAX_WAIT)):
    """Declare a model (writes DIR/api/NAME.yaml) and wait up to `wait` seconds for it to be Ready."""
    ctx = _ctx(request)
    require_token(request.headers, ctx.token)
    _not_from_git(ctx, "load")
    name, spec = declare.parse_load_body(await _json_body(request), ctx.settings)
    path = declare.owned_path(ctx.root, name)
    rel = f"{declare.API_DIR}/{name}.yaml"
    text = declare.manifest_text(name, spec)
    problems = declare.validate_text(text, rel)
    if problems:
        raise ApiProblem(422, "the request is not a valid model manifest", model=name,
                         errors=[declare.problem_json(p) for p in problems])
    async with ctx.write_lock:
        other = await to_thread.run_sync(declare.declared_elsewhere, ctx.env.paths, name, path)
        if other:
            raise ApiProblem(409, f"model {name!r} is declared in {declare.relative(ctx.root, other)}, a hand-written "
                             "manifest: edit that file (files are the source of truth)", model=name,
                             file=declare.relative(ctx.root, other))
        clash = await to_thread.run_sync(declare.served_elsewhere, ctx.env.paths, text, path)
        if clash:
            raise _clash_problem(ctx, name, *clash)
        previous = declare.read(path)
        changed = await to_thread.run_sync(declare.write, path, text)
        result = await ctx.call(lambda d: d.reconcile(full=False))
        if result is None:
            raise ApiProblem(503, "xgen-declare.yaml is invalid: nothing changes until it is fixed "
                             f"({rel} was written)", model=name, manifest=rel)
        if name not in result.wants:
            probs = result.desired.problems.get(name, []) if result.desired else []
            await to_thread.run_sync(_restore, path, previous)
            await ctx.call(lambda d: d.reconcile(full=False))
            raise ApiProblem(422, "the model cannot be declared (nothing was changed)", model=name,
                             errors=[declare.problem_json(p) for p in probs] or [
                                 {"field": "", "message": "; ".join(result.problems) or "not planned", "hint": ""}])
    want = result.wants[name]

    def superseded() -> bool:  # a later load, an edit or an unload replaced what this request wrote
        return declare.read(path) != text

    rec = await _settle(ctx, name, lambda r: superseded() or _load_done(r, want), wait)
    if await to_thread.run_sync(superseded):
        return JSONResponse({"status": "superseded", "detail": f"a later write of {rel} (another load, an edit or "
                             "an unload) replaced this request before its spec was Ready; the model follows the file",
                             "model": name, "state": rec.state_enum.value if rec else None, "changed": changed,
                             "manifest": rel}, status_code=409)
    return _load_answer(ctx, request, name, want, rec, changed, rel, wait)


def _not_from_git(ctx: ApiContext, verb: str) -> None:
    """A daemon following a git source serves a commit: a file written into its tree would be lost at the
    next switch and is never the repository's. The commit is the way to change its models."""
    source = ctx.daemon.source
    if source is not None:
        raise ApiProblem(409, f"this daemon's manifests come from the git source {source.spec.url}: {verb} a model "
                         "by committing its manifest to the repository (the daemon applies the next signed commit)")


def _clash_problem(ctx: ApiContext, name: str, what: str, served: str, other: str, file: str) -> ApiProblem:
    where = declare.relative(ctx.root, file)
    todo = {"name": "load it under another name", "alias": "choose another alias",
            "model id": f"send its requests to {other} (it serves that model already), or give this one another "
                        "model_path"}[what]
    return ApiProblem(409, f"{what} {served!r} of {name} is already served by {other} ({where}): {todo}, or edit "
                      f"{where} (files are the source of truth; nothing was written)", model=name, file=where,
                      conflict={"what": what, "name": served, "model": other})


def _restore(path, previous: str | None) -> None:
    if previous is None:
        declare.remove(path)
    else:
        declare.write(path, previous)


def _load_done(rec, want) -> bool:
    if rec is None:
        return False
    st = rec.state_enum
    if not want.enabled:
        return st not in RUNNING_STATES and st != State.PENDING
    if rec.held or st in FAILED_STATES:
        return True
    return st == State.READY and rec.spec_hash == want.spec_hash


async def _settle(ctx: ApiContext, name: str, done, wait: float):
    """The record once done(record) (called in a worker thread: it may read files) or after `wait` seconds."""
    deadline = time.monotonic() + wait

    def look():
        rec = ctx.env.store.load(name)
        return rec, done(rec)

    while True:
        rec, finished = await to_thread.run_sync(look)
        if finished or time.monotonic() >= deadline or ctx.closing.is_set():
            return rec
        await asyncio.sleep(0.1)


def _load_answer(ctx, request, name, want, rec, changed, rel, wait) -> JSONResponse:
    st = rec.state_enum if rec else State.PENDING
    port = (rec.port if rec else None) or want.port or None  # None: disabled, it takes no port
    endpoint = advertised_endpoint(want.host, port, rec.endpoint if rec and rec.endpoint else None,
                                   ctx.settings.advertise_host, _request_host(request))
    if endpoint is None and port is not None:
        host = f"[{want.host}]" if ":" in want.host else want.host
        endpoint = f"http://{host}:{port}/v1"
    base = {"model": name, "backend": (rec.backend if rec and rec.backend else None) or want.backend,
            "port": port, "endpoint": endpoint, "state": st.value, "changed": changed, "manifest": rel}
    if _load_done(rec, want) and (st == State.READY or not want.enabled):
        return JSONResponse({"status": "success", **base})
    if rec is not None and rec.held:
        return JSONResponse({"status": "error", "detail": f"{name} is held stopped by `xgen-declare down`; run "
                             f"`xgen-declare up {name}`", **base}, status_code=409)
    if st in FAILED_STATES:
        body = {"status": "error", "detail": f"{name} did not become ready ({st.value}); the manifest stays declared",
                "last_error": rec.last_error if rec else None, **base}
        return JSONResponse(ctx.scrub.json(body), status_code=503)
    detail = f"not Ready after {wait:g}s"
    if rec is not None and st in RUNNING_STATES and rec.spec_hash != want.spec_hash:
        base["state"] = State.PENDING.value  # the state of *this* spec: the process that runs is an older one
        detail += f": this spec has not started yet (the model still runs its previous spec, {st.value})"
    return JSONResponse({"status": "pending", "detail": f"{detail}; follow {P}/events or {P}/models/{name}", **base},
                        status_code=202)


@router.post(P + "/unload")
async def unload(request: Request, wait: float = Query(DEFAULT_WAIT, ge=0, le=MAX_WAIT),
                 name: str | None = Query(None)):
    """Remove DIR/api/NAME.yaml (body {"name": NAME} or ?name=NAME); the model stops."""
    ctx = _ctx(request)
    require_token(request.headers, ctx.token)
    _not_from_git(ctx, "unload")
    body = await _json_body(request, empty_ok=True)
    if not isinstance(body, dict):
        raise ApiProblem(422, "the body must be a JSON object such as {\"name\": \"qwen3-8b\"}")
    name = declare.check_name(name or body.get("name") or body.get("model"))
    path = declare.owned_path(ctx.root, name)
    rel = f"{declare.API_DIR}/{name}.yaml"
    async with ctx.write_lock:
        if not path.exists():
            other = await to_thread.run_sync(declare.declared_elsewhere, ctx.env.paths, name, path)
            if other:
                where = declare.relative(ctx.root, other)
                raise ApiProblem(409, f"model {name!r} is declared in {where}, a hand-written manifest: edit or "
                                 "remove that file (the API only unloads what it loaded)", model=name, file=where)
            raise ApiProblem(404, f"no model {name!r} was loaded through the API", model=name)
        await to_thread.run_sync(declare.remove, path)
        # a plan input like `down`: it goes through with the last good config even while xgen-declare.yaml is invalid
        await ctx.call(lambda d: _unload(d, name))
    rec = await _settle(ctx, name, lambda r: r is None or r.state_enum == State.STOPPED, wait)
    if rec is None or rec.state_enum == State.STOPPED:
        return JSONResponse({"status": "success", "model": name, "state": State.STOPPED.value, "removed": rel})
    return JSONResponse({"status": "pending", "detail": f"still {rec.state_enum.value} after {wait:g}s",
                         "model": name, "state": rec.state_enum.value, "removed": rel}, status_code=202)


def _unload(d: Control, name: str):
    """Reconcile with the unload as a plan input: the API removed the manifest on purpose, so the plan
    stops the model even when the prune guard (an emptied manifests dir) would keep it."""
    return d.reconcile(full=False, requests={name: Asked.UNLOAD})


# ---- reading -----------------------------------------------------------------------------------

def _models(ctx: ApiContext, request_host: str, name: str | None = None) -> list[dict]:
    store = ctx.env.store
    records: dict = {}
    rows = status_rows(store, ctx.env.proc_root, [name] if name else None, records=records)  # one read for both
    ledger = ctx.metrics.ledger
    return [model_json(r, records.get(r.name), ctx.root, ctx.scrub, ctx.settings.advertise_host, request_host,
                       ledger) for r in rows if name is None or r.name == name]


@router.get(P + "/models")
async def models(request: Request):
    ctx = _ctx(request)
    return {"models": await to_thread.run_sync(_models, ctx, _request_host(request))}


@router.get(P + "/models/{name}")
async def model(request: Request, name: str):
    ctx = _ctx(request)
    declare.check_name(name)
    found = await to_thread.run_sync(_models, ctx, _request_host(request), name)
    if not found:
        raise ApiProblem(404, f"no model {name!r}", model=name)
    return found[0]


@router.get(P + "/gpus")
def gpus(request: Request):
    """Same JSON as `xgen-declare gpus -o json` (detected now)."""
    from xgen_declare.inventory.host import detect_host

    env = _ctx(request).env
    return detect_host(None, sysfs_root=env.sysfs_root, proc_root=env.proc_root, with_backends=False).gpus_json()


@router.get(P + "/backends")
def backends(request: Request):
    """Same JSON as `xgen-declare backends -o json` (the daemon's inventory of its last full resync)."""

    ctx = _ctx(request)
    return (ctx.daemon.inventory or ctx.env.inventory()).backends_json()


@router.post(P + "/reconcile")
async def reconcile(request: Request):
    """Converge now (a full pass: manifests, config and inventory re-read)."""
    ctx = _ctx(request)
    require_token(request.headers, ctx.token)
    result = await ctx.call(lambda d: d.reconcile(full=True))
    if result is None:
        raise ApiProblem(503, "xgen-declare.yaml is invalid: nothing changes until it is fixed")
    return ctx.scrub.json({"status": "success", **result.plan.to_json(), "problems": result.problems})


@router.get(P + "/plan")
async def plan(request: Request):
    """What a pass would change now, with reasons (same as `xgen-declare plan -o json`). Changes nothing.
    Computed in a worker thread from the control loop's last snapshot (never queued on the loop)."""
    ctx = _ctx(request)
    result, _snap = await to_thread.run_sync(ctx.preview)
    return ctx.scrub.json({**result.plan.to_json(), "problems": result.problems})


# ---- events and metrics ------------------------------------------------------------------------

@router.get(P + "/events")
async def events(request: Request, since: int | None = Query(None, ge=0),
                 timeout: float | None = Query(None, gt=0, description="close the stream after this many seconds")):
    """Server-Sent Events: state changes, restarts, errors, manifest problems. ?since=ID (or the
    Last-Event-ID header) replays what the ring buffer still holds after ID; default: new events only."""
    ctx = _ctx(request)
    bus = ctx.bus
    header = request.headers.get("last-event-id", "")
    start = since if since is not None else int(header) if header.isdigit() else bus.last_id
    end = time.monotonic() + timeout if timeout else None

    async def stream():
        last, quiet_since = start, time.monotonic()
        yield "retry: 2000\n: xgen-declare events\n\n"
        while not ctx.closing.is_set():
            left = 1.0 if end is None else min(1.0, end - time.monotonic())
            if left <= 0 or await request.is_disconnected():
                return
            batch = await bus.wait(last, left)
            for ev in batch:
                last, quiet_since = ev.id, time.monotonic()
                yield ev.sse()
            if not batch and time.monotonic() - quiet_since >= KEEPALIVE:
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/metrics")
def metrics(request: Request):
    return Response(_ctx(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
