"""`ModelLoadRequest`: the validated spec of one model, plus the manifest envelope around it.

Field names follow the seed's ModelLoadRequest and the manifest contract; never rename them.
Cross-field rules that need no host facts live here; rules that need the host (is this backend
available, does GPU 3 exist) live in the inventory/selection code and run only with an inventory.

Fields that only one backend family understands are an **error** when set to a non-default value
for the other family (a silently ignored field is a lie about what runs). Explicit default values
are accepted, so seed clients that send every field still validate.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema, field_validator, \
    model_validator

from xgen_declare.backends.profile import LLAMA, engine_of, profile_of
from xgen_declare.backends.modelpath import HF_FILE_RE, gguf_problems
from xgen_declare.manifests.fields import (ArgvHost, ArgvPath, HostSelector,
                                           NoNewline, Override, RayCluster, RolloutSpec, RpcWorker, _ray_problems,
                                           _reject_control, _rpc_problems, not_a_flag, parse_duration)
from xgen_declare.manifests.source import Source, SourceError, implied_source, parse_source
from xgen_declare.names import NAME_RE  # the one rule for model names (names.py)
from xgen_declare.readers.validation_errors import CrossFieldErrors

SourceValue = Annotated[Source, PlainValidator(parse_source), PlainSerializer(lambda s: s.to_json()),
                        WithJsonSchema({"anyOf": [
                            {"type": "string", "minLength": 1},
                            {"type": "object", "additionalProperties": False, "required": ["url"],
                             "properties": {"url": {"type": "string"},
                                            "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                                            "token_file": {"type": "string", "minLength": 1}}}]})]


BackendName = Literal[
    "auto",
    "llama-server-vulkan", "llama-server-cuda", "llama-server-rocm", "llama-server-cpu",
    "llama-cpp-python",
    "vllm-cuda", "vllm-rocm", "vllm-cpu",
]
CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]

# Fields that only one family understands, with their defaults (a default value is not "set").
LLAMA_ONLY = {
    "n_gpu_layers": -1, "main_gpu": 0, "split_mode": "layer", "tensor_split": [],
    "ctx_size": None, "parallel": None, "cache_type_k": "f16", "cache_type_v": "f16",
    "flash_attn": "auto", "threads": None, "pooling": None, "mlock": False, "n_cpu_moe": 0,
}
VLLM_ONLY = {
    "tensor_parallel_size": 1, "pipeline_parallel_size": 1, "gpu_memory_utilization": 0.9,
    "max_model_len": None, "trust_remote_code": False,
}
# What to use instead, for the hint.
_EQUIVALENT = {"max_model_len": "ctx_size", "ctx_size": "max_model_len",
               "tensor_parallel_size": "gpus + tensor_split", "tensor_split": "tensor_parallel_size"}

class ModelLoadRequest(BaseModel):
    """The `spec` of a Model manifest."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)

    model_path: ArgvPath | None = Field(None, description="A .gguf file, a local HuggingFace directory, a HuggingFace id "
                                  "org/model (vLLM), or a HuggingFace repository of GGUF files (org/name-GGUF or "
                                  "org/name:QUANT); a HuggingFace id or repository is fetched into the model store "
                                  "before the backend starts. Relative .gguf paths and paths "
                                  "starting with ./ or ../ are relative to the manifest file's directory. Give model_path or source")
    source: SourceValue | None = Field(None, description="Where the model's files come from (README \"Model "
                                       "sources\"): hf://ORG/REPO[@REVISION], hf://ORG/REPO-GGUF[@REVISION]/FILE.gguf, "
                                       "hf://ORG/REPO-GGUF[@REVISION]:QUANT, {url: https://.../x.gguf, sha256: HEX} "
                                       "or a local path. Give model_path or source")
    hf_file: NoNewline | None = Field(None, description="With a repository of GGUF files as model_path: the file to "
                                      "download (llama.cpp's --hf-file), e.g. model-Q4_K_M.gguf")
    backend: BackendName = Field("auto", description="Backend to run; auto picks by the host's GPUs and binaries")
    binary: Annotated[NoNewline, not_a_flag("give the executable's path")] | None = Field(
        None, description="Per-model override of the backend's executable")
    server_type: Literal["llm", "embedding"] = "llm"
    alias: list[Annotated[str, Field(min_length=1, max_length=256),
                          not_a_flag("start each alias with a letter or digit")]] = Field(
        default_factory=list, description="Extra names clients may use for this model")
    enabled: bool = Field(True, description="false = declared but kept stopped")
    hosts: HostSelector | None = Field(
        None, description="The hosts this model is for: a label selector with Kubernetes semantics "
        "({matchLabels: {gpu.vendor: amd}, matchExpressions: [{key: gpu.memory_gib, operator: Gt, values: "
        '["40"]}]}) over each host\'s labels (README "Many hosts"); omitted = every host')
    overrides: list[Override] = Field(
        default_factory=list, max_length=64, description="Per-host values: [{hosts: SELECTOR, set: {n_gpu_layers: 20}}], applied "
        "in order on the hosts each selector picks; two that set one field differently on one host are an error")
    activation: Literal["always", "on-demand"] = Field(
        "always", description="always = kept running; on-demand = started by the router (`run --api`) on the first "
        "request for it, stopped again after idle_timeout (state Idle while stopped)")
    idle_timeout: float | str | None = Field(
        None, description='on-demand only: stop after this long without requests ("15m", "30s", "1h", or seconds); '
        "unset = keep it running until its memory is needed for another model")

    # llama.cpp family
    n_gpu_layers: int | Literal["all", "auto"] = Field(
        -1, description='-1 or "all" = every layer, 0 = CPU only, N layers, or "auto"')
    main_gpu: int = Field(0, ge=0, description="A position in `gpus` (the backend sees only those GPUs)")
    split_mode: Literal["none", "layer", "row", "tensor"] = "layer"
    tensor_split: list[float] | Literal["auto"] = Field(
        default_factory=list, description='One proportion per entry of `gpus`, or "auto": xgen-declare chooses a '
        "split that fits each GPU's usable memory at plan time (from the GGUF header) and renders it explicitly")
    ctx_size: int | None = Field(None, ge=0, description="Context size in tokens (0 = the model's own)")
    parallel: int | None = Field(None, ge=1, description="llama-server slots")
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    flash_attn: Literal["on", "off", "auto"] = "auto"
    threads: int | None = Field(None, ge=1, description="CPU threads for CPU layers")
    n_cpu_moe: int | Literal["auto", "all"] = Field(
        0, description='llama-server --n-cpu-moe: keep the MoE expert weights of the first N layers in host '
        'memory (0 = off); "auto" = the fewest layers that let the model fit its GPU(s), chosen at plan time '
        'from the GGUF header and rendered as a number; "all" = every layer\'s (rendered as --cpu-moe)')
    pooling: Literal["none", "mean", "cls", "last", "rank"] | None = Field(
        None, description="Embeddings pooling; default mean for server_type embedding")
    mlock: bool = False

    # GPUs (both families)
    gpus: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="Host GPU indices as listed by `xgen-declare gpus`; omitted = all")

    # vLLM family
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = Field(None, ge=1)
    trust_remote_code: bool = False
    # vLLM across hosts (docs/ray.md)
    nodes: int = Field(1, ge=1, description="Hosts the model spans (with distributed: ray): one pipeline stage "
                       "per node, tensor_parallel_size GPUs on each")
    distributed: Literal["ray"] | None = Field(None, description="ray = run the model over a Ray cluster of "
                                               "`nodes` hosts named in `ray`")
    ray: RayCluster | None = Field(None, description="The Ray cluster's hosts and ports (distributed: ray)")

    # process
    port: int | None = Field(None, ge=1, le=65535, description="Fixed port; otherwise assigned from the port range")
    host: ArgvHost = Field("127.0.0.1", description="Address the backend binds (loopback by default)")
    api_key_file: ArgvPath | None = Field(None, description="File holding the API key (llama-server: "
                                          "--api-key-file FILE; vLLM: read into VLLM_API_KEY at start)")
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(default_factory=dict)
    extra_args: list[str] = Field(default_factory=list, description="Each item is exactly one argv element")
    ready_timeout: float = Field(600, gt=0, description="Seconds to wait for the backend to become ready")
    stop_grace: float = Field(10, ge=0, description="Seconds between SIGTERM and SIGKILL")
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="strategy (auto|surge|recreate) and "
                                 "drain_timeout (60s) of a change to the running model")
    rpc_workers: list[RpcWorker] = Field(
        default_factory=list, description="llama.cpp RPC workers (llama-server backends): llama-server gets --rpc "
        "with all of them; the local ones are started first and supervised with it as one group (docs/rpc.md)")
    rpc_server_host: ArgvHost | None = Field(
        None, description="With workers on other hosts: the host whose daemon runs llama-server (and its local "
        "workers); the daemons of the other hosts run only their own workers of this model")

    @field_validator("model_path", "binary", "host", "api_key_file")
    @classmethod
    def _single_line(cls, value: str | None) -> str | None:
        return None if value is None else _reject_control(value, "value")

    @field_validator("hf_file")
    @classmethod
    def _hf_file(cls, value: str | None) -> str | None:
        if value is not None and not HF_FILE_RE.match(value):
            raise ValueError("must be a .gguf file inside the repository (no leading '/' or '-', no '..')")
        return value

    @field_validator("alias", "extra_args")
    @classmethod
    def _single_line_items(cls, values: list[str]) -> list[str]:
        for v in values:
            _reject_control(v, "each item")
        return values

    @field_validator("alias")
    @classmethod
    def _alias_no_comma(cls, values: list[str]) -> list[str]:
        if any("," in v for v in values):
            raise ValueError("aliases must not contain ',' (llama-server reads --alias as a comma-separated list)")
        return values

    @field_validator("env")
    @classmethod
    def _env_values(cls, values: dict[str, str]) -> dict[str, str]:
        for v in values.values():
            if "\x00" in v:
                raise ValueError("environment values must not contain NUL bytes")
        return values

    @field_validator("idle_timeout")
    @classmethod
    def _idle_timeout(cls, value: float | str | None) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("n_gpu_layers")
    @classmethod
    def _ngl(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < -1:
            raise ValueError('must be -1 or "all" (every layer), 0 (CPU only), a positive layer count, or "auto"')
        return value

    @field_validator("n_cpu_moe", mode="before")
    @classmethod
    def _cpu_moe(cls, value: object) -> object:
        if value in ("auto", "all") or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError("must be auto, all or a layer count >= 0 (0 = off), e.g. n_cpu_moe: auto, "
                         "n_cpu_moe: all or n_cpu_moe: 12")

    @field_validator("gpu_memory_utilization")
    @classmethod
    def _gmu(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError("must be greater than 0 and at most 1 (a fraction of each GPU's memory, e.g. 0.9)")
        return value

    @field_validator("tensor_split")
    @classmethod
    def _split(cls, values: list[float] | str) -> list[float] | str:
        if values == "auto":
            return values
        if any(v < 0 for v in values):
            raise ValueError("entries must be >= 0 (proportions per GPU, e.g. [3.0, 1.0])")
        if values and not any(v > 0 for v in values):
            raise ValueError("at least one entry must be greater than 0")
        return values

    @model_validator(mode="after")
    def _cross_field(self) -> "ModelLoadRequest":
        problems = self._model_path_from_source()
        if problems or self.model_path is None:
            raise CrossFieldErrors(problems)
        if self.gpus is not None:
            if len(set(self.gpus)) != len(self.gpus):
                problems.append(("gpus", "lists a GPU more than once"))
            n = len(self.gpus)
            if self.tensor_split and self.tensor_split != "auto" and len(self.tensor_split) != n:
                problems.append(("tensor_split", f"has {len(self.tensor_split)} entries but gpus lists {n} GPU(s); "
                                 "give one proportion per entry of gpus"))
            if self.main_gpu >= max(n, 1):
                problems.append(("main_gpu", f"is {self.main_gpu} but gpus lists {n} GPU(s); main_gpu is a position "
                                 f"in gpus, so use 0..{max(n - 1, 0)}"))
            tp_pp = self.tensor_parallel_size * self.pipeline_parallel_size
            if tp_pp > n and self.distributed is None:
                problems.append(("tensor_parallel_size", f"tensor_parallel_size x pipeline_parallel_size = {tp_pp} "
                                 f"needs {tp_pp} GPUs but gpus lists {n}; list more GPUs or lower the sizes"))
        engine = engine_of(self.model_path, self.backend, self.hf_file)
        problems.extend(gguf_problems(self, engine))
        foreign = VLLM_ONLY if engine == LLAMA else LLAMA_ONLY
        for name, default in foreign.items():
            if getattr(self, name) != default:
                other = "vLLM" if engine == LLAMA else "llama.cpp"
                instead = f", or use {_EQUIVALENT[name]} for this backend" if name in _EQUIVALENT else ""
                problems.append((name, f"only applies to {other} backends and would be ignored here; "
                                 f"remove it{instead}"))
        if self.idle_timeout is not None and self.activation != "on-demand":
            problems.append(("idle_timeout", "only applies to activation: on-demand (an always model is never "
                             "stopped for being idle); remove it or set activation: on-demand"))
        problems.extend(_cpu_moe_problems(self, engine))
        problems.extend(_rpc_problems(self, engine))
        problems.extend(_ray_problems(self, engine))
        if self.hosts is not None and (self.distributed is not None or self.rpc_server_host is not None):
            what = "spec.ray" if self.distributed is not None else "rpc_server_host and rpc_workers"
            problems.append(("hosts", f"does not go with a model across hosts: {what} already names the hosts, and "
                             "a host the selector left out would not run its part; remove hosts"))
        if self.pooling is not None and self.server_type != "embedding":
            problems.append(("pooling", "only applies to server_type: embedding; remove it or set server_type"))
        if not problems and self.source is None:
            problems.extend(self._source_from_model_path(engine))
        if problems:
            raise CrossFieldErrors(problems)
        return self

    def _source_from_model_path(self, engine: str) -> list[tuple[str, str]]:
        """A model_path naming a hub repository is an implied `source` (manifests/source.implied_source), set
        outside `model_fields_set`: the daemon fetches it into the store and starts the backend on the local
        files, as for `source: hf://...`; model_path stays as written (what `render` previews)."""
        try:
            implied = implied_source(self.model_path or "", self.hf_file, engine)
        except SourceError as exc:
            return [("hf_file", f"{exc}")]
        if implied is not None:
            object.__setattr__(self, "source", implied)
        return []

    @property
    def source_implied(self) -> bool:
        """The source comes from a model_path that names a hub repository (not written as `source`)."""
        return self.source is not None and self.source.implied

    def _model_path_from_source(self) -> list[tuple[str, str]]:
        """Exactly one of model_path and source. A source fills model_path (and hf_file for a file source)
        with what model_path would say for the same model, outside `model_fields_set` (the URL of a URL
        source): what backend selection sees. The daemon renders a fetched source on its local files instead
        (desired/build.on_local_path); a source not fetched yet is never started."""
        src = self.source
        if src is None:
            if self.model_path is None:
                return [("model_path", "is missing: give model_path or source; e.g. model_path: /models/x.gguf "
                         "or source: hf://org/model-GGUF:Q4_K_M")]
            return []
        if self.model_path is not None:
            return [("source", "is given with model_path: give one of them; keep source, which names where the "
                     "files come from, and remove model_path")]
        if self.hf_file is not None:
            return [("hf_file", "does not go with source; name the file in the source instead: "
                     f"hf://{src.repo or 'ORG/REPO'}@REVISION/FILE.gguf")]
        object.__setattr__(self, "model_path", src.model_path())
        if src.file is not None:
            object.__setattr__(self, "hf_file", src.file)
        return []

    def is_set(self, field_name: str) -> bool:
        return field_name in self.model_fields_set


def _cpu_moe_problems(spec: ModelLoadRequest, engine: str) -> list[tuple[str, str]]:
    """n_cpu_moe is llama-server's --n-cpu-moe; `auto` reads the model's GGUF header at plan time (of a hub
    source: the header the hub serves, or the fetched file; until then it is "not known yet")."""
    if spec.n_cpu_moe == 0 or engine != LLAMA:
        return []  # off, or a vLLM model (reported with the other llama.cpp-only fields)
    if (p := profile_of(spec.backend)) is not None and p.python_module:
        return [("n_cpu_moe", "only applies to llama-server backends, llama-cpp-python has no --n-cpu-moe; "
                 "remove it or use a llama-server backend, e.g. backend: auto")]
    return []  # `auto` with a hub source: placed from the hub's metadata or the fetched file (desired/demands.py)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(description="Unique model name: lowercase letters, digits and '-', at most 63 characters")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits and '-', "
                             "starting with a letter or digit)")
        return value


class Manifest(BaseModel):
    """One YAML document: apiVersion xgen/v1, kind Model."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, title="xgen-declare Model manifest")

    apiVersion: Literal["xgen/v1"]
    kind: Literal["Model"]
    metadata: Metadata
    spec: ModelLoadRequest


def suggest_name(model_path: str) -> str:
    """A valid model name derived from a path or id: 'Qwen3-8B.Q4_K_M.gguf' -> 'qwen3-8b-q4-k-m'."""
    base = model_path.rstrip("/").split("/")[-1]
    if base.lower().endswith(".gguf"):
        base = base[: -len(".gguf")]
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:63].strip("-")
    return slug or "model"
