"""`xgen-declare.yaml`: optional host configuration, validated with the same care as manifests.

Found next to the manifests (DIR/xgen-declare.yaml, never read as a manifest) or given with
`--config FILE` / `XGEN_CONFIG`. Relative paths in it are relative to the file's directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator, \
    model_validator

from xgen_declare.errors import ConfigError, Problem, SourceError
from xgen_declare.backends.families import ALL_BACKENDS
from xgen_declare.readers.validation_errors import problems_from_validation
from xgen_declare.readers.selector import checked_labels
from xgen_declare.readers.yamlsource import load_documents
from xgen_declare.sources.spec import GitSpec, check_files_fit, check_path, check_ref, check_url, parse_interval

CONFIG_NAMES = ("xgen-declare.yaml", "xgen-declare.yml")

# vLLM's ROCm install docs (docs/getting_started/installation/gpu.rocm.inc.md, checked on main and the
# v0.14 docs) list: MI200s (gfx90a), MI300 (gfx942), MI350 (gfx950, ROCm >= 7.0), Radeon RX 7900
# (gfx1100/1101), Radeon RX 9000 (gfx1200/1201), Ryzen AI MAX / AI 300 (gfx1151/1150, ROCm >= 7.0.2).
# Older docs (v0.4-v0.6) listed only gfx90a, gfx942, gfx1100. The seed's own list was
# gfx1151, gfx1100, gfx1101, gfx1102, gfx90a, gfx942 (set `vllm_rocm_supported_gfx:` to use it instead).
DEFAULT_VLLM_ROCM_GFX = ["gfx90a", "gfx942", "gfx950", "gfx1100", "gfx1101", "gfx1150", "gfx1151", "gfx1200", "gfx1201"]


class Ports(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int = Field(8001, ge=1, le=65535)
    end: int = Field(8020, ge=1, le=65535)

    @model_validator(mode="after")
    def _order(self) -> "Ports":
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is below start ({self.start}); make end >= start")
        return self


class Reconciler(BaseModel):
    """`reconciler:` section: the daemon's timings (seconds, monotonic clock) and safety switches."""

    model_config = ConfigDict(extra="forbid")

    backoff_base: float = Field(10, gt=0, description="First delay before restarting a crashed model")
    backoff_max: float = Field(300, gt=0, description="Cap of the doubling crash delay")
    backoff_reset: float = Field(600, gt=0, description="Ready this long resets the crash delay")
    liveness_period: float = Field(10, gt=0, description="Seconds between liveness probes of a Ready model")
    liveness_threshold: int = Field(3, ge=1, description="Consecutive failed probes that restart a model")
    probe_timeout: float = Field(2, gt=0, description="HTTP timeout of one readiness/liveness probe")
    resync_interval: float = Field(30, gt=0, description="Full re-read of the manifests even without events")
    debounce: float = Field(0.1, ge=0, description="Quiet time after a file event before reconciling")
    prune_empty: bool = Field(False, description="Allow an empty/missing manifests dir to stop every model")
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=4096, description="Rotate a model's log past this size")
    log_backups: int = Field(3, ge=0, description="Rotated logs kept per model")


class Placement(BaseModel):
    """`placement:` section: the memory ledger and `n_gpu_layers: auto` (see docs/placement.md)."""

    model_config = ConfigDict(extra="forbid")

    margin_mib: int = Field(1024, ge=0, description="Memory kept free on each GPU (like llama.cpp --fit-target)")
    host_memory_mib: int | None = Field(None, ge=0, description="At most this much host memory (MiB) for the "
                                        "models xgen-declare runs (a host shared with other work); default: "
                                        "all that is available")
    record_buffers: bool = Field(True, description="Render llama-server with --log-verbosity 4 so its buffer "
                                 "sizes reach the log; the ledger then uses them for running models")


