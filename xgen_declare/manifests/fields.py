"""The parts a model's spec is built from: argv-safe string types, durations, the RPC worker, Ray
cluster and rollout sub-objects, and the cross-field checks of the distributed fields (Ray, RPC).
request.py assembles them into `ModelLoadRequest`."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema, \
    field_validator

from xgen_declare.backends.profile import LLAMA, VLLM, profile_of
from xgen_declare.names import first_control
from xgen_declare.readers.selector import OPERATORS, Selector, parse_selector
from xgen_declare.readers.validation_errors import CrossFieldErrors

def _reject_control(value: str, what: str) -> str:
    """Control characters (names.CONTROL_RE: C0 but tab, DEL, C1) never reach argv: a newline or NUL
    breaks the argv, and an alias such as "\\x1b]0;pwned\\x07" would drive operators' terminals through
    `logs` and `render -o shell`. A tab is allowed (harmless on a terminal, and some flags take one)."""
    found = first_control(value)
    if found is not None:
        pos, shown = found
        raise ValueError(f"{what} must not contain control characters ({shown} at position {pos}): remove it "
                         "(newlines, NUL bytes and terminal escapes are refused, a tab is allowed)")
    return value


NoNewline = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(lambda v: _reject_control(v, "value"))]


def not_a_flag(hint: str) -> AfterValidator:
    """For a value that lands in argv as a positional or as a flag's value: one that starts with '-' would
    be read as a flag (`model_path: --model=evil/repo` made `vllm serve --model=evil/repo`; vLLM's
    `--served-model-name` takes every value up to the next flag; argparse refuses `--host -x`)."""
    def check(value: str) -> str:
        if value.startswith("-"):
            raise ValueError(f"must not start with '-': a backend would read it as a command-line flag; {hint}")
        return value
    return AfterValidator(check)


PATH_HINT = "write ./ before a file name that starts with '-'"
HOST_HINT = "give a host name or address"
ArgvPath = Annotated[NoNewline, not_a_flag(PATH_HINT)]
ArgvHost = Annotated[NoNewline, not_a_flag(HOST_HINT)]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class RpcWorker(BaseModel):
    """One llama.cpp RPC worker (`ggml-rpc-server`) of a model; see docs/rpc.md."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    host: ArgvHost = Field(description="Host the worker runs on and llama-server connects to; the daemon whose "
                            "host has this name (or 127.0.0.1/localhost: this host) starts it")
    port: int = Field(ge=1, le=65535, description="Port the worker listens on")
    bind: ArgvHost | None = Field(None, description="Address the worker binds (default 127.0.0.1). RPC has no "
                                   "authentication: a worker on another host needs an explicit bind address "
                                   "on a trusted network")
    threads: int | None = Field(None, ge=1, description="CPU threads of the worker's CPU device")

    @field_validator("host", "bind")
    @classmethod
    def _single_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value) or "," in value):
            raise ValueError("must be one host name or address (no spaces, commas or newlines)")
        return value

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
DURATION_HINT = 'a duration such as "15m", "30s", "1h30m", or a number of seconds'


def parse_duration(value: float | int | str) -> float:
    """'15m' -> 900.0, '1h30m' -> 5400.0, '30s' / 30 / '30' -> 30.0; > 0, else ValueError with a hint."""
    if isinstance(value, bool):
        raise ValueError(f"must be {DURATION_HINT}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            m = _DURATION.match(text)
            if not text or m is None or not any(m.groups()):
                raise ValueError(f"{value!r} is not a duration; use {DURATION_HINT}") from None
            h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            seconds = h * 3600 + mi * 60 + s
    if not seconds > 0:
        raise ValueError(f"must be greater than 0 ({DURATION_HINT})")
    if not math.isfinite(seconds):
        raise ValueError(f"must be finite ({DURATION_HINT}); leave it unset to never stop for idleness")
    return seconds


MAX_DRAIN = 3600.0  # seconds; a rollout never holds requests longer than this


def parse_drain(value: float | int | str) -> float:
    """A drain_timeout: 0 (no drain) up to MAX_DRAIN seconds, as a duration or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"must be {DURATION_HINT}")
    text = value.strip().lower() if isinstance(value, str) else value
    try:
        number: float | None = float(text)
    except (TypeError, ValueError):
        number = None
    if number is not None and number < 0:
        raise ValueError("must be 0 or more (0 = stop without waiting for requests)")
    if number is not None and math.isfinite(number):
        seconds = number
    elif number is not None and math.isnan(number):
        raise ValueError(f"must be {DURATION_HINT}")
    elif number is not None:
        raise ValueError("must be finite; use at most 1h: requests wait this long for a rollout or a stop")
    else:
        seconds = 0.0 if text in ("0s", "0m", "0h") else parse_duration(value)
    if seconds > MAX_DRAIN:
        raise ValueError(f"{seconds:g}s is more than {MAX_DRAIN:g}s; use at most 1h: requests wait this long for a "
                         "rollout or a stop")
    return seconds


class RolloutSpec(BaseModel):
    """`spec.rollout`: how a change of the running spec is rolled out, and how long a stop waits for the
    requests in flight through the router (README "Rollouts")."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    strategy: Literal["auto", "surge", "recreate"] = Field(
        "auto", description="recreate = stop the old process (after draining it), then start the new one; "
        "surge and auto: see README Rollouts (surge is not implemented yet: it rolls out like recreate)")
    drain_timeout: float | str = Field(
        60.0, description="How long a stop (rollout, idle stop, eviction, down, removal) waits for the requests "
        "in flight through the router to finish; new requests wait meanwhile. 0 = do not wait; at most 1h")

    @field_validator("drain_timeout")
    @classmethod
    def _drain(cls, value: float | str) -> float:
        return parse_drain(value)


