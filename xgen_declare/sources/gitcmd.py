"""The one way xgen-declare runs git: an argv (never a shell), in its own process group killed whole on
timeout (git's remote helpers and ssh with it), stdin closed, no prompt, neither the user's nor the
system's git config, and only the https, http, ssh and file transports (GIT_ALLOW_PROTOCOL).

Settings reach git through GIT_CONFIG_COUNT / GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n in the environment
(git >= 2.31), never through `-c` on the argv: the token's `http.extraHeader` must not appear in `ps`
nor in a log line that quotes the command. `GitResult.text()` scrubs the secrets from what git printed.

A fetch is bounded in bytes as well as in time (`max_fetch_bytes`): git writes what it receives into
objects/pack/tmp_pack_* (fetch.unpackLimit=1: never into loose objects; a dumb http server's packs arrive
as *.temp), watched four times a second; past the limit the fetch is killed, its temporary pack removed,
and the result says so (`over_limit`), so a repository of 1 GB never lands on the host's disk whole.

SSH: git runs GIT_SSH_COMMAND through `sh -c`; every element of it is `shlex.quote`d here, so a key or
known_hosts path is data, never shell syntax. BatchMode (no passphrase or host prompt) and
StrictHostKeyChecking=yes against the configured known_hosts.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GitResult", "GitRunner", "remove_leftovers"]

OUTPUT_LIMIT = 4 * 1024 * 1024  # stdout kept from one command (ls-tree of a huge repo is cut, then refused)
WATCH_EVERY = 0.25  # seconds between two looks at the size of a fetch in flight


@dataclass(frozen=True)
class GitResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    secrets: tuple[str, ...] = field(default=(), repr=False)
    truncated: bool = False  # stdout was longer than OUTPUT_LIMIT and was cut
    over_limit: bool = False  # a fetch wrote more than max_fetch_bytes and was killed

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def text(self) -> str:
        """git's last meaningful stderr line, secrets replaced by ***, for a one-line reason."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip() and not ln.startswith("hint:")]
        out = lines[-1] if lines else f"git exited {self.returncode}"
        for secret in self.secrets:
            if secret:
                out = out.replace(secret, "***")
        return out.removeprefix("fatal: ").removeprefix("error: ")


