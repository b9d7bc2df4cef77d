"""The state dir: one JSON record per model, written atomically, plus the daemon's lock and facts.

    STATE_DIR/
      models/NAME.json     Record: pid + process identity, spec hash, port, restarts, errors, hold
      logs/NAME.log        the backend's stdout+stderr (copy-truncate rotation: NAME.log.1 ...)
      daemon.lock          flock'ed by the process that acts on models (daemon, apply, down, ...)
      daemon.json          which manifests dir and config the state dir serves; the daemon's identity
      owner_id             random id put in every child's environment (XGEN_DECLARE_OWNER)
      requests/*.json      `restart` / `down` / `up` asking a running daemon to act
      history/NAME.json    the model's last HISTORY_KEEP rollouts (from -> to spec hash, commit, result)

`held_ports()` reads the ports out of the same records for `render`.
An unreadable or corrupt record is reported ("corrupt record FILE: what; fix: remove it", in `problems`)
and skipped by every reader (`load`, `load_all`), never fatal.

Nothing here follows a symlink planted in the state dir (statefiles.py): every read goes through
readers/bounded.py with follow=False and a size limit; every write is a temp file created with
O_EXCL|O_NOFOLLOW (0600; what sat at its name is unlinked first), renamed over the target (a rename
replaces a link, never writes through it); its directories are created 0700 (logfiles.py: the logs).
Every write (and record delete) goes through one place: a failure raises StateWriteError (path,
errno) and stays in `write_failures` until that path is written again; a record is replaced whole
or not at all (`atomic_write`), never truncated.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import stat
import time
import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, NoReturn

from xgen_declare.errors import FileRefused, StateBusyError, StateNameError, StateWriteError
from xgen_declare.names import RULE_TEXT, is_model_name, quote_cut
from xgen_declare.processes.statefiles import (LINK_WORDS, SMALL_LIMIT, atomic_write, corrupt, fsync_dir,
                                               make_private_dir, read_state_json, read_state_text)

__all__ = ["OWNER_ENV", "HISTORY_KEEP", "Record", "StateStore", "atomic_write", "fsync_dir", "held_ports",
           "make_private_dir"]  # atomic_write, fsync_dir: api/declare.py and testing/fakes.py import them here
from xgen_declare.processes.history import Entry
from xgen_declare.processes.identity import Identity
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.settings import InPlace, Placed
from xgen_declare.states import State, parse_state

log = logging.getLogger("xgen_declare.state")

OWNER_ENV = "XGEN_DECLARE_OWNER"
HISTORY_KEEP = 20  # rollouts kept per model in history/NAME.json


# Record fields held as typed values, written as their JSON (the record file's shape is unchanged) and read
# back tolerantly: a value an older version wrote, or one of the wrong type, never makes a record unreadable
TYPED = ("settings", "placement", "provenance", "rollout", "surge", "retiring")


@dataclass
class Record:
    name: str
    state: str = State.PENDING.value
    backend: str = ""
    pid: int | None = None
    start_ticks: int | None = None     # /proc/PID/stat field 22
    boot_id: str | None = None         # /proc/sys/kernel/random/boot_id
    marker: str | None = None          # value of XGEN_DECLARE_OWNER in the child's environment
    spec_hash: str | None = None
    binary_id: str | None = None
    argv: list[str] = field(default_factory=list)
    env_digest: dict[str, str | None] = field(default_factory=dict)
    port: int | None = None
    host: str = "127.0.0.1"
    endpoint: str | None = None
    readiness_path: str = "/health"
    gpus: list[int] | None = None
    stop_grace: float = 10.0
    ready_timeout: float = 600.0
    file: str | None = None
    restarts: int = 0
    last_error: str | None = None
    manifest_error: str | None = None
    held: bool = False
    held_hash: str | None = None
    started_at: float | None = None    # wall clock, display only (uptime)
    ready_at: float | None = None      # wall clock, display only
    updated_at: float | None = None
    buffers_mib: dict[str, dict[str, float]] | None = None  # measured per device ("GPU0", "host") and term
    provenance: Provenance | None = None  # of the running spec: file, sha256, commit, dirty
    rollout: Entry | None = None       # the history entry of a start not yet Ready (result still open)
    settings: InPlace | None = None    # the in-place settings applied to the running process (settings.py)
    placement: Placed | None = None    # n_gpu_layers / tensor_split it was started with (settings.py)
    log_alt: bool = False              # its output goes to NAME.surge.log (StateStore.log_path)
    surge: "Record | None" = None      # a surge's new process, started beside this one (a copy: `snapshot`)
    retiring: "Record | None" = None   # the old process of a surge, draining after the swap (a copy)
    last_good_spec_hash: str | None = None  # the spec hash that last became Ready
    failed_spec_hash: str | None = None     # a rollout of this spec failed and was rolled back: not retried
    rollout_error: str | None = None        # why (the failed spec's error and log tail)
    download: dict | None = None            # its source's fetch while one runs: done, total, rate, source, text
    downloaded_bytes: int = 0               # bytes the daemon fetched for its source (resumed bytes count again)

    @property
    def state_enum(self) -> State:
        return parse_state(self.state)

    @property
    def identity(self) -> Identity:
        """What the recorded process is (the record keeps it flat in its JSON)."""
        return Identity(name=self.name, spec_hash=self.spec_hash, argv=tuple(self.argv), port=self.port,
                        backend=self.backend, host=self.host, gpus=tuple(self.gpus) if self.gpus is not None else None,
                        env_digest=dict(self.env_digest), binary_id=self.binary_id, file=self.file)

    def take(self, ident: Identity) -> None:
        """The identity of the process being spawned (the name stays the record's)."""
        self.spec_hash, self.argv, self.port, self.host = ident.spec_hash, list(ident.argv), ident.port, ident.host
        self.backend, self.gpus = ident.backend, list(ident.gpus) if ident.gpus is not None else None
        self.env_digest, self.binary_id, self.file = dict(ident.env_digest), ident.binary_id, ident.file

    def snapshot(self) -> "Record":
        """A copy to keep inside another record (`surge`, `retiring`): never the live one (a successor and
        the process it replaced name each other, and live references would nest forever)."""
        return copy.deepcopy(self)

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in TYPED}
        data = copy.deepcopy(data)
        for name in TYPED:
            value = getattr(self, name)
            data[name] = value.to_json() if value is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict, depth: int = 0) -> "Record":
        """`depth`: how deep in other records' `surge` / `retiring` this one sits (SIDE_DEPTH at most)."""
        known = {f.name for f in fields(cls)}
        rec = cls(**{k: v for k, v in data.items() if k in known and k not in TYPED},
                  settings=InPlace.from_json(data.get("settings")), placement=Placed.from_json(data.get("placement")),
                  provenance=Provenance.from_json(data.get("provenance")), rollout=Entry.from_json(data.get("rollout")))
        if not isinstance(rec.name, str) or not rec.name:
            raise ValueError("record has no name")
        rec.surge, rec.retiring = (_side(data.get(k), rec.name, depth + 1) for k in ("surge", "retiring"))
        return rec


