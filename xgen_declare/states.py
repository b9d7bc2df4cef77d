"""Model states and the one function every state change goes through. Imports nothing of ours.

    Pending ──start──> Starting ──ready probe 200──> Ready <──probe ok── Unhealthy
       │                  │  │                        │  └──probe fails──> Unhealthy
       │                  │  └─exit / ready_timeout─┐ │                       │ threshold reached
       │                  │                         v v                       v
       │                  │                   CrashLoopBackOff <──────── (restart, counted)
       │                  │                     │  backoff elapsed ──> Starting
       │                  └─ spawn error ──> Failed   (one-shot `apply`: a failed start ends in Failed)
       │
       ├──binary missing / explicit port taken──> Blocked
       ├──source not in the store──> Downloading ──files verified──> Starting
       │                                 └──access refused / no such file / disk full──> Blocked
       └──manifest invalid, nothing running──> Invalid

    any running state ──stop (manifest removed, disabled, `down`, spec changed)──> Stopping ──> Stopped

    A Ready model whose source changed (a new revision) stays Ready while the new files download; the rollout
    (recreate or surge) starts once they are verified. Downloading is not settled: `apply --wait` waits on.

    `status` shows Exited for a record in a running state whose process is gone while a daemon runs (the
    moment before the daemon records what followed), and Failed when no daemon runs to notice.

    on-demand (`activation: on-demand`): Idle ──a request through the router──> Starting ──> Ready
       Ready ──idle_timeout without requests / evicted to make room──> Stopping ──> Idle

States are strings on disk and in `status -o json`, spelled exactly as the enum values. A model held by
`down` is Stopped with `held: true` (no extra state). A model whose manifest became invalid while its
last good process serves stays Ready and carries the problem in `manifest_error`.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger("xgen_declare.states")


class State(str, enum.Enum):
    PENDING = "Pending"                    # declared, not started yet
    STARTING = "Starting"                  # spawned, readiness probe not yet answered 200
    READY = "Ready"                        # readiness probe answered 200; liveness probes run
    UNHEALTHY = "Unhealthy"                # Ready before, now failing liveness probes (below threshold)
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"  # exited or failed to become ready; restarts after a delay
    STOPPING = "Stopping"                  # SIGTERM sent to the group, waiting up to stop_grace
    STOPPED = "Stopped"                    # not running on purpose (disabled, `down`, removed)
    BLOCKED = "Blocked"                    # cannot start: binary missing, port taken, ... (see last_error)
    INVALID = "Invalid"                    # manifest invalid and nothing running
    FAILED = "Failed"                      # start failed and nobody retries (spawn error, one-shot apply)
    IDLE = "Idle"                          # on-demand model declared but not running: starts on a request
    DOWNLOADING = "Downloading"            # its source is being fetched into the store; starts once verified
    # `status` only, never recorded: the process is gone and the running daemon has not yet recorded what
    # followed (it will, within a step: CrashLoopBackOff, Failed, Stopped...). Not settled: wait on.
    EXITED = "Exited"

    def __str__(self) -> str:
        return self.value


# States in which a process of ours is (or should be) alive.
RUNNING_STATES = frozenset({State.STARTING, State.READY, State.UNHEALTHY, State.STOPPING})
# States `apply --wait` stops waiting on (nothing more will happen without a daemon or an edit).
SETTLED_STATES = frozenset({State.READY, State.STOPPED, State.BLOCKED, State.INVALID, State.FAILED,
                            State.CRASH_LOOP_BACK_OFF, State.IDLE})


def parse_state(text: str | None) -> State:
    """A state from disk; anything unknown reads as Pending (never an exception)."""
    try:
        return State(text)
    except ValueError:
        return State.PENDING


# Called as fn(name, old, new, reason, detail) after each real change (the API's event bus listens here).
# Listeners run on the thread that changes the state (the control loop) and must not block or raise.
_listeners: list = []


def add_listener(fn) -> None:
    _listeners.append(fn)


def remove_listener(fn) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def transition(name: str, old: State, new: State, reason: str = "", detail: dict | None = None, *,
               process: str | None = None) -> State:
    """The single place a state changes: logs `name: OLD -> NEW (reason)`, tells the listeners
    (`detail`: facts of the record such as restarts, pid, last_error) and returns NEW. `process`: the
    change is one of a model's extra processes (a surge's new or old one, "surge process, pid 12"),
    not the model's own state: it is logged as such and the listeners are not told."""
    if old != new:
        who = f"{name} ({process})" if process else name
        log.info("%s: %s -> %s%s", who, old.value, new.value, f" ({reason})" if reason else "")
        if process:
            return new
        for fn in list(_listeners):
            try:
                fn(name, old, new, reason, detail or {})
            except Exception:  # a listener's bug never stops a state change
                log.exception("state listener failed")
    return new