class Ray(BaseModel):
    """`ray:` section: this host's Ray node for models with `distributed: ray` (docs/ray.md). Whether it is
    a model's head or a worker comes from the manifest's `spec.ray` and this host's names."""

    model_config = ConfigDict(extra="forbid")

    binary: str | None = Field(None, description="The `ray` executable of the Python environment that has vLLM "
                               "(default: `ray` next to the vLLM executable, else on PATH)")
    node_ip_address: str | None = Field(None, description="This node's address in the cluster "
                                        "(--node-ip-address, and VLLM_HOST_IP for vLLM); default: Ray's guess")
    temp_dir: str | None = Field(None, description="Ray's --temp-dir on this host (relative to this file)")
    num_cpus: int | None = Field(None, ge=0, description="CPUs this node offers Ray (default: all)")
    extra_args: list[str] = Field(default_factory=list, description="More `ray start` arguments, one argv "
                                  "element each (e.g. --object-store-memory=100000000)")
    inventories: dict[str, str] = Field(default_factory=dict, description="Host name -> inventory file "
                                        "(`xgen-declare inventory -o yaml`) of the other nodes: the plan checks "
                                        "tensor_parallel_size against their GPUs (unknown without one)")
    ready_timeout: float = Field(60, gt=0, description="Seconds a Ray node may take to accept connections")
    stop_grace: float = Field(15, ge=0, description="Seconds between SIGTERM and SIGKILL (Ray drains on SIGTERM)")


class KubernetesImage(BaseModel):
    """One entry of `kubernetes: images:` in its long form (the short form is the image alone)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, description="Container image, e.g. a tag or digest of your registry")
    command: str | None = Field(None, min_length=1, description="The backend's executable inside the image "
                                "(argv[0]); default: /app/llama-server, vllm, python3 by family")
    dialect: Literal["new", "old"] = Field("new", description="llama-server flag dialect of the image's build")


class ModelVolume(BaseModel):
    """`kubernetes: model_volume:`: where the pods find the model files the manifests name by host path."""

    model_config = ConfigDict(extra="forbid")

    local_dir: str = Field(description="Absolute directory the manifests' model paths lie under, e.g. /app/models")
    mount_path: str | None = Field(None, description="Where that directory appears in the container "
                                   "(default: local_dir)")
    claim: str | None = Field(None, description="PersistentVolumeClaim holding the files")
    host_path: str | None = Field(None, description="Or: the directory on every GPU node holding them")
    read_only: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> "ModelVolume":
        if (self.claim is None) == (self.host_path is None):
            raise ValueError("give exactly one of claim (a PersistentVolumeClaim) or host_path (a node directory)")
        for name in ("local_dir", "mount_path", "host_path"):
            value = getattr(self, name)
            if value is not None and not value.startswith("/"):
                raise ValueError(f"{name} must be an absolute path, got {value!r}")
        return self


class SecretKeyRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Secret name")
    key: str = Field(min_length=1, description="Key inside the Secret")


class Kubernetes(BaseModel):
    """`kubernetes:` section: what `export kubernetes` needs to know about the cluster (docs/kubernetes.md)."""

    model_config = ConfigDict(extra="forbid")

    namespace: str | None = Field(None, description="Namespace of every object (and of kustomization.yaml)")
    images: dict[str, str | KubernetesImage] = Field(
        default_factory=dict, description="Image per backend name (llama-server-cuda) or family (llama-server, "
        "llama-cpp-python, vllm); a backend without one cannot be exported")
    model_volume: ModelVolume | None = None
    gpu_vendor: Literal["nvidia", "amd"] | None = Field(
        None, description="GPU vendor of llama-server-vulkan models whose manifest does not name one")
    max_gpus_per_node: int = Field(8, ge=1, description="A model needing more GPUs than this spans nodes, "
                                   "which the export cannot express yet")
    secret_env: dict[str, SecretKeyRef] = Field(
        default_factory=dict, description="Env vars every model gets from a Secret, e.g. HF_TOKEN")

    @field_validator("images")
    @classmethod
    def _known_image_keys(cls, images: dict) -> dict:
        unknown = sorted(set(images) - set(ALL_BACKENDS) - {"llama-server", "llama-cpp-python", "vllm"})
        if unknown:
            raise ValueError(f"unknown backend(s) {', '.join(unknown)}; use a backend name "
                             f"({', '.join(ALL_BACKENDS)}) or a family (llama-server, llama-cpp-python, vllm)")
        return images


class Api(BaseModel):
    """`api:` section: the management HTTP API of `run --api` (see docs/api.md for the threat model)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", min_length=1, description="Address the API binds; any address other than "
                      "loopback needs a token (token_file or XGEN_API_TOKEN)")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on")
    token_file: str | None = Field(None, description="File holding the bearer token (relative to this file); "
                                   "when a token is set every write endpoint needs `Authorization: Bearer TOKEN`")
    allowed_hosts: list[str] = Field(default_factory=list, description="Extra names accepted in the Host header "
                                     "(localhost, 127.0.0.1, ::1, host and advertise_host always are)")
    allow_exec_fields: bool = Field(False, description="Let API requests set env, extra_args, binary and "
                                    "trust_remote_code (they amount to running code, e.g. LD_PRELOAD)")
    allow_network_bind: bool = Field(False, description="Let API requests make a server listen beyond loopback: "
                                     "a non-loopback host, an RPC worker's bind, distributed: ray")
    allowed_sources: list[str] = Field(default_factory=list, description="Hub and URL sources an API request may "
                                       "name (shell patterns matched against the source as written, e.g. "
                                       "hf://Qwen/*, https://models.example.com/*); default none, so a token holder "
                                       "cannot fill the disk with downloads of its choosing")
    advertise_host: str | None = Field(None, description="Host name put in `endpoint` for models that bind "
                                       "0.0.0.0 / ::")
    max_connections: int = Field(256, ge=1, le=100000, description="Open connections the API keeps; beyond, the "
                                 "one waiting longest for its request headers is closed, or the new one gets 503 "
                                 "when all are busy. Kept below the open-files limit (ulimit -n), which the daemon "
                                 "raises toward the hard limit at start")
    header_timeout: float = Field(10, gt=0, le=3600, description="Seconds a client has to send a request's line "
                                  "and headers (after connecting, or after the previous answer); then 408 and close")
    body_timeout: float = Field(60, gt=0, le=3600, description="Seconds a client has to send a request's body "
                                "after its headers; then 408 and close")


