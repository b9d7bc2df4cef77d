"""What the supervisor runs and what the planner compares: plain data shared by desired/ (which renders a
`Rendered`), reconciler/ (which plans `Want`s against `Seen`s) and processes/ (which runs them).

`Rendered.spec_hash()` is a process's identity: argv, env, secret files, port, host, GPUs, backend and
RPC workers, hashed canonically. A running model is restarted only when it changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import KW_ONLY, asdict, dataclass, field
from typing import Mapping

from xgen_declare.names import CONTROL_RE, escape_controls
from xgen_declare.processes.rpc_workers import WorkerSpec
from xgen_declare.processes.identity import IDENTITY_FIELDS, Identity
from xgen_declare.processes.settings import InPlace, Placed
from xgen_declare.processes.state_store import Record
from xgen_declare.states import State

SECRET_KEY = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL)", re.I)
REDACTED = "***"


@dataclass
class Rendered:
    name: str
    backend: str
    argv: list[str]
    env: dict[str, str | None]
    port: int
    host: str
    endpoint: str
    readiness_path: str
    binary: str
    dialect: str | None
    backend_reason: str
    port_source: str
    ready_timeout: float
    stop_grace: float
    enabled: bool = True
    backend_note: str | None = None  # the backend choice followed a rule worth showing (plan/render print it)
    binary_from_manifest: bool = False  # argv[0] is the manifest's `binary:` (so a missing one is fixed there)
    gpus: list[int] | None = None
    file: str | None = None
    secret_env: dict[str, str] = field(default_factory=dict)  # env var -> file its value is read from
    warnings: list[str] = field(default_factory=list)
    # of those, what `plan` prints too: RPC workers reachable from the network (a plan reader must see it)
    plan_warnings: list[str] = field(default_factory=list)
    workers: list[WorkerSpec] = field(default_factory=list)  # local RPC workers, started before argv
    placement: Placed | None = None  # n_gpu_layers / tensor_split as rendered (Resolved.placement_values)

    def spec_hash(self) -> str:
        """Identity of what would run: any change here means a restart, nothing else does. The RPC
        workers are part of it: the group is restarted together."""
        identity = {"argv": self.argv, "env": self.env, "secret_env": self.secret_env, "port": self.port,
                    "host": self.host, "gpus": self.gpus, "backend": self.backend}
        if self.workers:
            identity["rpc_workers"] = [list(w.argv) for w in self.workers]
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def identity(self, binary_id: str | None = None, env_digest: Mapping[str, str | None] | None = None) -> Identity:
        """What would run, as the planner compares it (`binary_id`, `env_digest`: gathered from the host)."""
        return Identity(name=self.name, spec_hash=self.spec_hash(), argv=tuple(self.argv), port=self.port,
                        backend=self.backend, host=self.host, gpus=tuple(self.gpus) if self.gpus is not None else None,
                        env_digest=dict(env_digest or {}), binary_id=binary_id, file=self.file)

    def merged_env(self, base: dict[str, str]) -> dict[str, str]:
        """`base` (e.g. os.environ) with this model's env applied; a None value removes the variable."""
        env = dict(base)
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def display_env(self) -> dict[str, str | None]:
        env = {k: (REDACTED if v is not None and SECRET_KEY.search(k) else v) for k, v in self.env.items()}
        env.update({k: REDACTED for k in self.secret_env})
        return env

    def to_json(self) -> dict:
        data = asdict(self)
        data["placement"] = self.placement.to_json() if self.placement is not None else None
        data["env"] = self.display_env()
        data["secret_env"] = sorted(self.secret_env)
        return data

    def shell(self) -> str:
        """A copy-pasteable, correctly quoted preview (never executed by us)."""
        parts = []
        unset = [k for k, v in self.env.items() if v is None]
        if unset:
            parts.append("env " + " ".join(f"-u {k}" for k in unset))
        for k, v in self.display_env().items():
            if v is not None:
                parts.append(f"{escape_controls(k)}={shell_quote(v)}")
        parts.extend(shell_quote(a) for a in self.argv)
        return " \\\n  ".join(_group_flags(parts))


def shell_quote(value: str) -> str:
    """shlex.quote, except that a value holding control characters (names.CONTROL_RE: an env value with a
    newline, a terminal escape) is written in bash's $'...' form with each one as \\xHH of its UTF-8
    bytes: the preview stays copy-pasteable, and printing it never drives the terminal."""
    if CONTROL_RE.search(value) is None:
        return shlex.quote(value)
    out = []
    for c in value:
        if CONTROL_RE.match(c):
            out.append("".join(f"\\x{b:02x}" for b in c.encode()))
        else:
            out.append({"\\": "\\\\", "'": "\\'"}.get(c, c))
    return "$'" + "".join(out) + "'"


def _group_flags(parts: list[str]) -> list[str]:
    """Keep a flag and its value on one line of the preview."""
    lines: list[str] = []
    seen_flag = False
    for p in parts:
        is_flag = p.startswith("-") and not p[1:2].isdigit()  # "-1" is a value
        if lines and not is_flag and "=" not in lines[-1] and (
                not seen_flag or (lines[-1].startswith("-") and " " not in lines[-1])):
            lines[-1] += " " + p
        else:
            lines.append(p)
        seen_flag = seen_flag or is_flag
    return lines


@dataclass(frozen=True)
class Want(Identity):
    """A model as the manifests want it (rendered: its Identity), plus facts about the host gathered beforehand."""

    _: KW_ONLY
    enabled: bool = True
    blocked: str | None = None       # why it cannot start now (binary missing, explicit port taken, ...)
    idle: str | None = None          # on-demand and not wanted now (no request / idle / evicted): why
    downloading: str | None = None   # its source is being fetched into the store: the progress, as text
    settings: InPlace | None = None  # what changes without a restart (reconciler/rollout.py); None: not known
    # a surge's want (on its spare port): the hash the plan knows the spec by (on the model's own port), so a
    # failed surge is recognised and not retried (reconciler/strategy.py)
    planned_hash: str | None = None


@dataclass(frozen=True)
class Seen(Identity):
    """A model as the state dir (checked against /proc) shows it: the recorded Identity, and its state."""

    _: KW_ONLY
    state: State
    running: bool                    # a live process whose identity matches the record
    held: bool = False
    held_hash: str | None = None
    last_error: str | None = None
    buffers: Mapping[str, Mapping[str, float]] | None = None  # measured MiB per device and term (llama.cpp log)
    settings: InPlace | None = None  # the in-place settings applied (None: not recorded)
    failed_hash: str | None = None   # a rollout of this spec failed and was rolled back (not retried)
    placement: Placed | None = None  # n_gpu_layers / tensor_split the process was started with
    surge_hash: str | None = None    # a surge under way: the new process's spec hash ...
    surge_port: int | None = None    # ... and the port it was started on

    @classmethod
    def of(cls, r: Record, running: bool, successor: Record | None = None) -> "Seen":
        """The planner's view of a record (`successor`: the record of a surge under way)."""
        ident = r.identity
        return cls(**{f: getattr(ident, f) for f in IDENTITY_FIELDS}, state=r.state_enum, running=running, held=r.held,
                   held_hash=r.held_hash, last_error=r.last_error, buffers=r.buffers_mib, settings=r.settings,
                   failed_hash=r.failed_spec_hash, placement=r.placement,
                   surge_hash=successor.spec_hash if successor else None,
                   surge_port=successor.port if successor else None)
