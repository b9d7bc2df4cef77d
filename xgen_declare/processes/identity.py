"""`Identity`: what a process is, declared once and shared by the four views of it: the planner's `Want`
and `Seen` are an Identity plus what each adds (processes/spec.py), a `Record` gives its identity
(`Record.identity`) and takes one at spawn (`Record.take`), a `Rendered` is hashed into `spec_hash`.

A running model is restarted only when its identity changes (reconciler/plan.py describe_changes says
which part): the spec hash (argv, env, secret files, port, host, GPUs, backend, RPC workers), the
executable's identity (binary_id: path, size, mtime) and the manifest file it came from (display only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping


@dataclass(frozen=True)
class Identity:
    name: str
    spec_hash: str | None = None
    argv: tuple[str, ...] = ()
    port: int | None = None
    backend: str = ""
    host: str = "127.0.0.1"
    gpus: tuple[int, ...] | None = None
    env_digest: Mapping[str, str | None] = field(default_factory=dict)
    binary_id: str | None = None     # None: the executable was not found (or not recorded)
    file: str | None = None          # the manifest it came from

    def identity(self) -> "Identity":
        """Just the identity of a Want or a Seen (their other fields left out)."""
        return Identity(**{f.name: getattr(self, f.name) for f in fields(Identity)})


IDENTITY_FIELDS = tuple(f.name for f in fields(Identity))
