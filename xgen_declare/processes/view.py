"""`ModelView`: one model as readers outside the control loop see it (the router on the server's event
loop, the API), a frozen value the supervisor publishes whole (`Supervisor.views`, one dict entry
replaced at a time), so no other thread ever reads a live `Proc`.

The supervisor publishes a model's view at every state change, when its drain flag is set or cleared
(before it counts the router's requests in flight: a request counted after that sees the flag and
waits), when a hold changes, and for every model at the end of each tick and each executed plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from xgen_declare.processes.supervised import Proc
from xgen_declare.states import State

SERVING = (State.READY, State.UNHEALTHY)


@dataclass(frozen=True)
class ModelView:
    name: str
    state: State
    port: int | None
    host: str
    held: bool
    draining: bool                  # the router sends it nothing new (a stop or rollout drains it)
    last_error: str | None
    manifest_error: str | None
    spec_hash: str | None
    download: dict | None = None    # its source's fetch while one runs (Record.download)

    @property
    def serving(self) -> bool:
        """New requests may go to it now."""
        return self.state in SERVING and bool(self.port) and not self.draining


def view_of(p: Proc) -> ModelView:
    r = p.rec
    return ModelView(name=r.name, state=p.state, port=r.port, host=r.host, held=r.held,
                     draining=p.drain_deadline is not None, last_error=r.last_error,
                     manifest_error=r.manifest_error, spec_hash=r.spec_hash,
                     download=dict(r.download) if r.download else None)
