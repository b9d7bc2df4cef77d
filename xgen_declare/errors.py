"""One error tree for xgen-declare.

    XgenError                      base of everything we raise on purpose; the CLI maps it to exit code 2
     +-- ProblemsError             one or more `Problem`s (file, line, field, message, hint); exit code 1
     |    +-- ManifestError        problems in manifests
     |    +-- ConfigError          problems in xgen-declare.yaml
     |    +-- InventoryFileError   problems in an inventory file (--inventory)
     +-- RenderError               a template failed or produced something that is not an argv list
     +-- PortRangeExhausted        no free port left for some models
     +-- StateError                the state dir cannot be used (locked, unwritable, nothing recorded)
     |    +-- StateWriteError      one file of it could not be written: path + errno
     +-- ModelNotFound             a verb named a model nobody knows

A `Problem` is plain data so that it can be collected (validation reports *all* problems at once),
printed as ``FILE:LINE: FIELD: message (hint)`` or emitted as JSON.
"""

from __future__ import annotations

import errno as errno_mod
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str
    hint: str = ""
    severity: str = "error"  # "error" | "warning"

    def format(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        if self.severity == "warning":
            text = f"{where}: warning: " + text[len(where) + 2 :]
        return f"{text} ({self.hint})" if self.hint else text

    def to_json(self) -> dict:
        return asdict(self)


class XgenError(Exception):
    """Base of every error that is meant to reach a user as a message, never as a traceback."""

    exit_code = 2


class ProblemsError(XgenError):
    exit_code = 1

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


class ManifestError(ProblemsError):
    pass


class ConfigError(ProblemsError):
    pass


class InventoryFileError(ProblemsError):
    pass


class RenderError(XgenError):
    def __init__(self, message: str, field: str = "", hint: str = ""):
        self.field, self.hint = field, hint
        super().__init__(message)


class PortRangeExhausted(XgenError):
    pass


class StateError(XgenError):
    """The state dir cannot be used: locked by another daemon, unwritable, no manifests dir recorded."""


class StateWriteError(StateError):
    """A file of the state dir could not be written (read-only, full, ...): `path`, `errno`, `strerror`.

    The daemon keeps supervising from memory and retries; one-shot verbs report it."""

    def __init__(self, path: str, err: int | None, strerror: str | None):
        self.path, self.errno, self.strerror = str(path), err, strerror or "unknown error"
        self.code = errno_mod.errorcode.get(err, "") if err is not None else ""
        where = f" (errno {err} {self.code})" if err is not None else ""
        super().__init__(f"cannot write {self.path}: {self.strerror}{where}")

    def to_json(self) -> dict:
        return {"path": self.path, "errno": self.errno, "code": self.code, "error": self.strerror}


class ModelNotFound(XgenError):
    """A verb named a model the state dir and the manifests do not know."""
