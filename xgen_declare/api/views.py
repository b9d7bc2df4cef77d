"""What GET models shows of a model: `status -o json` + record facts, with secrets and paths kept out."""

from __future__ import annotations

import re

from ..state_store import Record
from .declare import API_DIR, relative
from .security import Scrubber

REDACTED = "***"
_SECRET_FLAG = re.compile(r"(token|secret|password|passwd|api[-_]?key|credential)", re.I)
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})


def redact_argv(argv: list[str]) -> list[str]:
    """The value after (or in) a flag that names a secret becomes ***: `--api-key X`, `--token=X`."""
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append(REDACTED)
            hide = False
        elif arg.startswith("-") and _SECRET_FLAG.search(arg.split("=", 1)[0]):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(arg)
                hide = True
        else:
            out.append(arg)
    return out


def advertised_endpoint(host: str | None, port: int | None, endpoint: str | None, advertise_host: str | None,
                        request_host: str) -> str | None:
    """A model bound to 0.0.0.0 / :: is reached at advertise_host (else the name the client used)."""
    if port is None:
        return endpoint
    if (host or "") in WILDCARD_HOSTS:
        name = advertise_host or request_host or "localhost"
        name = f"[{name}]" if ":" in name and not name.startswith("[") else name
        return f"http://{name}:{port}/v1"
    return endpoint


def model_json(row: dict, rec: Record | None, root: str, scrub: Scrubber, advertise_host: str | None,
               request_host: str) -> dict:
    file = relative(root, row.get("file"))
    out = {k: row[k] for k in ("name", "state", "backend", "pid", "port")}
    out["endpoint"] = advertised_endpoint(rec.host if rec else None, row["port"], row["endpoint"], advertise_host,
                                          request_host)
    out.update({k: row[k] for k in ("restarts", "uptime", "held")})
    out["last_error"] = scrub.text(row["last_error"])
    out["manifest_error"] = scrub.text(row["manifest_error"])
    out["file"] = file
    out["source"] = "api" if file and file.startswith(API_DIR + "/") else "file"
    if rec is not None:
        out["argv"] = redact_argv(list(rec.argv))
        out["gpus"] = rec.gpus
        out["started_at"] = rec.started_at if row["pid"] else None
        out["ready_at"] = rec.ready_at if row["state"] == "Ready" else None
    # predicted / actual memory: filled in once placement results are recorded with the model
    out["memory"] = getattr(rec, "memory", None) if rec is not None else None
    return out
