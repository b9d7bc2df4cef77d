"""One error tree for xgen-declare, and the exit codes (`ExitCode`, one meaning each; README "Exit codes").

    XgenError                      base of everything we raise on purpose; each class names its exit code
     +-- ProblemsError             one or more `Problem`s (file, line, field, message, hint)    1 INVALID_INPUT
     |    +-- ManifestError        problems in manifests
     |    +-- ConfigError          problems in xgen-declare.yaml
     |    +-- InventoryFileError   problems in an inventory file (--inventory)
     +-- RenderError               a template failed or produced something that is not an argv 1 INVALID_INPUT
     +-- PortRangeExhausted        no free port left for some models (config)                    1 INVALID_INPUT
     +-- UsageError                the command line lacks something (e.g. DIR)                   2 USAGE
     +-- StateError                the state dir cannot be used: cannot be created or written    6 STATE_DIR
     |    +-- StateWriteError      one file of it could not be written: path + errno             6 STATE_DIR
     |    +-- StateBusyError       another xgen-declare holds it, or the daemon did not answer   4 BUSY
     |    +-- StateNameError       a name that is not a model name reached it (names.py)         1 INVALID_INPUT
     +-- ModelNotFound             a verb named a model nobody knows                             5 NOT_FOUND
     +-- LoopBusy                  the daemon's control loop has too many requests waiting       4 BUSY
     +-- FileRefused               a path from outside is not a regular file, a link where none  1 INVALID_INPUT
                                   may be, or larger than its limit (readers/bounded.py)
     +-- FetchError                a model's files could not be fetched into the store: `blocked` 9 FETCH_FAILED
                                   (401/403/404, no such revision or file, no disk, checksum) or
                                   retryable (network, 5xx) (store/)
     +-- SourceError               a git source (git+URL, the config's `source:`) is invalid: 1 INVALID_INPUT
                                   `field`, `message` and `hint` (sources/spec.py)
     +-- SecretFileError           a model's secret file (api_key_file, token file) cannot be read 1 INVALID_INPUT
                                   at its spawn: the model is Blocked with the reason (processes/)
    (http.security.ApiSetupError: the API cannot or may not listen                               7 CANNOT_SERVE)

A `Problem` is plain data so that it can be collected (validation reports *all* problems at once),
printed as ``FILE:LINE: FIELD: message (hint)`` or emitted as JSON.
"""

from __future__ import annotations

import enum
import errno as errno_mod
from dataclasses import asdict, dataclass


class ExitCode(enum.IntEnum):
    OK = 0
    INVALID_INPUT = 1
    USAGE = 2
    NOT_CONVERGED = 3
    BUSY = 4
    NOT_FOUND = 5
    STATE_DIR = 6
    CANNOT_SERVE = 7
    SOURCE_REFUSED = 8
    FETCH_FAILED = 9
    INTERNAL = 70
    INTERRUPTED = 130


# the one table: `--help`, README's "Exit codes" section (a test compares them) and the CLI use it
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success: the verb did what was asked",
    ExitCode.INVALID_INPUT: "invalid input: a manifest, the config, an inventory file, a model file or a template "
                            "has errors (each printed as FILE:LINE: field: message)",
    ExitCode.USAGE: "usage error: unknown verb or option, bad option value, missing argument",
    ExitCode.NOT_CONVERGED: "goal not reached: a model did not end Ready (Stopped, for `down`): Failed, Blocked, "
                            "CrashLoopBackOff or not ready in time; `fit`: the model does not fit; `fleet status --commit`: a "
                            "host does not serve the commit yet",
    ExitCode.BUSY: "busy: another xgen-declare (a daemon, or `apply`, `down`, ...) holds the state dir, or the "
                   "daemon did not take the request in time; try again later",
    ExitCode.NOT_FOUND: "not found: a model named on the command line is unknown",
    ExitCode.STATE_DIR: "state dir unusable: it cannot be created or written (read-only, full: "
                        "`state_write_failed`)",
    ExitCode.CANNOT_SERVE: "cannot serve: the API cannot listen (address in use) or may not (a non-loopback "
                           "address without a token, an unreadable token file)",
    ExitCode.SOURCE_REFUSED: "source refused: `sync` or `source pin` did not apply the git source's commit: it is "
                             "unsigned or signed by a key not allowed, rewinds the branch, has invalid manifests "
                             "or too large a tree, or the remote could not be fetched (unreachable, timeout); the "
                             "last good commit stays current",
    ExitCode.FETCH_FAILED: "fetch failed: `pull` could not get a model's files into the store (the hub or the "
                           "network failed, access refused, no such revision or file, checksum mismatch, not "
                           "enough disk, store not writable), or `store gc` could not remove one; the message "
                           "says which",
    ExitCode.INTERNAL: "internal error: a bug in xgen-declare (rerun with `XGEN_DEBUG=1` for the traceback)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


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

    exit_code: int = ExitCode.INVALID_INPUT


