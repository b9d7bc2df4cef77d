"""What a git source is: `GitSpec` (URL, ref, path in the repo, credentials, verification), parsed from
the command line's `git+URL[#REF][//PATH]` or built from the config's `source:` section (config.py).

    git+https://git.example.org/ops/llm.git#main//manifests
    git+ssh://git@git.example.org/ops/llm.git#v1.2
    git+file:///srv/git/llm.git//hosts/common

Only these four schemes (https, http, ssh, file) are fetched; git's other transports (ext::, fd::, a
bare path that git would read as a local clone) are refused here and by GIT_ALLOW_PROTOCOL. Credentials
never sit in the URL (it reaches git's argv and logs): a token comes from `token_file`. Every check
raises `SourceError` whose text names the field and gives an example.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from xgen_declare.errors import FileRefused, SourceError
from xgen_declare.readers.bounded import open_regular

SCHEMES = ("https", "http", "ssh", "file")
EXAMPLE = "git+https://git.example.org/ops/llm.git#main//manifests"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?")


@dataclass(frozen=True)
class GitSpec:
    """One git source, every path absolute (the config's are resolved against its file)."""

    url: str
    ref: str = "HEAD"
    path: str = ""
    interval: float = 30.0
    ssh_key_file: str | None = None
    known_hosts: str | None = None
    token_file: str | None = None
    token_user: str = "x-access-token"
    allowed_signers: str | None = None
    timeout: float = 120.0
    max_tree_bytes: int = 64 * 1024 * 1024
    allow_force_push: bool = True  # follow a ref moved to history that does not descend from the current commit
    webhook_secret_file: str | None = None  # the secret webhooks are signed with (the daemon's API route)

    @property
    def scheme(self) -> str:
        return urllib.parse.urlsplit(self.url).scheme

    @property
    def pinned(self) -> bool:
        """The ref is a commit id: nothing to follow."""
        return bool(_SHA.fullmatch(self.ref))


def check_url(url: str, field: str = "source.git") -> str:
    """`url` if git may fetch it; SourceError naming `field` otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise SourceError(field, f"{url!r} is not a git URL of a scheme xgen-declare fetches "
                          f"({', '.join(s + '://' for s in SCHEMES)})",
                          "e.g. https://git.example.org/ops/llm.git or file:///srv/git/llm.git")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise SourceError(field, f"{url!r}: a file:// URL names an absolute path on this host",
                              "e.g. file:///srv/git/llm.git")
    elif not parts.hostname:
        raise SourceError(field, f"{url!r} has no host", "e.g. https://git.example.org/ops/llm.git")
    if parts.password is not None or (parts.username and parts.scheme in ("http", "https")):
        raise SourceError(field, "the URL holds credentials, which would reach git's command line and the logs",
                          "remove them from the URL and put the token in a file named by source.token_file")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise SourceError(field, f"{url!r} contains whitespace or control characters", "percent-encode the character")
    return url


def check_ref(ref: str, field: str = "source.ref") -> str:
    """A branch, a tag, `HEAD` or a commit id, in git's ref-name rules (git-check-ref-format(1))."""
    bad = (not ref or ref.startswith(("-", "/", ".")) or ref.endswith(("/", ".", ".lock")) or ".." in ref
           or "//" in ref or "@{" in ref or ref == "@" or any(c in ref for c in " ~^:?*[\\")
           or any(ord(c) < 32 or ord(c) == 127 for c in ref))
    if bad:
        raise SourceError(field, f"{ref!r} is not a git ref name", "use a branch (main), a tag (v1.2), "
                          "refs/heads/NAME or a full 40-character commit id")
    return ref


def check_path(path: str, field: str = "source.path") -> str:
    """A directory inside the repository, normalised ("" for its top); never absolute, never `..`."""
    if path.startswith("/") or "\\" in path or any(ord(c) < 32 for c in path):
        raise SourceError(field, f"{path!r} is not a relative path inside the repository",
                          "e.g. manifests or hosts/gpu-a (relative to the repository's top)")
    parts = [p for p in PurePosixPath(path).parts if p != "."]
    if ".." in parts:
        raise SourceError(field, f"{path!r} points outside the repository", "remove `..`, e.g. manifests")
    return "/".join(parts)


def check_files_fit(url: str, token_file: str | None, ssh_key_file: str | None, known_hosts: str | None,
                    names: dict[str, str] | None = None) -> None:
    """A token is for https:// (or http://), a key and known_hosts for ssh://; SourceError otherwise, naming
    the setting as `names` spells it (the config's `token_file`, the command line's `--token-file`)."""
    names = {"token_file": "token_file", "ssh_key_file": "ssh_key_file", "known_hosts": "known_hosts", **(names or {})}
    scheme = url.partition("://")[0]
    if token_file and scheme not in ("http", "https"):
        name = names["token_file"]
        raise SourceError(name, f"{name} is for https:// repositories, not {scheme}://",
                          f"remove {name}, or use {names['ssh_key_file']} for ssh://")
    for field, path in (("ssh_key_file", ssh_key_file), ("known_hosts", known_hosts)):
        if path and scheme != "ssh":
            name = names[field]
            raise SourceError(name, f"{name} is for ssh:// repositories, not {scheme}://",
                              f"remove {name}, or use an ssh:// URL")


def with_files(spec: GitSpec, files: dict[str, str | None], names: dict[str, str]) -> GitSpec:
    """`spec` with the credential and verification files `files` gives (GitSpec field -> path, None: not
    given), each made absolute and checked now: it fits the URL's scheme (check_files_fit) and is a
    readable regular file. SourceError names the setting as `names` spells it (`--token-file`)."""
    given = {field: path for field, path in files.items() if path is not None}
    try:
        check_files_fit(spec.url, given.get("token_file"), given.get("ssh_key_file"), given.get("known_hosts"), names)
    except SourceError as exc:  # "--token-file: is for https:// ...", the name said once
        raise SourceError(exc.field, exc.message.removeprefix(f"{exc.field} "), exc.hint) from None
    checked = {}
    for field, path in given.items():
        name = names.get(field, field)
        if not path.strip():
            raise SourceError(name, "the path is empty", "give the file's path")
        path = os.path.abspath(path)
        try:
            os.close(open_regular(path))  # a FIFO or a device would hang or flood git, ssh or ssh-keygen
        except FileRefused as exc:
            raise SourceError(name, str(exc)) from None
        except OSError as exc:
            raise SourceError(name, f"cannot read {path}: {exc.strerror}", "check the path and permissions") from None
        checked[field] = path
    return replace(spec, **checked)


def parse_interval(value: str | float | int, field: str = "source.interval") -> float:
    """Seconds from `30`, `30s`, `5m`, `1h30m`; at least 1 s."""
    if isinstance(value, bool):
        raise SourceError(field, f"{value!r} is not a duration", "e.g. 30s, 5m or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip()
        m = _DURATION.fullmatch(text)
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and m and any(m.groups()):
            h, mins, s = (float(g) if g else 0.0 for g in m.groups())
            seconds = h * 3600 + mins * 60 + s
        else:
            raise SourceError(field, f"{value!r} is not a duration", "e.g. 30s, 5m or 1h")
    if seconds < 1:
        raise SourceError(field, f"{value!r} is below 1 s", "poll at most once a second, e.g. 30s")
    return seconds


def parse_git_argument(text: str) -> GitSpec:
    """`git+URL[#REF][//PATH]` (the command line's form) as a GitSpec; SourceError when it is not one."""
    if not text.startswith("git+"):
        raise SourceError("source", f"{text!r} does not start with git+", f"e.g. {EXAMPLE}")
    rest = text[len("git+"):]
    scheme, sep, after = rest.partition("://")
    if not sep:
        raise SourceError("source", f"{text!r} has no scheme (https://, ssh://, file://)", f"e.g. {EXAMPLE}")
    path = ""
    cut = after.find("//", 1 if scheme == "file" else 0)
    if cut >= 0:
        after, path = after[:cut], after[cut + 2:]
    after, _, ref = after.partition("#")
    if "#" in path:  # the //PATH came before #REF
        path, _, ref = path.partition("#")
    url = check_url(f"{scheme}://{after}", "source")
    return GitSpec(url=url, ref=check_ref(ref, "source (#REF)") if ref else "HEAD",
                   path=check_path(path, "source (//PATH)"))