class GitRunner:
    """Runs `git ARGS` with the settings of one source. `config` are git settings (key -> value) passed
    in the environment; `token` (with `token_user`) becomes a Basic `http.extraHeader`."""

    def __init__(self, git: str = "git", *, timeout: float = 120.0, config: dict[str, str] | None = None,
                 token: str | None = None, token_user: str = "x-access-token", ssh_key_file: str | None = None,
                 known_hosts: str | None = None, max_fetch_bytes: int | None = None):
        self.git, self.timeout = git, timeout
        self.max_fetch_bytes = max_fetch_bytes
        self.config = dict(config or {})
        self.secrets: tuple[str, ...] = ()
        if token:
            basic = base64.b64encode(f"{token_user}:{token}".encode()).decode()
            self.config["http.extraHeader"] = f"Authorization: Basic {basic}"
            self.secrets = (token, basic)
        self.ssh_command = None
        if ssh_key_file or known_hosts:
            ssh = ["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
            if ssh_key_file:
                ssh += ["-i", ssh_key_file]
            if known_hosts:
                ssh += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
            self.ssh_command = " ".join(shlex.quote(a) for a in ssh)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "SSH_AUTH_SOCK", "TZ")}
        env = {**keep, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
               "GIT_ALLOW_PROTOCOL": "https:http:ssh:file", "GIT_PROTOCOL_FROM_USER": "0"}
        if self.ssh_command:
            env["GIT_SSH_COMMAND"] = self.ssh_command
        # gc.auto / maintenance.auto: no automatic gc after a fetch (it detaches, outlives the timeout and
        # runs outside the source's lock); sources/gc.py collects on its own schedule
        settings = {"protocol.version": "2", "core.askPass": "", "gc.auto": "0", "maintenance.auto": "false",
                    "fetch.unpackLimit": "1", **self.config}
        env["GIT_CONFIG_COUNT"] = str(len(settings))
        for i, (key, value) in enumerate(settings.items()):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env.update(extra or {})
        return env

    def run(self, *args: str, cwd: str | os.PathLike | None = None, timeout: float | None = None,
            env: dict[str, str] | None = None, input: str | None = None,
            max_stdout: int | None = None) -> GitResult:
        """`git ARGS` (`input` on its stdin, else none); a timeout kills its whole process group and comes
        back as timed_out. `max_stdout`: the command is killed once it printed more (over_limit; its output
        goes to a temporary file, watched like a fetch's packs, so a hostile remote fills no memory)."""
        argv = (self.git, *args)
        limit = self.timeout if timeout is None else timeout
        sink = tempfile.TemporaryFile() if max_stdout is not None else None
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=self.env(env), stdout=sink or subprocess.PIPE,
                                    stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            if sink is not None:
                sink.close()
            return GitResult(argv, 127, "", f"fatal: cannot run {self.git}: {exc.strerror}", secrets=self.secrets)
        packs = Path(cwd) / "objects" / "pack" if cwd is not None and args[0] == "fetch" else None
        try:
            if sink is not None:
                fd = sink.fileno()
                _, err = self._watched(proc, limit, lambda: os.fstat(fd).st_size, max_stdout)
                sink.seek(0)
                out = sink.read(max_stdout + 1)
            elif packs is not None and self.max_fetch_bytes:
                out, err = self._watched(proc, limit, lambda: _temporary_bytes(packs), self.max_fetch_bytes)
            else:
                out, err = proc.communicate(None if input is None else input.encode(), timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            return GitResult(argv, -9, "", f"fatal: git {args[0]} did not finish in {limit:g} s", True, self.secrets)
        except _OverLimit:
            _kill_group(proc)
            proc.communicate()
            if sink is not None:
                return self._printed_too_much(argv, max_stdout)
            _remove_temporary_packs(packs)
            mib = self.max_fetch_bytes / (1024 * 1024)
            return GitResult(argv, -9, "", f"fatal: the fetch passed {mib:g} MiB and was stopped", secrets=self.secrets,
                             over_limit=True)
        finally:
            if sink is not None:
                sink.close()
        out = out or b""
        if max_stdout is not None and len(out) > max_stdout:  # it finished before a look caught it
            return self._printed_too_much(argv, max_stdout)
        text = out[:OUTPUT_LIMIT].decode("utf-8", "replace")
        return GitResult(argv, proc.returncode, text, (err or b"").decode("utf-8", "replace"), secrets=self.secrets,
                         truncated=len(out) > OUTPUT_LIMIT)

    def _printed_too_much(self, argv: tuple[str, ...], bound: int) -> GitResult:
        return GitResult(argv, -9, "", f"fatal: git {argv[1]} printed over {bound} bytes and was stopped",
                         secrets=self.secrets, over_limit=True)

    def _watched(self, proc: subprocess.Popen, limit: float, size: Callable[[], int],
                 bound: int) -> tuple[bytes, bytes]:
        """proc.communicate(), looking at `size()` every WATCH_EVERY s; _OverLimit once it passes `bound`."""
        deadline = time.monotonic() + limit
        while True:
            try:
                return proc.communicate(timeout=max(0.0, min(WATCH_EVERY, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise
            if size() > bound:
                raise _OverLimit()


class _OverLimit(Exception):
    pass


def _temporary(name: str) -> bool:
    """A pack being received: tmp_pack_* (index-pack, the smart protocols), *.temp (a dumb http download)."""
    return name.startswith("tmp_") or name.endswith(".temp")


def _temporary_bytes(packs: Path) -> int:
    total = 0
    try:
        with os.scandir(packs) as entries:
            for entry in entries:
                if _temporary(entry.name):
                    try:
                        total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass  # renamed into place meanwhile
    except OSError:
        return 0
    return total


def remove_leftovers(repo: Path) -> list[str]:
    """Remove what a killed git leaves in `repo` (a timeout, a fetch over its limit, the daemon killed with
    -9): lock files (shallow.lock, packed-refs.lock, refs/**/*.lock, objects/info/**/*.lock), which would
    make every later fetch fail with "File exists", and temporary packs. Only for a caller that holds the
    source's lock: no git of ours runs in `repo` then. Returns the paths removed, relative to `repo`."""
    removed = []
    candidates = [*repo.glob("*.lock"), *(repo / "refs").rglob("*.lock"), *(repo / "objects" / "info").rglob("*.lock"),
                  *(p for p in (repo / "objects" / "pack").glob("*") if _temporary(p.name))]
    for path in candidates:
        try:
            if path.is_symlink() or path.is_file():
                path.unlink()
                removed.append(str(path.relative_to(repo)))
        except OSError:
            pass
    return sorted(removed)


def _remove_temporary_packs(packs: Path | None) -> None:
    """What a killed fetch leaves (objects/pack/tmp_*): the caller holds the source's lock, no other git runs."""
    if packs is None:
        return
    try:
        with os.scandir(packs) as entries:
            for entry in entries:
                if _temporary(entry.name):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
    except OSError:
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
