"""One supervised process in memory (`Proc`): its record (the truth's copy on disk), back-off, process
handle, the timers of the state it is in and what its stop leads to; and the environment a spawn gets."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from xgen_declare.errors import FileRefused, SecretFileError
from xgen_declare.processes.backoff import Backoff
from xgen_declare.processes.lifecycle import Ending, Role, StopIntent
from xgen_declare.processes.spec import Rendered, Want
from xgen_declare.processes.state_store import OWNER_ENV, Record
from xgen_declare.readers.secret import read_secret
from xgen_declare.states import State


@dataclass
class Proc:
    rec: Record
    backoff: Backoff
    popen: subprocess.Popen | None = None
    want: Want | None = None
    spec: Rendered | None = None          # what the next start uses
    after_stop: StopIntent = StopIntent.STOPPED  # what follows the stop under way
    crash: Ending | None = None           # why the stop under way (StopIntent.CRASH) is a crash
    stop_deadline: float = 0.0
    killed: bool = False
    next_escapee_check: float = 0.0
    ready_deadline: float = 0.0
    next_probe_at: float = 0.0
    probe_failures: int = 0
    last_probe: str = ""
    next_start_at: float | None = None    # CrashLoopBackOff retry time
    queued: bool = False                  # start waits for a stopping model's port/GPUs
    count_next: bool = False              # the queued start is a restart
    drain_deadline: float | None = None   # draining before a stop: the router sends nothing new
    drain_reason: str = ""
    drain_after: StopIntent = StopIntent.STOPPED  # what the stop after the drain leads to
    last_good: tuple[Rendered, Want | None] | None = None  # the spec (and want) that last became Ready
    rolling_back: bool = False            # the start under way is the last good spec after a failed rollout
    # surge (surge.py): the new process started beside this one, and the old one draining after the swap;
    # both are Procs of the same model whose records live inside this one's (rec.surge / rec.retiring)
    successor: "Proc | None" = None
    retiring: "Proc | None" = None
    role: Role = Role.MAIN
    parent: "Proc | None" = None          # the model's Proc, for a successor or retiring one

    @property
    def state(self) -> State:
        return self.rec.state_enum


def child_env(spec: Rendered, marker: str) -> dict[str, str]:
    env = spec.merged_env(dict(os.environ))
    for var, path in spec.secret_env.items():  # on the control loop: bounded, a FIFO is refused, never waited on
        try:
            env[var] = read_secret(path, what="a secret file", allow_empty=True)
        except FileRefused as exc:
            raise SecretFileError(f"cannot read the secret file for {var}: {exc}") from None
    env[OWNER_ENV] = marker
    return env
