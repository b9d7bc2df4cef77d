"""What the web dashboard (docs/dashboard.md) reads and does beyond the seed's endpoints.

    POST models/{name}/restart|down|up   the `restart` / `down` / `up` verbs (token like every write)
    GET  models/{name}/detail            rendered argv (secret flag values ***), env (secret values ***),
                                         labels, aliases, the model's problems and router figures
    GET  models/{name}/log?lines=N       the tail of the model's log (JSON; `problems`: a corrupt record, a link)
    GET  models/{name}/log/stream        the log as it grows (Server-Sent Events, id = byte offset)
    GET  ledger                          the memory ledger of the last pass: every device with usable
                                         memory, margin, shared pool, overcommit; blocked models' reasons
    GET  router                          per-model router figures (requests, in flight, TTFB, cold starts)
    GET  views                           which optional views this daemon has: {"source": a git source is
                                         followed (GET source), "fleet": fleet.hosts is set (GET fleet)}

Reads never change anything; the verbs act on the control loop like `xgen-declare restart/down/up`
(holds on top of the manifests: a `down` model stays declared, `up` starts only what a manifest declares).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import opened
from xgen_declare.reconciler.door import Control
from xgen_declare.reconciler.plan import Request as Asked
from xgen_declare.states import SETTLED_STATES, State
from xgen_declare.api import declare
from xgen_declare.api.context import ApiContext
from xgen_declare.http.security import ApiProblem, require_token
from xgen_declare.api.views import redact_argv, shown

router = APIRouter()
P = "/api/management"
VERBS = ("restart", "down", "up")
MAX_LINES = 2000
CHUNK = 64 * 1024
LOG_POLL = 0.25
MIB = 1024 * 1024


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


# ---- restart / down / up ---------------------------------------------------------------------------

@router.post(P + "/models/{name}/{verb}")
async def verb(request: Request, name: str, verb: str, wait: float = Query(0, ge=0, le=600)):
    """`xgen-declare VERB NAME` through the daemon: restart, down (stop and hold), up (release the hold)."""
    ctx = _ctx(request)
    if verb not in VERBS:
        raise ApiProblem(404, f"no action {shown(verb)}; use one of: {', '.join(VERBS)}")
    require_token(request.headers, ctx.token)
    declare.check_name(name)

    def act(d: Control):
        if name not in d.known():
            return d.known()
        d.reconcile(full=False, requests={name: Asked(verb)})
        return None

    unknown = await ctx.call(act)
    if unknown is not None:
        raise ApiProblem(404, f"no model {name!r} (known: {', '.join(unknown) or 'none'})", model=name)
    done = frozenset({State.STOPPED}) if verb == "down" else SETTLED_STATES - {State.STOPPED}
    deadline = time.monotonic() + wait
    while True:
        rec = await to_thread.run_sync(ctx.env.store.load, name)
        settled = rec is not None and rec.state_enum in done
        if settled or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    state = rec.state_enum.value if rec else None
    body = {"status": "success" if settled else "pending", "model": name, "action": verb, "state": state,
            "held": bool(rec and rec.held)}
    return JSONResponse(body, status_code=200 if settled else 202)


# ---- detail ----------------------------------------------------------------------------------------

def detail_json(result, name: str, root: str) -> dict:
    desired = result.desired
    decl = next((m for m in desired.load.models if m.name == name), None) if desired else None
    rendered = desired.rendered.get(name) if desired else None
    problems = [p.format() for p in (desired.problems.get(name, []) if desired else [])]
    out: dict = {"model": name, "declared": decl is not None or bool(problems),
                 "file": declare.relative(root, decl.file) if decl else None,
                 "labels": dict(decl.labels) if decl else {}, "alias": list(decl.spec.alias) if decl else [],
                 "activation": decl.spec.activation if decl else None, "problems": problems, "rendered": None}
    if rendered is not None:
        out["rendered"] = {"backend": rendered.backend, "argv": redact_argv(list(rendered.argv)),
                           "env": rendered.display_env(), "port": rendered.port, "endpoint": rendered.endpoint,
                           "gpus": rendered.gpus, "backend_reason": rendered.backend_reason}
    return out


@router.get(P + "/models/{name}/detail")
async def detail(request: Request, name: str):
    ctx = _ctx(request)
    declare.check_name(name)

    result, snap = await to_thread.run_sync(ctx.preview)  # the loop's last snapshot, never the loop itself
    body = detail_json(result, name, ctx.root)
    if not body["declared"] and name not in snap.known:
        raise ApiProblem(404, f"no model {name!r}", model=name)
    body["router"] = router_figures(ctx).get(name, _no_figures())
    return ctx.scrub.json(body)


# ---- log -------------------------------------------------------------------------------------------

def read_tail(path, lines: int) -> tuple[list[str], int]:
    """The last `lines` complete lines and the byte offset after them (a line still being written waits
    for its newline, so following from that offset sees it whole). Never through a symlink: a link or
    a non-file at the log's path raises FileRefused."""
    try:
        with opened(path, follow=False) as f:
            size = os.fstat(f.fileno()).st_size
            start = max(0, size - CHUNK * 4)
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return [], 0
    end = data.rfind(b"\n")
    if end < 0:
        return [], start
    text = data[:end].decode(errors="replace")
    if start > 0:
        text = text.split("\n", 1)[-1]  # a partial first line
    return (text.split("\n")[-lines:] if lines else []), start + end + 1


