"""Is a commit signed by an allowed key? git's own check (`%G?`, as `git verify-commit`) against an
allowed_signers file (ssh-keygen(1) ALLOWED SIGNERS), for SSH signatures.

The user's allowed_signers file is read once through the bounded reader (a regular file, at most
1 MiB) and copied into the source's state directory; git is pointed at the copy, so a FIFO or a huge
file named in the config never reaches ssh-keygen, and a file edited mid-check changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import MIB, read_bytes
from xgen_declare.sources.gitcmd import GitRunner

__all__ = ["SIGNATURE_WORDS", "Signature", "check_signature", "copy_allowed_signers"]

# git's %G? letters (git-log(1) PRETTY FORMATS), worded for a refusal
SIGNATURE_WORDS = {
    "N": "is not signed",
    "U": "is signed by a key that is not in allowed_signers",
    "B": "has a bad signature (the commit does not match it)",
    "X": "is signed with a signature that has expired",
    "Y": "is signed by a key that has expired",
    "R": "is signed by a revoked key",
    "E": "has a signature that cannot be checked (a missing key, or ssh-keygen failed)",
}


def copy_allowed_signers(source: str, dest: Path) -> str | None:
    """Copy the allowed_signers file into `dest` (atomically); the reason when it cannot be read."""
    try:
        data = read_bytes(source, MIB, what="an allowed_signers file")
    except FileRefused as exc:
        return f"source.verify.allowed_signers: {exc}"
    except OSError as exc:
        return f"source.verify.allowed_signers: cannot read {source}: {exc.strerror} (check the path and permissions)"
    if not data.strip():
        return f"source.verify.allowed_signers: {source} is empty: no commit could be verified (add a line " \
               "`EMAIL namespaces=\"git\" ssh-ed25519 AAAA...` per allowed key)"
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return None


@dataclass(frozen=True)
class Signature:
    letter: str            # git's %G?: G good (by an allowed key), N none, U, B, X, Y, R, E (see SIGNATURE_WORDS)
    key: str = ""          # the key's fingerprint (SHA256:...)
    signer: str = ""       # the principal allowed_signers names for it
    refusal: str | None = None  # the one-line reason when the commit is not applied


def check_signature(runner: GitRunner, repo: Path, commit: str, allowed_signers: Path) -> Signature:
    """`commit`'s signature checked against `allowed_signers`; `refusal` says why when it is not good."""
    res = runner.run("log", "-1", "--format=%G?%x00%GK%x00%GS", commit, "--", cwd=repo,
                     env=_with_signers(runner, allowed_signers))
    if not res.ok:
        return Signature("E", refusal=f"cannot check the signature of {commit[:12]}: {res.text()}")
    letter, _, rest = res.stdout.strip().partition("\x00")
    key, _, signer = rest.partition("\x00")
    if letter == "G":
        return Signature(letter, key, signer.strip())
    words = SIGNATURE_WORDS.get(letter, f"has a signature git rates {letter!r}")
    by = f" ({key})" if key else ""
    return Signature(letter, key, signer.strip(), f"commit {commit[:12]} {words}{by}; it is not applied (sign it "
                     "with a key listed in allowed_signers)")


def _with_signers(runner: GitRunner, allowed_signers: Path) -> dict[str, str]:
    """The runner's environment plus gpg.ssh.allowedSignersFile, as one more GIT_CONFIG_n entry."""
    env = runner.env()
    n = int(env["GIT_CONFIG_COUNT"])
    return {"GIT_CONFIG_COUNT": str(n + 1), f"GIT_CONFIG_KEY_{n}": "gpg.ssh.allowedSignersFile",
            f"GIT_CONFIG_VALUE_{n}": str(allowed_signers)}