class Rpc(BaseModel):
    """`rpc:` section: llama.cpp RPC workers (docs/rpc.md). Every host runs its own daemon on the same
    manifests; a worker's `host` selects the daemon that starts it."""

    model_config = ConfigDict(extra="forbid")

    worker_binary: str | None = Field(None, description="The RPC worker executable (default: ggml-rpc-server or "
                                      "rpc-server next to llama-server, then on PATH)")
    this_host: list[str] = Field(default_factory=list, description="Extra names of this host (besides its "
                                 "hostname, 127.0.0.1 and localhost); workers with these hosts start here. "
                                 "XGEN_DECLARE_HOST (comma-separated) adds more per host")
    hosts: list[str] = Field(default_factory=list, description="Hosts whose xgen-declare runs on these manifests; "
                             "a worker on a host listed nowhere gets a warning (nothing would start it)")
    ready_timeout: float = Field(30, gt=0, description="Seconds a local worker may take to accept connections")


class Router(BaseModel):
    """`router:` section: limits of the OpenAI-compatible /v1 router (docs/router.md)."""

    model_config = ConfigDict(extra="forbid")

    queue_limit: int = Field(64, ge=1, description="Requests that may wait per model while it starts; beyond: 429")
    max_body_mib: int = Field(32, ge=1, le=1024, description="Largest /v1 request body, in MiB; beyond: 413")
    upstream_read_timeout: float = Field(600, gt=0, description="Seconds the router waits for a backend's next "
                                         "bytes (a long generation without streaming must fit)")
    connections_per_model: int = Field(64, ge=1, le=10000, description="Requests the router forwards to one model "
                                       "at once, over that model's own connection pool (a busy model cannot take "
                                       "the others' connections); beyond: 429")


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_min_free(value: str | int) -> tuple[float | None, int]:
    """(fraction of the filesystem, None) for "10%", (None, bytes) for "20GiB" / "500MB" / 123; ValueError
    naming the forms otherwise."""
    if isinstance(value, bool):
        raise ValueError("must be a percentage or a size; write e.g. \"10%\" or \"20GiB\"")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must be >= 0; write e.g. \"10%\" or \"20GiB\"")
        return None, value
    text = str(value).strip().lower().replace(" ", "")
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            pct = -1.0
        if not 0 <= pct < 100:
            raise ValueError("a percentage must be from 0 to below 100; write e.g. \"10%\"")
        return pct / 100, 0
    num = text.rstrip("kmgtib")
    unit = text[len(num):]
    try:
        amount = float(num)
    except ValueError:
        amount = -1.0
    if unit not in _SIZE_UNITS or amount < 0:
        raise ValueError("must be a percentage of the filesystem or a size; write e.g. \"10%\", \"20GiB\" or "
                         "\"500MB\"")
    return None, int(amount * _SIZE_UNITS[unit])


