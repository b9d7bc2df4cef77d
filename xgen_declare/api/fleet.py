"""The fleet at a glance for the dashboard (issue #24 item 7): `GET /api/management/fleet` answers what
`xgen-declare fleet status --hosts FILE -o json` prints, for the config's `fleet: {hosts: FILE}`.

    {"hosts_file": FILE, "hosts": [{host, url, error, serving, refusal, models: [{name, state, commit,
     pending}]}], "commit": the commit most hosts serve (null: none does), "everywhere": bool,
     "missing": ["host: why", ...] (fleet_status.serves_commit), "asked_at": unix, "problems": [text]}

The collection is reconciler/fleet_status.py's, run in a worker thread (never on the event loop): hosts.yaml
and every token file read bounded, every host asked at once, each within the file's timeout (default 5s),
an unreachable host one row with the reason. One collection at a time: a request arriving while one runs,
or within FRESH seconds after it, gets its answer (a page left open cannot make the daemon ask the fleet
in a loop). A hosts file with errors is a 200 with `problems` (file:line: field, what to do) and no hosts,
so the dashboard shows them where the table would be. Without `fleet.hosts` the route answers 404.
Tokens are never in the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from anyio import to_thread
from fastapi import APIRouter, Request

from xgen_declare.api.context import ApiContext
from xgen_declare.errors import ProblemsError, XgenError
from xgen_declare.http.security import ApiProblem
from xgen_declare.reconciler.fleet_status import FleetStatus, ask_hosts, load_hosts, serves_commit

__all__ = ["FleetAsker", "fleet_json", "router"]

router = APIRouter()
P = "/api/management"
FRESH = 2.0  # seconds an answer is reused


def fleet_json(fleet: FleetStatus) -> dict:
    """The hosts as `fleet status -o json` has them, and the answer to "is commit X serving everywhere?"
    for the commit most reachable hosts serve."""
    served = Counter(h.serving for h in fleet.hosts if h.error is None and h.serving)
    commit = min(served, key=lambda c: (-served[c], c)) if served else None
    missing = serves_commit(fleet, commit) if commit else []
    return {**fleet.to_json(), "commit": commit, "everywhere": commit is not None and not missing,
            "missing": missing}


class FleetAsker:
    """One collection at a time, its answer kept FRESH seconds (clock injectable for tests). Requests wait
    for a running collection on an asyncio lock, not in worker threads: a burst of them holds one thread."""

    def __init__(self, clock=time.monotonic, wall=time.time):
        self.clock, self.wall = clock, wall
        self._lock: asyncio.Lock | None = None  # made on the event loop that first asks
        self._last: tuple[str, float, dict] | None = None  # (hosts file, monotonic time, answer)

    async def ask(self, hosts_file: str) -> dict:
        """The fleet's JSON for `hosts_file`; the collection itself runs in a worker thread."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # a second request waits for the running collection and takes its answer
            last = self._last
            if last is not None and last[0] == hosts_file and self.clock() - last[1] < FRESH:
                return last[2]
            answer = await to_thread.run_sync(self._collect, hosts_file)
            self._last = (hosts_file, self.clock(), answer)
            return answer

    def _collect(self, hosts_file: str) -> dict:
        base = {"hosts_file": hosts_file, "asked_at": round(self.wall(), 3)}
        try:
            hosts, timeout = load_hosts(hosts_file)
        except XgenError as exc:
            lines = [p.format() for p in exc.problems] if isinstance(exc, ProblemsError) else [str(exc)]
            return {**base, "hosts": [], "commit": None, "everywhere": False, "missing": [], "problems": lines}
        return {**base, **fleet_json(ask_hosts(hosts, timeout)), "problems": []}


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def _asker(request: Request) -> FleetAsker:
    asker = getattr(request.app.state, "fleet_asker", None)
    if asker is None:
        asker = request.app.state.fleet_asker = FleetAsker()
    return asker


@router.get(P + "/fleet")
async def fleet(request: Request):
    """Every model on every host of the config's fleet.hosts, with the commit each serves."""
    ctx = _ctx(request)
    config = ctx.env.config
    hosts_file = config.resolve(config.fleet.hosts)
    if hosts_file is None:
        raise ApiProblem(404, "no fleet is configured: set `fleet: {hosts: hosts.yaml}` in the daemon's config "
                         "(the file `xgen-declare fleet status --hosts` reads) to use this endpoint")
    return ctx.scrub.json(await _asker(request).ask(hosts_file))
