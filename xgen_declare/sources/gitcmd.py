"""The one way xgen-declare runs git: an argv (never a shell), in its own process group killed whole on
timeout (git's remote helpers and ssh with it), stdin closed, no prompt, neither the user's nor the
system's git config, and only the https, http, ssh and file transports (GIT_ALLOW_PROTOCOL).

Settings reach git through GIT_CONFIG_COUNT / GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n in the environment
(git >= 2.31), never through `-c` on the argv: the token's `http.extraHeader` must not appear in `ps`
nor in a log line that quotes the command. `GitResult.text()` scrubs the secrets from what git printed.

SSH: git runs GIT_SSH_COMMAND through `sh -c`; every element of it is `shlex.quote`d here, so a key or
known_hosts path is data, never shell syntax. BatchMode (no passphrase or host prompt) and
StrictHostKeyChecking=yes against the configured known_hosts.
"""

from __future__ import annotations

import base64
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass, field

__all__ = ["GitResult", "GitRunner"]

OUTPUT_LIMIT = 4 * 1024 * 1024  # stdout kept from one command (ls-tree of a huge repo is cut, then refused)


@dataclass(frozen=True)
class GitResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    secrets: tuple[str, ...] = field(default=(), repr=False)
    truncated: bool = False  # stdout was longer than OUTPUT_LIMIT and was cut

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
                 known_hosts: str | None = None):
        self.git, self.timeout = git, timeout
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
        settings = {"protocol.version": "2", "core.askPass": "", **self.config}
        env["GIT_CONFIG_COUNT"] = str(len(settings))
        for i, (key, value) in enumerate(settings.items()):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env.update(extra or {})
        return env

    def run(self, *args: str, cwd: str | os.PathLike | None = None, timeout: float | None = None,
            env: dict[str, str] | None = None) -> GitResult:
        """`git ARGS`; a timeout kills its whole process group and comes back as timed_out."""
        argv = (self.git, *args)
        limit = self.timeout if timeout is None else timeout
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=self.env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            return GitResult(argv, 127, "", f"fatal: cannot run {self.git}: {exc.strerror}", secrets=self.secrets)
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            return GitResult(argv, -9, "", f"fatal: git {args[0]} did not finish in {limit:g} s", True, self.secrets)
        out = out or b""
        text = out[:OUTPUT_LIMIT].decode("utf-8", "replace")
        return GitResult(argv, proc.returncode, text, (err or b"").decode("utf-8", "replace"), secrets=self.secrets,
                         truncated=len(out) > OUTPUT_LIMIT)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