class ProblemsError(XgenError):
    exit_code = ExitCode.INVALID_INPUT

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


class UsageError(XgenError):
    """The command line lacks something the verb needs (for example DIR, when the state dir records none)."""

    exit_code = ExitCode.USAGE


class StateError(XgenError):
    """The state dir cannot be used: it cannot be created or written."""

    exit_code = ExitCode.STATE_DIR


class StateNameError(StateError):
    """A name that is not a model name reached the state dir (names.py; defence in depth: validation
    refuses it first). The input is wrong, not the state dir."""

    exit_code = ExitCode.INVALID_INPUT


class StateBusyError(StateError):
    """Another xgen-declare process holds the state dir's lock, or the daemon did not take a request."""

    exit_code = ExitCode.BUSY


class LoopBusy(XgenError):
    """The control loop's inbox is full (reconciler/daemon.py `submit`): the request was not queued; the
    API answers 503 with Retry-After."""

    exit_code = ExitCode.BUSY


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

    exit_code = ExitCode.NOT_FOUND


class FileRefused(XgenError):
    """A path that came from outside (a manifest, the config, the state dir, a request) was not read:
    it is not a regular file (a FIFO, a device, a directory), it is a symlink where none may be, or it
    is larger than the limit for what it holds. `path`, `reason` and `hint` say which and what to do;
    OSError (missing, unreadable) is left to the caller, which knows the file's role."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, path: str, reason: str, hint: str = ""):
        self.path, self.reason, self.hint = str(path), reason, hint
        super().__init__(f"{self.path}: {reason}" + (f" ({hint})" if hint else ""))


class FetchError(XgenError):
    """A source's files could not be fetched into the store (store/fetch.py). `blocked`: retrying will not
    help until something changes (access refused, no such revision or file, not enough disk, a checksum
    mismatch: the model is Blocked with `reason`); otherwise a network error worth retrying with back-off.
    `reason` is the whole user-facing sentence ("what; what to do")."""

    exit_code = ExitCode.FETCH_FAILED

    def __init__(self, reason: str, *, blocked: bool):
        self.reason, self.blocked = reason, blocked
        super().__init__(reason)


class SourceError(XgenError):
    """A git source is not usable as written (sources/spec.py): not a git URL, a ref that is no ref name,
    a path outside the repository, an interval that is no duration. `field` names where (`source.ref`,
    or `source` for the command line's git+URL), `hint` gives an example."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, field: str, message: str, hint: str = ""):
        self.field, self.message, self.hint = field, message, hint
        super().__init__(f"{field}: {message}" + (f" ({hint})" if hint else ""))


class SecretFileError(XgenError):
    """A secret file named by a manifest (its value goes into the process's environment at spawn) cannot
    be read: missing, not UTF-8, not a regular file or too large. The supervisor Blocks that model with
    the message, which names the variable and the file; nothing else is affected."""

    exit_code = ExitCode.INVALID_INPUT
