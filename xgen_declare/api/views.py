"""What GET models shows of a model: `status -o json` + record facts, with secrets and paths kept out."""

from __future__ import annotations

import re

from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.state_store import Record
from xgen_declare.api.declare import API_DIR, relative
from xgen_declare.http.security import Scrubber
from xgen_declare.processes.spec import REDACTED
from xgen_declare.reconciler.client import StatusRow
from xgen_declare.states import State

_SECRET_FLAG = re.compile(r"(token|secret|password|passwd|api[-_]?key|credential)", re.I)
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})
SHOWN = 64


def shown(text: str, limit: int = SHOWN) -> str:
    """A client's string quoted in a message: repr, cut to `limit` characters (it may be megabytes)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text)} characters)"


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


def provenance_json(prov: Provenance | None, root: str) -> dict | None:
    """The record's provenance with the file relative to the manifests dir (no host paths)."""
    if prov is None:
        return None
    return {**prov.to_json(), "file": relative(root, prov.file)}


def memory_json(entry, rec: Record | None) -> dict | None:
    """The ledger's view of the model (bytes per device: GPU0..., host) and what its log measured."""
    measured = getattr(rec, "buffers_mib", None) if rec is not None else None
    if entry is None and not measured:
        return None
    out: dict = {"measured_mib": measured}
    if entry is not None:
        out.update({"source": entry.source, "bytes": dict(entry.use), "blocked": entry.blocked,
                    "n_gpu_layers": entry.n_gpu_layers, "tensor_split": entry.tensor_split,
                    "n_cpu_moe": entry.n_cpu_moe, "cpu_moe_bytes": entry.cpu_moe_bytes})
    return out


def model_json(row: StatusRow, rec: Record | None, root: str, scrub: Scrubber, advertise_host: str | None,
               request_host: str, ledger=None) -> dict:
    file = relative(root, row.file)
    out = {"name": row.name, "state": row.state.value, "backend": row.backend, "pid": row.pid, "port": row.port}
    out["endpoint"] = advertised_endpoint(rec.host if rec else None, row.port, row.endpoint, advertise_host,
                                          request_host)
    out.update({"restarts": row.restarts, "uptime": row.uptime, "held": row.held})
    out["last_error"] = scrub.text(row.last_error)
    out["manifest_error"] = scrub.text(row.manifest_error)
    out["file"] = file
    out["source"] = "api" if file and file.startswith(API_DIR + "/") else "file"
    out["spec_hash"] = row.spec_hash
    out["provenance"] = provenance_json(row.provenance, root)
    out["last_good_spec_hash"] = row.last_good_spec_hash
    out["rollout_error"] = scrub.text(row.rollout_error)
    if row.download is not None:  # only while its source is fetched: done, total (bytes), rate (bytes/s)
        out["download"] = {**row.download, "text": scrub.text(row.download_text)}
    if rec is not None:
        out["argv"] = redact_argv(list(rec.argv))
        out["gpus"] = rec.gpus
        out["started_at"] = rec.started_at if row.pid else None
        out["ready_at"] = rec.ready_at if row.state == State.READY else None
    entry = ledger.entry(row.name) if ledger is not None else None
    out["memory"] = memory_json(entry, rec)
    return out