def read_from(path, offset: int) -> tuple[list[str], int]:
    """Complete lines written after `offset` (a truncated, i.e. rotated, file starts again at 0). A line
    longer than CHUNK comes in pieces of CHUNK bytes (cut between characters), so the stream never stops."""
    try:
        with opened(path, follow=False) as f:
            size = os.fstat(f.fileno()).st_size
            if size < offset:
                offset = 0
            f.seek(offset)
            data = f.read(CHUNK)
    except OSError:  # not there (yet): FileRefused ends the stream with why
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        if len(data) < CHUNK:
            return [], offset  # the rest of a line still being written
        piece = _whole_chars(data)
        return [piece.decode(errors="replace")], offset + len(piece)
    return data[:end].decode(errors="replace").split("\n"), offset + end + 1


def _whole_chars(data: bytes) -> bytes:
    """`data` without a UTF-8 character cut at its end (at most 3 bytes dropped; they start the next piece)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:  # the lead byte of the last character: complete if its length fits
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if need <= back else data[:-back]
    return data


@router.get(P + "/models/{name}/log")
async def log_tail(request: Request, name: str, lines: int = Query(200, ge=0, le=MAX_LINES)):
    ctx = _ctx(request)
    declare.check_name(name)
    found, offset, problems = await to_thread.run_sync(_tail_checked, ctx.env.store, name, lines)
    return {"model": name, "lines": [ctx.scrub.text(x) for x in found], "offset": offset,
            "problems": [ctx.scrub.text(p) for p in problems]}


def _tail_checked(store, name: str, lines: int) -> tuple[list[str], int, list[str]]:
    """The log's tail, and what was wrong on the way (a corrupt record, a link at the log's path): a
    200 with `problems`, never a 500."""
    path, problem = store.model_log_checked(name)
    problems = [problem] if problem else []
    try:
        found, offset = read_tail(path, lines)
    except FileRefused as exc:
        return [], 0, problems + [str(exc)]
    return found, offset, problems


def _refused(exc: FileRefused) -> ApiProblem:
    return ApiProblem(409, f"the model's log {exc.path} {exc.reason}; remove it (the daemon writes it again "
                      "when the model starts)")


@router.get(P + "/models/{name}/log/stream")
async def log_stream(request: Request, name: str, offset: int | None = Query(None, ge=0),
                     lines: int = Query(200, ge=0, le=MAX_LINES), timeout: float | None = Query(None, gt=0)):
    """SSE `log` events `{"lines": [...]}`: first the tail (`lines`), then what is appended. The event id
    is the byte offset: a reconnecting EventSource resumes where it was (Last-Event-ID)."""
    ctx = _ctx(request)
    declare.check_name(name)
    path, _ = ctx.env.store.model_log_checked(name)  # a corrupt record: NAME.log (the tail endpoint says why)
    header = request.headers.get("last-event-id", "")
    start = offset if offset is not None else int(header) if header.isdigit() else None
    end = time.monotonic() + timeout if timeout else None

    def event(found: list[str], pos: int) -> str:
        return f"id: {pos}\nevent: log\ndata: {json.dumps({'lines': [ctx.scrub.text(x) for x in found]})}\n\n"

    async def stream():
        pos = start
        yield "retry: 2000\n\n"
        try:
            if pos is None:
                found, pos, _ = await to_thread.run_sync(_tail_checked, ctx.env.store, name, lines)
                yield event(found, pos)
            while not ctx.closing.is_set() and (end is None or time.monotonic() < end):
                if await request.is_disconnected():
                    return
                found, pos = await to_thread.run_sync(read_from, path, pos)
                if found:
                    yield event(found, pos)
                else:
                    await asyncio.sleep(LOG_POLL)
        except FileRefused as exc:  # the stream ends with why (the client retries every 2 s)
            yield f"event: refused\ndata: {json.dumps(ctx.scrub.json(_refused(exc).body()))}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---- memory ledger and router figures --------------------------------------------------------------

def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / MIB, 1)


def ledger_json(ledger, inventory) -> dict:
    """Every device (GPUs, then the host) with what the dashboard draws; without a ledger, the GPUs of
    the inventory with their sizes only."""
    if ledger is None:
        gpus = getattr(inventory, "gpus", None) or []
        devices = [{"device": f"GPU{g.index}", "gpu": g.index, "name": g.name or "", "integrated": bool(g.integrated),
                    "total_mib": g.memory_total_mib, "free_mib": g.memory_free_mib, "usable_mib": None,
                    "used_mib": None, "shared_pool": False, "overcommitted": False} for g in gpus]
        return {"computed": False, "margin_mib": None, "devices": devices, "blocked": {}, "notes": [],
                "warnings": {}}
    devices = []
    for d in ledger.devices:
        cap, used = ledger.capacity.get(d.key), ledger.pool_used(d.key)
        devices.append({"device": d.key, "gpu": d.gpu, "name": d.name, "integrated": d.integrated,
                        "total_mib": d.total_mib, "free_mib": d.free_mib, "usable_mib": _mib(cap),
                        "used_mib": _mib(used), "shared_pool": d.key in ledger.shared(),
                        "overcommitted": cap is not None and used > cap})
    return {"computed": True, "margin_mib": ledger.margin_mib, "devices": devices, "blocked": dict(ledger.blocked),
            "notes": list(ledger.notes), "warnings": dict(ledger.warnings)}


@router.get(P + "/ledger")
async def ledger(request: Request):
    ctx = _ctx(request)
    return ctx.scrub.json(ledger_json(ctx.metrics.ledger, ctx.daemon.inventory))


def _no_figures() -> dict:
    return {"requests": {}, "in_flight": 0, "ttfb_count": 0, "ttfb_seconds_avg": None, "cold_starts": 0,
            "cold_start_seconds_avg": None, "evictions": 0, "idle_stops": 0}


def router_figures(ctx: ApiContext) -> dict[str, dict]:
    """Per model, from the router's Prometheus series (the same numbers /metrics shows)."""
    metrics = ctx.router.metrics if ctx.router is not None else None
    out: dict[str, dict] = {}
    if metrics is None:
        return out

    def samples(metric):
        for family in metric.collect():
            for s in family.samples:
                yield s.name, s.labels, s.value

    sums: dict[tuple[str, str], float] = {}
    for metric, key in ((metrics.requests, "requests"), (metrics.in_flight, "in_flight"), (metrics.ttfb, "ttfb"),
                        (metrics.cold_start, "cold"), (metrics.evictions, "evictions"),
                        (metrics.idle_stops, "idle_stops")):
        for sample, labels, value in samples(metric):
            fig = out.setdefault(labels["model"], _no_figures())
            if key == "requests" and sample.endswith("_total"):
                fig["requests"][labels["code"]] = int(value)
            elif key == "in_flight":
                fig["in_flight"] = int(value)
            elif key in ("evictions", "idle_stops") and sample.endswith("_total"):
                fig[key] = int(value)
            elif key in ("ttfb", "cold") and sample.endswith(("_count", "_sum")):
                sums[(labels["model"], key + sample.rsplit("_", 1)[1])] = value
    for name, fig in out.items():
        for key, label in (("ttfb", "ttfb"), ("cold", "cold_start")):
            count, total = sums.get((name, key + "count"), 0.0), sums.get((name, key + "sum"), 0.0)
            fig[f"{label}_seconds_avg"] = round(total / count, 4) if count else None
            fig["ttfb_count" if key == "ttfb" else "cold_starts"] = int(count)
    return out


@router.get(P + "/views")
async def views(request: Request):
    """What the page shows beyond the models: the git source panel and the Fleet view, only when there is
    one (so that the page never asks a route that answers 404)."""
    ctx = _ctx(request)
    return {"source": ctx.daemon.source is not None, "fleet": ctx.env.config.fleet.hosts is not None}


@router.get(P + "/router")
async def router_stats(request: Request):
    return {"models": router_figures(_ctx(request))}
