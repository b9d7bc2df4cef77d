"""llama.cpp RPC groups, the rendering side: which of a model's `rpc_workers` run on this host, their
argv (templates/rpc-worker.j2), warnings for `validate`/`plan`. The process side (start the workers
before llama-server, stop them after it, notice one that dies) is processes/rpc_workers.py.

Which host runs which worker: every host runs its own daemon on the same manifests; a worker whose
`host` is one of this host's names (`host_names`: hostname, 127.0.0.1, localhost, `rpc.this_host`,
XGEN_DECLARE_HOST) is started here. There is no coordinator: a worker host that no daemon claims
(`rpc.hosts`) gets a warning in `validate` and `plan`. Workers on hosts that do not run the model's
llama-server become entries of their own (rpc_remote.py).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from typing import Callable

from xgen_declare.config import Config
from xgen_declare.errors import Problem
from xgen_declare.manifests.fields import LOOPBACK_HOSTS, RpcWorker
from xgen_declare.manifests.request import ModelLoadRequest
from xgen_declare.processes.rpc_workers import WorkerSpec

WORKER_NAMES = ("ggml-rpc-server", "rpc-server")  # newer name first
HOST_ENV = "XGEN_DECLARE_HOST"
WORKER_TEMPLATE = "rpc-worker.j2"
ArgvOf = Callable[[str, dict, str], list[str]]  # Renderer.argv(template, context, field)




# ---- pure: names, binaries, rendering, warnings ------------------------------------------------

def host_names(config: Config, environ: dict[str, str] | None = None) -> frozenset[str]:
    """The names workers on this host may use in `host:`."""
    environ = os.environ if environ is None else environ
    names = set(LOOPBACK_HOSTS) | set(config.rpc.this_host)
    names.update(n.strip() for n in environ.get(HOST_ENV, "").split(",") if n.strip())
    try:
        hostname = socket.gethostname()
    except OSError:
        hostname = ""
    if hostname:
        names.update({hostname, hostname.split(".")[0]})
    return frozenset(names)


def local_workers(spec: ModelLoadRequest, names: frozenset[str]) -> list[RpcWorker]:
    return [w for w in spec.rpc_workers if w.host in names]


def worker_binary(config: Config, server_binary: str) -> str:
    """`rpc.worker_binary`, else ggml-rpc-server / rpc-server next to llama-server, else on PATH."""
    if config.rpc.worker_binary:
        return config.resolve(config.rpc.worker_binary) or config.rpc.worker_binary
    found = shutil.which(server_binary)
    if found:
        here = os.path.dirname(os.path.realpath(found))
        for name in WORKER_NAMES:
            candidate = os.path.join(here, name)
            if os.access(candidate, os.X_OK):
                return candidate
    for name in WORKER_NAMES:
        if shutil.which(name):
            return name
    return WORKER_NAMES[0]


def render_workers(argv_of: ArgvOf, name: str, spec: ModelLoadRequest, binary: str, config: Config,
                   names: frozenset[str]) -> list[WorkerSpec]:
    """The local workers of `spec`, rendered from templates/rpc-worker.j2 (`argv_of`: Renderer.argv)."""
    return [render_worker(argv_of, name, w, binary, config) for w in local_workers(spec, names)]


def render_worker(argv_of: ArgvOf, name: str, w: RpcWorker, binary: str, config: Config) -> WorkerSpec:
    argv = argv_of(WORKER_TEMPLATE, {"name": name, "binary": binary, "worker": w.model_dump()}, "spec.rpc_workers")
    return WorkerSpec(w.host, w.port, tuple(argv), config.rpc.ready_timeout)


def rpc_warnings(spec: ModelLoadRequest, config: Config, names: frozenset[str]) -> list[tuple[int, str]]:
    """(index in rpc_workers, warning): workers reachable from the network, hosts no daemon claims."""
    out = []
    claimed = names | set(config.rpc.hosts)
    for i, w in enumerate(spec.rpc_workers):
        bind = w.bind or "127.0.0.1"
        if not _loopback(bind):
            out.append((i, f"RPC worker {w.endpoint} binds {bind}: ggml-rpc-server has no authentication, anyone "
                           "who reaches that port can use the host's devices; keep it on a trusted network"))
        if w.host not in claimed:
            out.append((i, f"no xgen-declare claims RPC worker host {w.host} (not this host's name, not in "
                           "rpc.hosts of xgen-declare.yaml): nothing will start that worker; run xgen-declare "
                           "there and list the host in rpc.hosts, or start ggml-rpc-server there yourself"))
    return out


def rpc_problems(decl, config: Config | None, names: frozenset[str] | None = None) -> list[Problem]:
    """`rpc_warnings` of one ModelDecl as warnings with file and line, for `validate`."""
    config = config or Config()
    names = host_names(config) if names is None else names
    return [Problem(decl.file, decl.line_of("rpc_workers", i), f"spec.rpc_workers[{i}]", text, severity="warning")
            for i, text in rpc_warnings(decl.spec, config, names)]


def _loopback(address: str) -> bool:
    try:
        return address in LOOPBACK_HOSTS or ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
