"""The process side's own vocabulary beside `states.State`: what a stop leads to, and which of a model's
processes a `Proc` is. Imports nothing of ours.

A model's state (states.py) says where its process is; a `StopIntent` says what follows once the stop
under way (or the drain before it) is over, and a `Role` says whether a Proc is the model's own process
or one of a surge's two extra ones (surge.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StopIntent(str, enum.Enum):
    STOPPED = "stopped"   # the model rests Stopped (disabled, held by `down`, `--stop-on-exit`)
    FORGET = "forget"     # the manifest was removed: the model and its record go
    START = "start"       # a restart: the next process starts once this one is gone
    CRASH = "crash"       # a probe rule failed: the crash path (back-off, rollback) follows
    IDLE = "idle"         # an on-demand model nobody wants now: it rests Idle
    RETIRED = "retired"   # a surge's old process (or an aborted successor): only the model's own one remains

    def then(self, newer: "StopIntent") -> "StopIntent":
        """The intent after a second stop asks for `newer` while this one is under way: a removal outranks
        the rest (a model whose manifest is gone is never started again by a restart asked before)."""
        return self if self is StopIntent.FORGET and newer is not StopIntent.FORGET else newer


@dataclass(frozen=True)
class Ending:
    """Why a process ended or failed (`what`: one line, e.g. "exited with code 1 during start") and the
    last lines of its log, kept apart: the history, events and state reasons take `what`; the record's
    last_error takes `text` (both). Nothing splits a message to find one or the other."""

    what: str
    log: str = ""

    @property
    def text(self) -> str:
        return self.what + (f"; last log lines:\n{self.log}" if self.log else "")

    @property
    def headline(self) -> str:
        return self.what.splitlines()[0] if self.what else ""


class Role(str, enum.Enum):
    MAIN = ""             # the model's process: its state is the model's state
    SURGE = "surge"       # a surge's new process, starting beside the serving one
    RETIRING = "retiring" # a surge's old process, draining after the swap

    def __str__(self) -> str:
        return self.value