class RayCluster(BaseModel):
    """`spec.ray`: the hosts of a model's Ray cluster (distributed: ray; docs/ray.md). A host is matched
    against each daemon's names (its hostname, XGEN_DECLARE_HOST): that daemon runs the head or a worker."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    head: ArgvHost = Field(description="Host that runs the Ray head and `vllm serve`")
    workers: list[ArgvHost] = Field(min_length=1, description="Hosts that join as Ray workers, one per other node")
    head_address: ArgvHost | None = Field(None, description="Address the workers and vLLM connect to "
                                           "(default: head)")
    port: int = Field(6379, ge=1, le=65535, description="The head's Ray GCS port")
    node_manager_port: int = Field(6380, ge=1, le=65535, description="A worker's raylet port (its readiness "
                                   "and liveness probe connects to it)")

    @field_validator("head", "workers", "head_address")
    @classmethod
    def _host_names(cls, value: str | list[str] | None) -> str | list[str] | None:
        for v in [value] if isinstance(value, str) else value or []:
            if any(c.isspace() for c in v) or "," in v:
                raise ValueError("must be host names or addresses (no spaces, commas or newlines)")
        return value

    @property
    def address(self) -> str:
        host = self.head_address or self.head
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def _ray_problems(spec: Any, engine: str) -> list[tuple[str, str]]:
    """`nodes` / `distributed` / `ray` rules; derives pipeline_parallel_size = nodes when it is not set."""
    if spec.distributed is None:
        out = []
        if spec.nodes != 1:
            out.append(("nodes", "spanning hosts needs distributed: ray, for vLLM backends only; add it or "
                        "remove nodes"))
        if spec.ray is not None:
            out.append(("ray", "only applies with distributed: ray; add it or remove ray"))
        return out
    if engine != VLLM:
        return [("distributed", f"only vLLM backends run across hosts with Ray, not {spec.backend}; for a GGUF "
                 "model use llama.cpp RPC workers: rpc_workers")]
    out = []
    n = spec.nodes
    if n < 2:
        out.append(("nodes", f"is {n} but distributed: ray needs 2 or more (one Ray node per host)"))
    if not spec.is_set("pipeline_parallel_size"):
        object.__setattr__(spec, "pipeline_parallel_size", n)  # derived: one pipeline stage per node
    elif spec.pipeline_parallel_size != n:
        out.append(("pipeline_parallel_size", f"is {spec.pipeline_parallel_size} but nodes is {n} and each node is one "
                    f"pipeline stage; remove it, it is derived from nodes, or set it to {n}"))
    if spec.gpus is not None and spec.tensor_parallel_size > len(spec.gpus):
        out.append(("tensor_parallel_size", f"is {spec.tensor_parallel_size} (GPUs per node) but gpus lists "
                    f"{len(spec.gpus)}; list more GPUs or lower tensor_parallel_size"))
    if spec.activation != "always":
        out.append(("activation", "a model across hosts is always on (its Ray cluster runs with the daemons); "
                    "remove activation: on-demand"))
    if spec.ray is None:
        out.append(("ray", "distributed: ray needs a ray: section naming the head host and the worker hosts, "
                    "e.g. {head: gpu-box-1, workers: [gpu-box-2]}"))
        return out
    hosts = [spec.ray.head] + spec.ray.workers
    if len(hosts) != n:
        out.append(("ray", f"names {len(hosts)} host(s) (head + workers) but nodes is {n}; list one worker per "
                    "node besides the head"))
    twice = sorted({h for h in hosts if hosts.count(h) > 1})
    if twice:
        out.append(("ray", f"names {', '.join(twice)} more than once; each node is a different host"))
    if spec.ray.port == spec.ray.node_manager_port:
        out.append(("ray", f"port and node_manager_port are both {spec.ray.port}; give them different ports"))
    return out


def _rpc_problems(spec: Any, engine: str) -> list[tuple[str, str]]:
    if not spec.rpc_workers:
        return [("rpc_server_host", "only applies with rpc_workers; remove it")] if spec.rpc_server_host else []
    out = []
    if engine != LLAMA or ((p := profile_of(spec.backend)) is not None and not p.llama_server):
        out.append(("rpc_workers", f"only applies to llama-server backends, not {spec.backend}; remove it or use "
                    "a llama-server backend"))
    seen: set[tuple[str, int]] = set()
    for w in spec.rpc_workers:
        if (w.host, w.port) in seen:
            out.append(("rpc_workers", f"lists {w.endpoint} more than once"))
        seen.add((w.host, w.port))
        if w.host not in LOOPBACK_HOSTS and w.bind is None:
            out.append(("rpc_workers", f"worker {w.endpoint} is on another host but binds 127.0.0.1 by default, so "
                        "llama-server cannot reach it; RPC has no authentication: on a trusted network only, set "
                        "bind: to an address of that host (or 0.0.0.0)"))
    remote = [w.endpoint for w in spec.rpc_workers if w.host not in LOOPBACK_HOSTS]
    if remote and spec.rpc_server_host is None:
        out.append(("rpc_server_host", f"worker(s) {', '.join(remote)} may be on other hosts, whose daemons read "
                    "this manifest too: name the host that runs llama-server (rpc_server_host: gpu-box-1); the "
                    "others then run only their workers"))
    if spec.rpc_server_host in LOOPBACK_HOSTS:
        out.append(("rpc_server_host", "must be a host name, not a loopback address (every daemon is "
                    f"{spec.rpc_server_host}); remove it when all workers are local"))
    return out


def parse_hosts(value: object) -> Selector:
    """`spec.hosts`: the hosts a model is for (readers/selector.py); every problem under its own field
    (spec.hosts.matchExpressions[0].operator), with its line."""
    if isinstance(value, Selector):
        return value
    selector, issues = parse_selector(value, "hosts")
    if selector is None:
        raise CrossFieldErrors([(_selector_path(f), f"{message}; {hint}") for f, message, hint in issues])
    return selector


def _selector_path(field: str) -> tuple:
    """"hosts.matchExpressions[0].operator" -> ("matchExpressions", 0, "operator"); a label key keeps its dots
    ("hosts.matchLabels.gpu.vendor" -> ("matchLabels", "gpu.vendor")), so the line is the key's own."""
    rest = field[len("hosts."):] if field.startswith("hosts.") else ""
    head, _, tail = rest.partition(".")
    m = re.fullmatch(r"matchExpressions\[(\d+)\]", head)
    if m:
        return ("matchExpressions", int(m.group(1))) + ((tail,) if tail else ())
    return tuple(p for p in (head, tail) if p)


