"""`Router`: what the `/v1` endpoints share — the route table, activity, on-demand control, metrics,
and the path from a request to a Ready backend (`ready`) plus its upstream request (`open_upstream`).

Reads the supervisor's in-memory state (a string per model, set by the control loop); every change
goes through the control loop (`ctx.call` → `OnDemand.wake`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Protocol, TypeVar

import httpx
from prometheus_client import CollectorRegistry
from anyio import to_thread

from xgen_declare.manifests.load import load_paths
from xgen_declare.states import State
from xgen_declare.http.security import ApiProblem, Scrubber
from xgen_declare.router.activity import Tracker
from xgen_declare.router.errors import RouterError
from xgen_declare.router.keys import KeyCache
from xgen_declare.router.metrics import RouterMetrics
from xgen_declare.router.ondemand import OnDemand
from xgen_declare.processes.view import ModelView
from xgen_declare.reconciler.door import Control, Door
from xgen_declare.reconciler.env import Env
from xgen_declare.router.ondemand import Publisher
from xgen_declare.router.table import Route, RouteTable, table_from_decls

log = logging.getLogger("xgen_declare.router")

__all__ = ["Router", "QUEUE_LIMIT"]

QUEUE_LIMIT = 64          # requests that may wait per model while it starts; beyond: 429
CONNECTIONS = 64          # requests forwarded to one model at once (its own pool); beyond: 429
KEEPALIVE = 20            # idle connections a model's pool keeps
POLL = 0.05               # fallback: seconds between looks at a starting model's state (see `_on_tick`)
REWAKE = 1.0              # a model seen Idle again while a request waits (it was stopping) is woken again
GRACE = 5.0               # added to ready_timeout: the start itself may wait for an evicted model to stop
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=10.0)  # read: config router.upstream_read_timeout
FAILED = frozenset({State.FAILED, State.BLOCKED, State.INVALID})


def base_url(host: str, port: int) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


T = TypeVar("T")


class HasRegistry(Protocol):
    registry: CollectorRegistry


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


class Host(Protocol):
    """What the router needs from the server it is mounted on: api/context.py's ApiContext."""

    daemon: Door                     # the control loop's door (reconciler/door.py)
    token: str | None
    bus: Publisher                   # api/events.py EventBus: on-demand starts, evictions
    metrics: HasRegistry             # api/metrics.py Metrics: the registry the router's series join
    scrub: Scrubber

    @property
    def env(self) -> Env: ...

    async def call(self, fn: Callable[[Control], T], timeout: float = ...) -> T: ...


