"""Git repositories for tests: a bare repo with commits, pushed from a work tree, optionally signed with
an SSH key generated in the test. Every git and ssh-keygen call is an argv (never a shell), bounded in
time, with the user's and the system's git config kept out (GIT_CONFIG_GLOBAL=/dev/null,
GIT_CONFIG_NOSYSTEM=1) so that a developer's `commit.gpgsign` or URL rewrites change nothing.

    signer = SshSigner.generate(tmp_path / "keys", "alice@example.org")
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    sha = repo.commit({"manifests/a.yaml": "..."}, "add a", signer=signer)
    repo.push()                                   # to the bare repo (origin), branch main
    allowed = write_allowed_signers(tmp_path / "allowed_signers", [signer])
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GIT_ENV", "SshSigner", "WorkRepo", "git", "make_bare", "signature_status", "write_allowed_signers"]

TIMEOUT = 60

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
           "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.org",
           "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.org"}


def git(*args: str, cwd: str | os.PathLike | None = None, config: dict[str, str] | None = None,
        env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`git -c K=V ... ARGS` in `cwd`, text output captured; raises on a non-zero exit when `check`."""
    argv = ["git"]
    for key, value in (config or {}).items():
        argv += ["-c", f"{key}={value}"]
    proc = subprocess.run(argv + list(args), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, **GIT_ENV, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def make_bare(path: str | os.PathLike, branch: str = "main") -> Path:
    """An empty bare repository at `path` whose HEAD is `branch`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", f"--initial-branch={branch}", str(path))
    return path


@dataclass(frozen=True)
class SshSigner:
    """An ed25519 key made by `ssh-keygen` for the test, and the principal (email) it signs as."""

    key: Path
    principal: str

    @classmethod
    def generate(cls, folder: str | os.PathLike, principal: str, name: str | None = None) -> "SshSigner":
        if shutil.which("ssh-keygen") is None:
            raise RuntimeError("ssh-keygen is missing (scripts/install-git-tools.sh installs openssh-client)")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        key = folder / (name or principal.split("@")[0])
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
                       check=True, capture_output=True, timeout=TIMEOUT)
        return cls(key, principal)

    @property
    def public_key(self) -> str:
        return Path(f"{self.key}.pub").read_text().strip()

    def config(self) -> dict[str, str]:
        """The `git -c` settings that sign a commit with this key."""
        return {"gpg.format": "ssh", "user.signingkey": str(self.key), "commit.gpgsign": "true"}


def write_allowed_signers(path: str | os.PathLike, signers: list[SshSigner]) -> Path:
    """An allowed_signers file (ssh-keygen(1) ALLOWED SIGNERS) trusting `signers` for git commits."""
    path = Path(path)
    path.write_text("".join(f'{s.principal} namespaces="git" {s.public_key}\n' for s in signers))
    return path


def signature_status(repo: str | os.PathLike, commit: str, allowed_signers: str | os.PathLike) -> str:
    """git's %G? for `commit` checked against `allowed_signers`: G good, U good but not allowed, N none, B bad."""
    return git("log", "-1", "--format=%G?", commit, cwd=repo,
               config={"gpg.ssh.allowedSignersFile": str(allowed_signers)}).stdout.strip()


@dataclass
class WorkRepo:
    """A work tree whose `origin` is a bare repository: commit files, push, force-push."""

    path: Path
    bare: Path
    branch: str = "main"

    @classmethod
    def create(cls, path: str | os.PathLike, bare: str | os.PathLike, branch: str = "main") -> "WorkRepo":
        path, bare = Path(path), Path(bare)
        if not (bare / "HEAD").exists():
            make_bare(bare, branch)
        git("init", "-q", f"--initial-branch={branch}", str(path))
        git("remote", "add", "origin", str(bare), cwd=path)
        return cls(path, bare, branch)

    def commit(self, files: dict[str, str | None], message: str, signer: SshSigner | None = None) -> str:
        """Write (or, for None, delete) `files`, commit them all, return the commit's id."""
        for name, text in files.items():
            target = self.path / name
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git("add", "-A", cwd=self.path)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.path,
            config=signer.config() if signer else {"commit.gpgsign": "false"})
        return self.head()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.path).stdout.strip()

    def push(self, force: bool = False, remote: str = "origin") -> None:
        git("push", "-q", *(["--force"] if force else []), remote, f"HEAD:refs/heads/{self.branch}", cwd=self.path)

    def reset_hard(self, commit: str) -> None:
        """Move the branch back to `commit` (then `push(force=True)` rewrites the remote's history)."""
        git("reset", "-q", "--hard", commit, cwd=self.path)
