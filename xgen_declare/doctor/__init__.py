"""`xgen-declare doctor`: why doesn't it work here? One finding per check, each ok / warn / fail with the
fix in one line.

    findings.py   Finding, and the seams a test replaces (DoctorHost: dev root, PATH, env, port holders,
                  device opener, state-dir write probe)
    gpus.py       GPUs and how they were found (NVML, nvidia-smi, KFD sysfs); device node access
    backends.py   each backend's binary, version, dialect, build (GPU backends, devices, RPC worker);
                  vLLM importable and its platform
    host.py       the port range, the state dir, inotify limits
    manifests.py  the config, the manifests (valid here?), the daemon and its models
    store.py      the model store, when a model has a hub source or the config a store: section

Every check reuses the code the other verbs run (inventory detection, the llama-server build probe,
config and manifest loading, the state store, status rows); none probes a second way.
"""

from __future__ import annotations

from xgen_declare.doctor.findings import DoctorHost, Finding
from xgen_declare.doctor.run import run_doctor

__all__ = ["DoctorHost", "Finding", "run_doctor"]