class Router:
    def __init__(self, ctx: Host, clock: Callable[[], float] = time.monotonic, queue_limit: int = QUEUE_LIMIT,
                 read_timeout: float = TIMEOUT.read, connections: int = CONNECTIONS):
        self.ctx, self.clock, self.queue_limit, self.connections = ctx, clock, queue_limit, connections
        self.timeout = httpx.Timeout(connect=TIMEOUT.connect, read=read_timeout, write=TIMEOUT.write,
                                     pool=TIMEOUT.pool)
        self.tracker = Tracker(clock)
        self.metrics = RouterMetrics(ctx.metrics.registry)
        self.keys = KeyCache()
        self.ondemand = OnDemand(self.tracker, ctx.bus, self.metrics, self.keys)
        self._clients: dict[asyncio.AbstractEventLoop, dict[str, httpx.AsyncClient]] = {}
        self._attached = False
        # requests waiting for a model to start: woken by the control loop step that changed its state
        self._waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._seen: dict[str, State | None] = {}

    # ---- lifecycle -------------------------------------------------------------------------------
    def attach(self) -> None:
        d = self.ctx.daemon
        if not self._attached:
            d.add_pass_hook(self.ondemand.on_pass)
            d.add_tick_hook(self.ondemand.tick)
            d.add_tick_hook(self._on_tick)
            # a stop drains the requests forwarded to the model; a surge the old process's, by its port
            d.register_router(self.tracker.active, self.tracker.at)
            self._attached = True

    def detach(self) -> None:
        d = self.ctx.daemon
        d.remove_pass_hook(self.ondemand.on_pass)
        d.remove_tick_hook(self.ondemand.tick)
        d.remove_tick_hook(self._on_tick)
        d.unregister_router()
        self._attached = False

    def client(self, name: str) -> httpx.AsyncClient:
        """Model `name`'s own pooled client, `connections` at most (one pool for all let 100 streams to
        one model make every other model wait for a connection, then 504), per event loop (uvicorn has
        one; test clients may bring others)."""
        loop = asyncio.get_running_loop()
        for old in [lp for lp in self._clients if lp.is_closed()]:
            del self._clients[old]
        pools = self._clients.setdefault(loop, {})
        if name not in pools:
            limits = httpx.Limits(max_connections=self.connections,
                                  max_keepalive_connections=min(self.connections, KEEPALIVE))
            pools[name] = httpx.AsyncClient(timeout=self.timeout, limits=limits, follow_redirects=False,
                                            trust_env=False)
        return pools[name]

    def busy(self, route: Route) -> RouterError:
        return RouterError(429, f"{self.connections} requests to {route.name} are being answered already (router."
                           "connections_per_model); retry later", code="model_busy", headers={"Retry-After": "1"})

    def _on_tick(self, d: Control) -> None:
        """Control loop, after each step: wake the requests of every model whose state changed."""
        for name, waiters in list(self._waiting.items()):
            v = d.live(name)
            state = v.state if v is not None else None
            if self._seen.get(name) == state:
                continue
            self._seen[name] = state
            for loop, event in list(waiters):
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:  # that loop is closed
                    pass

    # ---- reading ---------------------------------------------------------------------------------
    async def table(self) -> RouteTable:
        if self.ondemand.table is None:  # before the first pass: straight from the manifests (and key files)
            def build() -> RouteTable:
                table = table_from_decls(load_paths(self.ctx.env.paths).models)
                self.keys.refresh(table)
                return table

            table = await to_thread.run_sync(build)
            if self.ondemand.table is None:
                self.ondemand.table = table
        return self.ondemand.table

    def view(self, name: str) -> ModelView | None:
        """The model as the supervisor last published it (never a live Proc: this runs on the server's loop)."""
        return self.ctx.daemon.model(name)

    def state_of(self, route: Route) -> State:
        v = self.view(route.name)
        if v is None:
            return State.IDLE if route.on_demand and route.enabled else State.PENDING
        return v.state

    async def api_key(self, route: Route) -> str | None:
        """The key to send upstream, as the control loop last read it (router/keys.py); never opens the
        file on the event loop. 503 if the file cannot be used."""
        path = route.api_key_file
        if not path:
            return None
        key = self.keys.cached(path)
        if key is None:  # a route the control loop has not looked at yet: read it in a worker thread
            key = await to_thread.run_sync(self.keys.refresh_one, path)
        if key.problem:
            where = f" (in {route.file})" if route.file else ""
            raise RouterError(503, f"cannot send {route.name}'s key upstream: spec.api_key_file{where}: {path} "
                              f"{key.problem}", code="backend_key_unreadable")
        return key.value

    # ---- a request's way to a Ready backend -------------------------------------------------------
    async def ready(self, route: Route, arrived: float, may_wake: bool = True) -> str:
        """The backend's base URL once the model is Ready (waking an on-demand model, bounded by its
        ready_timeout); RouterError 503 (or 429 when too many wait) otherwise. `may_wake` False: an Idle
        on-demand model is not started for this request (503 model_idle)."""
        name = route.name
        if not route.enabled:
            raise RouterError(503, f"model {name!r} is disabled in its manifest (enabled: false)",
                              code="model_disabled")
        url = self._ready_url(name)
        if url:
            return url
        if not self.tracker.try_wait(name, self.queue_limit):
            raise RouterError(429, f"{self.queue_limit} requests already wait for {name} to start; retry later",
                              code="queue_full", headers={"Retry-After": "5"})
        try:
            url = await self._wait_ready(route, arrived, may_wake)
        finally:
            self.tracker.done_waiting(name)
        self.metrics.cold_start.labels(model=name).observe(self.clock() - arrived)
        return url

    def _ready_url(self, name: str) -> str | None:
        v = self.view(name)
        if v is not None and v.serving and v.port:
            return base_url(v.host, v.port)
        return None

    async def _wait_ready(self, route: Route, arrived: float, may_wake: bool = True) -> str:
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        self._waiting.setdefault(route.name, set()).add(waiter)
        try:
            return await self._wait_ready_loop(route, arrived, waiter[1], may_wake)
        finally:
            waiters = self._waiting.get(route.name)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    self._waiting.pop(route.name, None)
                    self._seen.pop(route.name, None)

    async def _wait_ready_loop(self, route: Route, arrived: float, changed: asyncio.Event,
                               may_wake: bool = True) -> str:
        name = route.name
        # a rollout may hold it: drain, stop, then the new start
        deadline = arrived + route.drain_timeout + route.stop_grace + route.ready_timeout + GRACE
        last_wake: float | None = None
        while True:
            url = self._ready_url(name)
            if url:
                return url
            v, st, now = self.view(name), self.state_of(route), self.clock()
            if v is not None and v.held:
                raise RouterError(503, f"{name} is held stopped by `xgen-declare down`; run `xgen-declare up "
                                  f"{name}`", code="model_held")
            if route.manifest_error and st not in (State.STARTING, State.READY, State.UNHEALTHY):
                raise RouterError(503, f"{name}'s manifest is invalid and its last good process is not running: "
                                  f"{first_line(route.manifest_error)}", code="manifest_invalid", state=st.value)
            if st == State.CRASH_LOOP_BACK_OFF and (last_wake is not None or not route.on_demand):
                raise RouterError(503, f"{name} exited: {first_line(v.last_error if v else None)}", code="model_crashed",
                                  state=st.value)
            if st in FAILED and (last_wake is not None or not route.on_demand):
                why = first_line(v.last_error or v.manifest_error) if v else ""
                raise RouterError(503, f"{name} is {st.value}" + (f": {why}" if why else ""),
                                  code="model_unavailable", state=st.value)
            if st == State.STOPPED and not route.on_demand:
                raise RouterError(503, f"{name} is Stopped", code="model_unavailable", state=st.value)
            wakeable = st in (State.IDLE, State.STOPPED) or (last_wake is None and st != State.STOPPING)
            if route.on_demand and wakeable and not may_wake and st != State.STARTING:  # joins a start, never makes one
                raise RouterError(503, f"{name} is {st.value} (on-demand) and a GET does not start it while the "
                                  "router has no token (any web page could send one): send the request as a POST, "
                                  "or set api.token_file / XGEN_API_TOKEN", code="model_idle", state=st.value)
            if route.on_demand and wakeable and may_wake and (last_wake is None or now - last_wake >= REWAKE):
                last_wake = now
                try:
                    wake = await self.ctx.call(lambda d: self.ondemand.wake(d, name))
                except ApiProblem as exc:  # the control loop's inbox is full, or it did not answer in time
                    retry = exc.extra.get("retry_after")
                    raise RouterError(503, exc.detail, code="daemon_busy",
                                      headers={"Retry-After": str(retry)} if retry else None) from None
                if not wake.ok:
                    extra = {"short_mib": wake.short_mib} if wake.short_mib else {}
                    raise RouterError(503, wake.reason, code="insufficient_memory" if wake.short_mib else
                                      "model_unavailable", **extra)
                continue
            if now >= deadline:
                raise RouterError(503, f"{name} did not become Ready within {route.ready_timeout:g}s "
                                  f"(state {st.value})", code="model_not_ready", state=st.value)
            try:
                await asyncio.wait_for(changed.wait(), POLL)
            except asyncio.TimeoutError:
                pass
            changed.clear()

    def nudge(self) -> None:
        """Something looked dead upstream: let the control loop look now."""
        self.ctx.daemon.nudge()
