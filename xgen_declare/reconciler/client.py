"""The client side of a running daemon, and the read-only view of a state dir: is a daemon serving it,
hand it a `down`/`up`/`restart` request, wait for states, and the rows `status` shows (with what the
daemon could not write yet)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, fields

from xgen_declare.processes import pids
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.states import RUNNING_STATES, State


def daemon_pid(store: StateStore) -> int | None:
    """The pid of the daemon serving this state dir, when one runs (lock held + identity matches)."""
    info = store.daemon_info()
    pid = info.get("pid")
    if not isinstance(pid, int) or not store.is_locked():
        return None
    if not pids.matches(pid, info.get("start_ticks"), info.get("boot_id")):
        return None
    return pid


def ask_daemon(store: StateStore, pid: int, verb: str, names: list[str], timeout: float = 30.0) -> bool:
    """Drop a request for the daemon, wake it (SIGHUP) and wait until it took the request."""
    path = store.put_request(verb, names)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


def wait_states(store: StateStore, names: list[str], done: frozenset[State], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = store.load_all()
        if all(n not in recs or recs[n].state_enum in done for n in names):
            return True
        time.sleep(0.1)
    return False


def write_failures(store: StateStore, info: dict | None = None) -> list[dict]:
    """`state_write_failed` of the running daemon ({path, errno, code, error}); empty without a daemon.
    `info`: daemon.json as already read, when the caller knows a daemon runs."""
    if info is None:
        info = store.daemon_info() if daemon_pid(store) is not None else {}
    found = info.get("state_write_failed")
    return [f for f in found if isinstance(f, dict) and isinstance(f.get("path"), str)] \
        if isinstance(found, list) else []


def format_write_failure(f: dict) -> str:
    """The same text as str(StateWriteError): cannot write PATH: ERROR (errno N CODE)."""
    code = f" {f['code']}" if f.get("code") else ""
    return f"cannot write {f['path']}: {f.get('error')} (errno {f.get('errno')}{code})"


def live_records(store: StateStore, info: dict) -> dict[str, Record]:
    """The records, with what the running daemon could not write yet (daemon.json "unsaved") over them."""
    records = store.load_all()
    unsaved = info.get("unsaved")
    for name, data in (unsaved.items() if isinstance(unsaved, dict) else ()):
        try:
            records[name] = Record.from_json(data)
        except (TypeError, ValueError):
            pass
    return records


@dataclass(frozen=True)
class StatusRow:
    """One model as `status`, the API, /metrics and doctor show it; `to_json()` is the `status -o json` object."""

    name: str
    state: State
    backend: str | None
    pid: int | None                 # only while the recorded process is alive
    port: int | None
    endpoint: str | None
    restarts: int
    uptime: int | None              # seconds since it started, while alive
    last_error: str | None
    manifest_error: str | None
    held: bool
    file: str | None
    state_write_failed: str | None  # why the daemon cannot write its record now
    spec_hash: str | None
    provenance: Provenance | None    # written as its JSON (file, sha256, commit, dirty)
    last_good_spec_hash: str | None
    rollout_error: str | None
    surge: dict | None              # a surge's new process: spec_hash, pid, port, state
    retiring: dict | None           # a surge's old process, draining
    download: dict | None = None    # while its source is fetched: done, total (bytes), rate (bytes/s)
    download_text: str | None = None  # "fetching hf://...: 1.2/4.8 GiB" (the table's error column)
    downloaded_bytes: int = 0       # bytes the daemon fetched for it (/metrics), not in -o json

    @property
    def error(self) -> str | None:
        """What to show in one column: the manifest's problem, else the last error, else a rollback."""
        return (self.manifest_error and f"manifest: {self.manifest_error}" or self.last_error
                or self.rollout_error and f"rolled back: {self.rollout_error}" or self.download_text) or None

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("download", "download_text", "downloaded_bytes")}
        if self.download is not None:  # only while downloading
            data["download"] = dict(self.download)
        data["state"] = self.state.value
        data["provenance"] = self.provenance.to_json() if self.provenance is not None else None
        return data


def status_rows(store: StateStore, proc_root: str = "/proc", names: list[str] | None = None,
                records: dict[str, Record] | None = None) -> list[StatusRow]:
    """`status -o json` objects. A record claiming a running state whose process is gone shows Exited while a
    daemon runs (it records what followed within a step) and Failed without one.
    `records`, when given, receives the records the rows were made from (one read for both)."""
    now = time.time()
    daemon = daemon_pid(store) is not None
    info = store.daemon_info() if daemon else {}
    failed = {f["path"]: format_write_failure(f) for f in write_failures(store, info)}
    live = live_records(store, info)
    if records is not None:
        records.update(live)
    rows = []
    for name, r in sorted(live.items()):
        if names and name not in names:
            continue
        st = r.state_enum
        alive = pids.matches(r.pid, r.start_ticks, r.boot_id, proc_root)
        last_error = r.last_error
        write_failed = failed.get(str(store.record_path(name)))
        if st == State.STOPPING and not alive and not daemon:
            st = State.STOPPED
        elif st in RUNNING_STATES and st != State.STOPPING and not alive:
            # with a daemon this is the moment before it records what followed (its own error, a restart):
            # Exited, never a settled state a script could stop waiting on; without one nobody will record
            if daemon:
                st, last_error = State.EXITED, f"process {r.pid} is gone (the daemon has not recorded what followed)"
            else:
                st, last_error = State.FAILED, f"process {r.pid} is gone (no daemon noticed yet)"
        up = round(now - r.started_at) if alive and r.started_at else None
        rows.append(StatusRow(name=name, state=st, backend=r.backend or None, pid=r.pid if alive else None,
                              port=r.port, endpoint=r.endpoint, restarts=r.restarts, uptime=up,
                              last_error=last_error, manifest_error=r.manifest_error, held=r.held, file=r.file,
                              state_write_failed=write_failed, spec_hash=r.spec_hash, provenance=r.provenance,
                              last_good_spec_hash=r.last_good_spec_hash, rollout_error=r.rollout_error,
                              surge=_side(r.surge), retiring=_side(r.retiring),
                              download=_download(r.download) if daemon else None,
                              download_text=(r.download or {}).get("text") if daemon else None,
                              downloaded_bytes=r.downloaded_bytes))
    return rows


def _download(data: dict | None) -> dict | None:
    if not isinstance(data, dict):
        return None
    return {k: data.get(k) for k in ("done", "total", "rate")}


def _side(side: Record | None) -> dict | None:
    """A surge's second process as `status` shows it: its spec hash, pid and port."""
    if side is None:
        return None
    return {"spec_hash": side.spec_hash, "pid": side.pid, "port": side.port, "state": side.state}


def fmt_uptime(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