SIDE_DEPTH = 8  # records nested in records deeper than this (never written so) are not read


def _side(data: object, name: str, depth: int) -> Record | None:
    """A surge's second process kept in the model's record; None when there is none or it cannot be read
    (its process is then not known: adoption goes on with the model's own)."""
    if not isinstance(data, dict) or not data or depth > SIDE_DEPTH:
        return None
    try:
        return Record.from_json({"name": name, **data}, depth)
    except (TypeError, ValueError):
        return None


class StateStore:
    def __init__(self, root: str | os.PathLike, writer: Callable[[Path, str], None] = atomic_write):
        self.root = Path(root)
        self.models_dir = self.root / "models"
        self.logs_dir = self.root / "logs"
        self.requests_dir = self.root / "requests"
        self._lock_fd: int | None = None
        self.problems: list[str] = []  # corrupt records seen by the last load_all() (and load() since)
        self.writer = writer           # seam: tests inject a writer that fails like a full disk
        # path -> the last failed write (or delete) of it, until it succeeds; replaced, never mutated,
        # so other threads (/metrics) may read it at any time
        self.write_failures: dict[str, StateWriteError] = {}

    # ---- every write goes through here ---------------------------------------------------------
    def _write(self, path: Path, text: str) -> None:
        try:
            make_private_dir(path.parent)
            self.writer(path, text)
        except OSError as exc:
            self._failed(StateWriteError(str(path), exc.errno, exc.strerror or str(exc)))
        self._succeeded(path)

    def _failed(self, err: StateWriteError) -> NoReturn:
        self.write_failures = {**self.write_failures, err.path: err}
        raise err

    def note_write(self, path: Path, exc: OSError | None) -> None:
        """A write done elsewhere (a model's log): keep its failure with the others, or forget it."""
        if exc is None:
            self._succeeded(path)
        else:
            err = StateWriteError(str(path), exc.errno, exc.strerror or str(exc))
            self.write_failures = {**self.write_failures, err.path: err}

    def _succeeded(self, path: Path) -> None:
        if str(path) in self.write_failures:
            self.write_failures = {k: v for k, v in self.write_failures.items() if k != str(path)}

    # ---- records -------------------------------------------------------------------------------
    def check_name(self, name: str) -> str:
        """Every path built from a model name goes through here (names.py: never a '/', '..', NUL, ...)."""
        if not is_model_name(name):
            raise StateNameError(f"refusing the model name {quote_cut(name)} in the state dir {self.root}: "
                                 f"{RULE_TEXT}")
        return name

    def record_path(self, name: str) -> Path:
        return self.models_dir / f"{self.check_name(name)}.json"

    def log_path(self, name: str, alt: bool = False) -> Path:
        """NAME.log, or NAME.surge.log (`alt`): a surge's new process writes the file the serving one
        does not, so each process's output stays its own (Record.log_alt says which is current)."""
        return self.logs_dir / f"{self.check_name(name)}{'.surge' if alt else ''}.log"

    def model_log(self, name: str) -> Path:
        """The log of the model's current process (`logs NAME`); a corrupt record: NAME.log (reported)."""
        rec = self.load(name)
        return self.log_path(name, bool(rec and rec.log_alt))

    def model_log_checked(self, name: str) -> tuple[Path, str | None]:
        """`model_log` and the problem of a corrupt record (None when fine), without touching `problems`
        (for the API's threads)."""
        rec, problem = self.read_record(name)
        return self.log_path(name, bool(rec and rec.log_alt)), problem

    def save(self, rec: Record) -> None:
        rec.updated_at = time.time()
        self._write(self.record_path(rec.name), json.dumps(rec.to_json(), indent=1, sort_keys=True))

    def load(self, name: str) -> Record | None:
        """The record of `name`; None when there is none, or when it is corrupt (then reported in
        `problems` and the log, like load_all(): every verb and endpoint goes on without it)."""
        rec, problem = self.read_record(name)
        if problem is not None:
            self._report(problem)
        return rec

    def read_record(self, name: str) -> tuple[Record | None, str | None]:
        """(record or None, the problem of a corrupt one or None); reports nothing."""
        path = self.record_path(name)
        try:
            return self._read(path), None
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError, TypeError, FileRefused) as exc:
            return None, corrupt(path, exc.reason if isinstance(exc, FileRefused) else exc)

    def _report(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)
        log.warning("%s", message)

    def _read(self, path: Path) -> Record:
        data = read_state_json(path, "a state record")
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        rec = Record.from_json(data)
        if not is_model_name(rec.name):
            raise ValueError(f"record name {quote_cut(rec.name)} is not a model name")
        if path.name != f"{rec.name}.json":
            raise ValueError(f"record name {quote_cut(rec.name)} does not match the file name {path.name}")
        return rec

    def load_all(self) -> dict[str, Record]:
        out: dict[str, Record] = {}
        self.problems = []
        for f in _json_files(self.models_dir):
            try:
                rec = self._read(f)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, TypeError, FileRefused) as exc:
                self._report(corrupt(f, exc.reason if isinstance(exc, FileRefused) else exc))
                continue
            out[rec.name] = rec
        return out

    def delete(self, name: str) -> None:
        path = self.record_path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._failed(StateWriteError(str(path), exc.errno, exc.strerror or str(exc)))
        self._succeeded(path)

    # ---- rollout history ----------------------------------------------------------------------
    def history_path(self, name: str) -> Path:
        return self.root / "history" / f"{self.check_name(name)}.json"

    def load_history(self, name: str) -> list[dict]:
        """Oldest first; empty when there is none, or when it is corrupt (reported in `problems`)."""
        path = self.history_path(name)
        try:
            data = read_state_json(path, "a rollout history")
            if not isinstance(data, list):
                raise ValueError("not a JSON list")
        except FileNotFoundError:
            return []
        except (OSError, ValueError, FileRefused) as exc:
            self._report(corrupt(path, exc.reason if isinstance(exc, FileRefused) else exc))
            return []
        return [e for e in data if isinstance(e, dict)]

    def append_history(self, name: str, entry: dict, keep: int = HISTORY_KEEP) -> None:
        entries = (self.load_history(name) + [entry])[-keep:]
        self._write(self.history_path(name), json.dumps(entries, indent=1, sort_keys=True))

    # ---- daemon facts --------------------------------------------------------------------------
    def owner_id(self) -> str:
        path = self.root / "owner_id"
        try:
            value = read_state_text(path, "the owner id", SMALL_LIMIT).strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        value = secrets.token_hex(8)
        self._write(path, value + "\n")
        return value

    def write_daemon_info(self, info: dict) -> None:
        self._write(self.root / "daemon.json", json.dumps(info, indent=1, sort_keys=True))

    def daemon_info(self) -> dict:
        try:
            data = json.loads(read_state_text(self.root / "daemon.json", "the daemon's facts"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError, FileRefused):
            return {}

    def manifest_paths(self) -> list[str]:
        paths = self.daemon_info().get("manifests")
        return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []

    # ---- lock ----------------------------------------------------------------------------------
    def try_lock(self) -> bool:
        """flock(LOCK_EX|LOCK_NB) on daemon.lock; False when another process holds it; StateWriteError
        when the state dir cannot be created or the lock file not opened for writing."""
        path = self.root / "daemon.lock"
        try:
            make_private_dir(self.root)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            why = LINK_WORDS if exc.errno == errno.ELOOP else exc.strerror or str(exc)
            raise StateWriteError(str(path), exc.errno, why) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StateWriteError(str(path), errno.EINVAL, "not a regular file; remove it (xgen-declare creates it)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    def lock(self, what: str) -> None:
        if not self.try_lock():
            raise StateBusyError(f"state dir {self.root} is in use by another xgen-declare process "
                                 f"(pid {self.lock_holder() or '?'}); {what}")

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def lock_holder(self) -> int | None:
        try:
            text = read_state_text(self.root / "daemon.lock", "the lock file", SMALL_LIMIT).strip()
            return int(text) if text else None
        except (OSError, ValueError, FileRefused):
            return None

    def is_locked(self) -> bool:
        """Some process holds the lock (a shared probe: needs only read access to daemon.lock)."""
        if self._lock_fd is not None:
            return True
        try:
            fd = os.open(self.root / "daemon.lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell; callers check the daemon's identity in /proc too
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    # ---- requests to a running daemon ----------------------------------------------------------
    def put_request(self, verb: str, names: list[str]) -> Path:
        path = self.requests_dir / f"{time.time_ns()}-{secrets.token_hex(3)}.json"
        self._write(path, json.dumps({"verb": verb, "names": names}))
        return path

    def take_requests(self) -> list[dict]:
        out = []
        for f in _json_files(self.requests_dir):
            try:
                data = json.loads(read_state_text(f, "a request", SMALL_LIMIT))
                if isinstance(data, dict) and isinstance(data.get("verb"), str):
                    out.append(data)
            except (OSError, ValueError, FileRefused):
                pass
            try:
                f.unlink()
            except OSError:
                pass
        return out


def held_ports(state_dir: str) -> dict[str, int]:
    """name -> port the state holds (so `render` shows the real ports once a daemon ran); empty when
    there is no (readable) state."""
    return {name: r.port for name, r in StateStore(state_dir).load_all().items() if r.port is not None}


def _json_files(directory: Path) -> list[Path]:
    """DIR/*.json in name order; none when the directory is missing or unreadable."""
    try:
        return sorted(directory.glob("*.json"))
    except OSError:
        return []
