"""The management HTTP API of `run --api` (docs/api.md): seed-compatible `/api/management/*`
endpoints that write manifests, Server-Sent Events and Prometheus metrics.

    app.py       FastAPI app + ApiContext (daemon, token, bus, metrics)
    routes.py    the endpoints
    declare.py   API-written manifests in DIR/api/NAME.yaml
    events.py    event bus fed by state transitions and reconcile passes
    metrics.py   /metrics
    security.py  bind/token/Host/body-size rules, error scrubbing
    server.py    uvicorn in a thread of the daemon
    shedding.py  header/body deadlines, connection cap, fd limit, errors logged once per interval
"""

from xgen_declare.api.app import create_app
from xgen_declare.api.context import ApiContext
from xgen_declare.api.server import ApiServer

__all__ = ["ApiContext", "ApiServer", "create_app"]