class Store(BaseModel):
    """`store:` section: the one model store, shared by every model (README "Model sources")."""

    model_config = ConfigDict(extra="forbid")

    dir: str | None = Field(None, description="Where fetched models live, in huggingface_hub's cache layout "
                            "(relative to this file). Default: the HuggingFace cache (HF_HUB_CACHE, else "
                            "~/.cache/huggingface/hub), so an existing cache is reused")
    min_free: StrictStr | StrictInt = Field("10%", description='Free space a fetch keeps on the store\'s filesystem: "10%" '
                                'of it, or a size ("20GiB", "500MB", bytes)')
    offline: bool = Field(False, description="Fetch nothing: use only what the store holds (HF_HUB_OFFLINE=1 "
                          "does the same)")

    @field_validator("min_free")
    @classmethod
    def _min_free(cls, value: str | int) -> str | int:
        parse_min_free(value)
        return value

    def min_free_bytes(self, filesystem_bytes: int) -> int:
        fraction, size = parse_min_free(self.min_free)
        return int(filesystem_bytes * fraction) if fraction is not None else size


class SourceVerify(BaseModel):
    """`source: verify:`: which signatures a commit needs before it is applied."""

    model_config = ConfigDict(extra="forbid")

    allowed_signers: str = Field(min_length=1, description="ssh-keygen ALLOWED SIGNERS file (relative to this "
                                 "file): only commits signed by one of its keys are applied")


def _source_check(check, value, field: str):
    try:
        return check(value, field)
    except SourceError as exc:
        raise ValueError(f"{exc.message}; {exc.hint}" if exc.hint else exc.message) from None  # "; " = hint


class Source(BaseModel):
    """`source:` section: manifests from a git repository instead of a local directory (sources/)."""

    model_config = ConfigDict(extra="forbid")

    git: str = Field(min_length=1, description="Repository URL: https://, http://, ssh:// or file:// "
                     "(e.g. https://git.example.org/ops/llm.git)")
    ref: str = Field("HEAD", description="Branch, tag or full commit id (a commit id pins); default: the "
                     "remote's HEAD")
    path: str = Field("", description="Directory of the manifests inside the repository (e.g. manifests)")
    interval: float = Field(30.0, description="Seconds (or 30s, 5m, 1h) between two fetches")
    ssh_key_file: str | None = Field(None, description="Private key for ssh:// (relative to this file)")
    known_hosts: str | None = Field(None, description="known_hosts file for ssh:// (host keys are checked)")
    token_file: str | None = Field(None, description="File holding an access token for https:// (sent as "
                                   "HTTP Basic with token_user; never on a command line)")
    token_user: str = Field("x-access-token", min_length=1, description="User name sent with the token")
    verify: SourceVerify | None = None
    webhook_secret_file: str | None = Field(None, description="File holding the secret of the git host's webhooks "
                                            "(GitHub/Gitea HMAC key, GitLab token) for POST "
                                            "/api/management/source/webhook (relative to this file)")
    timeout: float = Field(120, gt=0, le=3600, description="Seconds one git command may take")
    max_tree_mib: int = Field(64, ge=1, le=4096, description="Largest commit tree (all files) accepted, in MiB")
    allow_force_push: bool = Field(True, description="Follow the ref when it moves to a commit that does not "
                                   "descend from the current one (a force push; default: followed). false: "
                                   "refused, the current commit stays (an old signed commit cannot be replayed)")

    @field_validator("git")
    @classmethod
    def _git_url(cls, v: str) -> str:
        return _source_check(check_url, v.removeprefix("git+"), "source.git")

    @field_validator("ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        return _source_check(check_ref, v, "source.ref")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _source_check(check_path, v, "source.path")

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, v):
        return _source_check(parse_interval, v, "source.interval")

    @model_validator(mode="after")
    def _fits_the_scheme(self) -> "Source":
        _source_check(lambda url, _field: check_files_fit(url, self.token_file, self.ssh_key_file, self.known_hosts),
                      self.git, "source")
        return self


class HostSection(BaseModel):
    """`host:` section: this host's own labels for `spec.hosts` selectors (inventory/labels.py detects
    hostname, arch and gpu.*; these are added, and replace a detected label of the same key)."""

    model_config = ConfigDict(extra="forbid")

    labels: dict[str, str] = Field(default_factory=dict, description="Label -> value, e.g. {site: lab-2, "
                                   "tier: prod}")

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, labels):
        return checked_labels(labels)