_LABEL_VALUE = {"type": ["string", "number", "boolean"]}
HostSelector = Annotated[Selector, PlainValidator(parse_hosts), PlainSerializer(lambda s: s.to_json()),
                         WithJsonSchema({
                             "type": "object", "additionalProperties": False,
                             "properties": {
                                 "matchLabels": {"type": "object", "additionalProperties": _LABEL_VALUE},
                                 "matchExpressions": {"type": "array", "items": {
                                     "type": "object", "additionalProperties": False, "required": ["key", "operator"],
                                     "properties": {"key": {"type": "string"}, "operator": {"enum": list(OPERATORS)},
                                                    "values": {"type": "array", "items": _LABEL_VALUE}}}}}})]


class Override(BaseModel):
    """One entry of `spec.overrides`: values for the hosts `hosts` selects (README "Many hosts"). `set` is
    checked like the fields it sets by manifests/overrides.py (the spec with it applied is validated)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    hosts: HostSelector = Field(description="The hosts these values are for (a label selector, as spec.hosts)")
    set: dict[str, Any] = Field(description="Spec fields and their values on those hosts, e.g. "
                                "{n_gpu_layers: 20, ctx_size: 8192}")

    @field_validator("set")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("is empty; give the fields to set on those hosts, e.g. set: {n_gpu_layers: 20}")
        return value