class Fleet(BaseModel):
    """`fleet:` section: the hosts the dashboard's Fleet view asks (the same file as `fleet status --hosts`)."""

    model_config = ConfigDict(extra="forbid")

    hosts: str | None = Field(None, min_length=1, description="hosts.yaml of `xgen-declare fleet status` "
                              "(relative to this file): {timeout, hosts: [{name, url, token_file}]}. With it, GET "
                              "/api/management/fleet and the dashboard's Fleet view ask every host's API")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ports: Ports = Field(default_factory=Ports)
    binaries: dict[str, str] = Field(default_factory=dict, description="Executable per backend name")
    python: str | None = Field(None, description="Interpreter for llama-cpp-python (default: this Python)")
    templates_dir: str | None = Field(None, description="Overrides shipped templates, per file")
    llama_cache_dir: str | None = Field(None, description="Where llama-server keeps the GGUF files it downloads "
                                        "for models whose model_path is a HuggingFace repository (rendered as "
                                        "LLAMA_CACHE; relative to this file). Default: llama.cpp's own")
    state_dir: str | None = None
    vllm_rocm_supported_gfx: list[str] = Field(default_factory=lambda: list(DEFAULT_VLLM_ROCM_GFX))
    ray: Ray = Field(default_factory=Ray)
    reconciler: Reconciler = Field(default_factory=Reconciler)
    placement: Placement = Field(default_factory=Placement)
    api: Api = Field(default_factory=Api)
    router: Router = Field(default_factory=Router)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    rpc: Rpc = Field(default_factory=Rpc)
    store: Store = Field(default_factory=Store)
    source: Source | None = Field(None, description="Manifests from a git repository (`source: {git: URL}`)")
    host: HostSection = Field(default_factory=HostSection)
    fleet: Fleet = Field(default_factory=Fleet)

    # Not from the file: where it was read from (None = defaults).
    file: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _known_backends(self) -> "Config":
        unknown = sorted(set(self.binaries) - set(ALL_BACKENDS))
        if unknown:
            raise ValueError(f"binaries: unknown backend(s) {', '.join(unknown)}; use one of {', '.join(ALL_BACKENDS)}")
        return self

    def resolve(self, path: str | None) -> str | None:
        """A path from the file, made absolute against the file's directory."""
        if path is None or self.file is None or os.path.isabs(path):
            return path
        return str((Path(self.file).parent / path).resolve())

    def git_spec(self) -> GitSpec | None:
        """The `source:` section as a GitSpec, its files made absolute; None without one."""
        s = self.source
        if s is None:
            return None
        return GitSpec(url=s.git, ref=s.ref, path=s.path, interval=s.interval,
                       ssh_key_file=self.resolve(s.ssh_key_file), known_hosts=self.resolve(s.known_hosts),
                       token_file=self.resolve(s.token_file), token_user=s.token_user,
                       allowed_signers=self.resolve(s.verify.allowed_signers) if s.verify else None,
                       timeout=s.timeout, max_tree_bytes=s.max_tree_mib * 1024 * 1024,
                       allow_force_push=s.allow_force_push,
                       webhook_secret_file=self.resolve(s.webhook_secret_file))


def find_config(explicit: str | None, manifest_paths: list[str]) -> Path | None:
    if explicit:
        return Path(explicit)
    for p in manifest_paths:
        d = Path(p)
        if d.is_dir():
            for name in CONFIG_NAMES:
                if os.path.lexists(d / name):  # a FIFO or a device too: the bounded read refuses it (exit 1)
                    return d / name
    return None


def load_config(explicit: str | None = None, manifest_paths: list[str] | None = None) -> Config:
    path = find_config(explicit, manifest_paths or [])
    if path is None:
        return Config()
    docs, problems = load_documents(path, what="the config")
    if problems:
        raise ConfigError(problems)
    if len(docs) > 1:
        raise ConfigError([Problem(str(path), docs[1].line, "", "the config holds more than one YAML document",
                                   "keep a single document")])
    data = docs[0].data if docs else {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), docs[0].line, "", "the config must be a mapping",
                                   "write keys such as ports:, binaries:, state_dir:")])
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, docs[0], Config)) from None
    cfg.file = str(path)
    return cfg
