"""A fake HuggingFace Hub on loopback for tests and benches: a real threaded HTTP server that speaks the part
of the Hub's HTTP API that `huggingface_hub` uses, so the real client (`HfApi.model_info`, `hf_hub_download`,
`snapshot_download`) runs against it unchanged (pass `endpoint=hub.endpoint`, or set HF_ENDPOINT before
`huggingface_hub` is first imported: it reads the variable once).

What it serves (as huggingface_hub 2.x sends and reads it):
- GET /api/models/{repo}[/revision/{rev}]: `id`, `sha` (the commit), `siblings` [{rfilename}], with `size`,
  `blobId` and `lfs` {sha256, size, pointerSize} when asked with `blobs=true` (files_metadata=True);
  `expand=...` returns only the properties named.
- GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=: the listing snapshot_download reads.
- HEAD/GET /{repo}/resolve/{rev}/{file}: a plain file answers 200 with ETag (its git blob sha1),
  Content-Length, X-Repo-Commit, Accept-Ranges; an LFS file (weights: .gguf, .safetensors, .bin...)
  answers 302 with X-Linked-Etag (its sha256), X-Linked-Size and a Location on a second listener (the "CDN",
  another origin, so the client drops the token there as it does for the real CDN). Range gives 206.
- Errors as the Hub sends them, with X-Error-Code and X-Error-Message: RepoNotFound (401 without a token,
  404 with one), GatedRepo (401 without a token, 403 with a token that is not allowed), RevisionNotFound
  (404), EntryNotFound (404, with X-Repo-Commit), 401 "Invalid credentials in Authorization header".

Plain files for URL sources (`hub.add_file("x.gguf", data, token=None)`): GET/HEAD {endpoint}/files/x.gguf, with
Range; a token, when set, must come as `Authorization: Bearer`; `hub.faults.redirect_files` answers 302 to the
same file on the second listener (another origin, where no token is needed nor may arrive).

Fault knobs (`hub.faults`, changeable while it runs): `drop_after` (close the connection after N bytes of a
file's body; `drop_times` how often, None = always), `wrong_bytes` (same length, other content), `rate`
(bytes/s), `not_found` (a file listed in the model info but answered 404 EntryNotFound). `hub.served` counts
the body bytes sent per (repo, file), `hub.requests` logs every request.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["FakeHub", "Faults", "Repo", "git_blob_sha", "LFS_SUFFIXES"]

_FLIP = bytes(range(255, -1, -1))  # every byte inverted: same length, other content
LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack")


def git_blob_sha(data: bytes) -> str:
    """The git object id of a file's content: the ETag the Hub gives a file not stored in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """One model repo: commits (sha -> {path: bytes}) and refs (branch or tag -> sha)."""
    repo_id: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    token: str | None = None        # set: a request must carry `Authorization: Bearer <token>`
    gated: bool = False             # with token: GatedRepo errors instead of RepoNotFound
    lfs: set[str] = field(default_factory=set)  # paths stored in LFS beyond the suffix rule
    _digests: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, repr=False)

    def is_lfs(self, path: str) -> bool:
        return path in self.lfs or path.endswith(LFS_SUFFIXES)

    def digests(self, sha: str, path: str) -> tuple[str, str]:
        """(git blob sha1, sha256) of a file at a commit, computed once (a bench's 512 MiB file is asked
        for on every model info, HEAD and GET: hashing it each time made the fake hub the bottleneck)."""
        key = (sha, path)
        if key not in self._digests:
            data = self.commits[sha][path]
            self._digests[key] = (git_blob_sha(data), hashlib.sha256(data).hexdigest())
        return self._digests[key]

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


@dataclass
class Hold:
    """A pause in one file's body at byte `at` (of the file): `reached` is set once the bytes before it are
    sent and the server waits; `release.set()` lets it go on. One request is held; later ones pass."""
    at: int
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Faults:
    drop_after: dict[str, int] = field(default_factory=dict)  # file path -> bytes sent before the cut
    drop_times: int | None = 1                                # cuts left; None = every request
    wrong_bytes: set[str] = field(default_factory=set)        # file paths served with other bytes
    rate: float | None = None                                 # bytes/s for every file body
    ignore_range: bool = False                                # answer 200 with the whole file to a Range
    redirect_files: bool = False                              # /files/X answers 302 to the other listener
    not_found: set[str] = field(default_factory=set)          # repo file paths listed but answered 404
    holds: dict[str, Hold] = field(default_factory=dict)      # file path -> a pause in its body (FakeHub.hold)


class FakeHub:
    """`with FakeHub() as hub: hub.add_repo("org/m", {"m.gguf": b"..."})`; `hub.endpoint` is its URL."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.files: dict[str, tuple[bytes, str | None]] = {}  # /files/PATH -> (bytes, token)
        self.faults = Faults()
        self.served: dict[tuple[str, str], int] = {}
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._hub = self._cdn = None
        self._threads: list[threading.Thread] = []

    # ---- repos ---------------------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main", token: str | None = None,
                 gated: bool = False) -> str:
        """A new repo whose `branch` holds `files`; returns the commit sha."""
        self.repos[repo_id] = Repo(repo_id, token=token, gated=gated)
        return self.commit(repo_id, files, branch=branch)

    def commit(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main") -> str:
        """A new commit with exactly `files` on `branch` (moved if it exists); returns its sha."""
        repo = self.repos[repo_id]
        parent = repo.refs.get(branch, "")
        h = hashlib.sha1(f"{repo_id}\0{parent}\0{branch}".encode())
        for path in sorted(files):
            h.update(f"{path}\0{git_blob_sha(files[path])}\0".encode())
        sha = h.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[branch] = sha
        return sha

    def add_file(self, path: str, data: bytes, *, token: str | None = None) -> str:
        """A plain file at /files/PATH (a URL source); returns its URL."""
        self.files[path] = (data, token)
        return f"{self.endpoint}/files/{quote(path)}"

    def hold(self, path: str, at: int) -> Hold:
        """Pause the next body of file `path` (a repo file's path, or a /files/ path) once `at` bytes of the
        file are sent, until the test releases it: "while it downloads" as a seam, not a race against a
        rate. The hub's stop releases it too."""
        self.faults.holds[path] = held = Hold(at)
        return held

    def tag(self, repo_id: str, name: str, sha: str) -> None:
        self.repos[repo_id].refs[name] = sha

    @classmethod
    def from_dir(cls, root: str | Path) -> "FakeHub":
        """Each ROOT/ORG/NAME directory becomes repo ORG/NAME whose `main` holds the files under it."""
        hub, root = cls(), Path(root)
        for repo_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
            files = {str(f.relative_to(repo_dir)): f.read_bytes() for f in sorted(repo_dir.rglob("*")) if f.is_file()}
            hub.add_repo(f"{repo_dir.parent.name}/{repo_dir.name}", files)
        return hub

    # ---- lifecycle -----------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        assert self._hub is not None, "FakeHub not started"
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        assert self._cdn is not None, "FakeHub not started"
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def start(self) -> "FakeHub":
        self._stopping.clear()
        self._hub = _Server(("127.0.0.1", 0), _Handler, self, cdn=False)
        self._cdn = _Server(("127.0.0.1", 0), _Handler, self, cdn=True)
        for srv in (self._hub, self._cdn):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                                 name="fakehub")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for srv in (self._hub, self._cdn):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for t in self._threads:
            t.join(5)
        self._threads.clear()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def bytes_served(self, repo_id: str, path: str) -> int:
        with self._lock:
            return self.served.get((repo_id, path), 0)

    # ---- used by the handler -------------------------------------------------------------------------
    def _log(self, **entry) -> None:
        with self._lock:
            self.requests.append(entry)

    def _count(self, key: tuple[str, str], n: int) -> None:
        with self._lock:
            self.served[key] = self.served.get(key, 0) + n

    def _take_drop(self, path: str) -> int | None:
        """Bytes to send before cutting this response, or None; spends one cut."""
        with self._lock:
            if path not in self.faults.drop_after:
                return None
            if self.faults.drop_times is not None:
                if self.faults.drop_times <= 0:
                    return None
                self.faults.drop_times -= 1
            return self.faults.drop_after[path]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, hub: FakeHub, *, cdn: bool) -> None:
        self.hub, self.is_cdn = hub, cdn
        super().__init__(addr, handler)

    def handle_error(self, request, client_address) -> None:
        pass  # a client that went away (a cut, a killed process) is what tests do on purpose: no traceback


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: tests read hub.requests
        pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    # ---- routing -------------------------------------------------------------------------------------
    def _dispatch(self, *, head: bool) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        query = {k: ",".join(v) if k == "expand" else v[-1] for k, v in parse_qs(url.query).items()}
        segs = [unquote(s) for s in url.path.strip("/").split("/")]
        hub._log(method=self.command, path=url.path, query=query, range=self.headers.get("Range"),
                 auth=self.headers.get("Authorization"), cdn=self.server.is_cdn)
        try:
            if segs[:1] == ["files"] and len(segs) >= 2:
                return self._plain("/".join(segs[1:]), head=head)
            if self.server.is_cdn and segs[:1] == ["cdn"] and len(segs) >= 5:
                repo = self._repo("/".join(segs[1:3]), auth=False)
                return self._file(repo, segs[3], "/".join(segs[4:]), head=head, via_cdn=True)
            if self.server.is_cdn:
                raise _HubError(404, None, "Not found")
            if segs[:2] == ["api", "models"] and len(segs) >= 4:
                return self._api(segs[2:], query, head=head)
            for i in (2, 1):
                if len(segs) > i + 2 and segs[i] == "resolve":
                    repo = self._repo("/".join(segs[:i]))
                    return self._file(repo, segs[i + 1], "/".join(segs[i + 2:]), head=head, via_cdn=False)
            raise _HubError(404, None, "Not found")
        except _HubError as err:
            self._error(err, head=head)

    def _repo(self, repo_id: str, *, auth: bool = True) -> Repo:
        repo = self.server.hub.repos.get(repo_id)
        sent = self.headers.get("Authorization", "")
        token = sent[7:] if sent.startswith("Bearer ") else None
        if repo is None:
            raise _HubError(404 if token else 401, "RepoNotFound", "Repository not found")
        if auth and repo.token is not None and token != repo.token:
            if token is not None and not repo.gated:
                raise _HubError(401, None, "Invalid credentials in Authorization header")
            if repo.gated:
                status = 403 if token else 401
                raise _HubError(status, "GatedRepo", f"Access to model {repo_id} is restricted. You must have "
                                "access to it and be authenticated to access it. Please log in.")
            raise _HubError(401, "RepoNotFound", "Repository not found")
        return repo

    def _commit(self, repo: Repo, revision: str) -> str:
        sha = repo.resolve(revision)
        if sha is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return sha

    # ---- /api/models ---------------------------------------------------------------------------------
    def _api(self, rest: list[str], query: dict, *, head: bool) -> None:
        for n in (2, 1):
            if len(rest) > n and rest[n] in ("revision", "tree"):
                break
        else:
            n = min(2, len(rest))
        repo = self._repo("/".join(rest[:n]))
        kind, tail = (rest[n], rest[n + 1:]) if len(rest) > n else ("revision", ["main"])
        sha = self._commit(repo, tail[0] if tail else "main")
        if kind == "tree":
            body = self._tree(repo, sha, "/".join(tail[1:]), recursive=query.get("recursive", "") in ("true", "True", "1"))
        else:
            body = self._info(repo, sha, blobs=query.get("blobs", "") in ("true", "True", "1"),
                              expand=query.get("expand"))
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head=head)

    def _info(self, repo: Repo, sha: str, *, blobs: bool, expand: str | None) -> dict:
        files = repo.commits[sha]
        siblings = []
        for path in sorted(files):
            sib: dict = {"rfilename": path}
            if blobs:
                data = files[path]
                git, sha256 = repo.digests(sha, path)
                sib.update(size=len(data), blobId=git)
                if repo.is_lfs(path):
                    sib["lfs"] = {"sha256": sha256, "size": len(data), "pointerSize": 134}
            siblings.append(sib)
        info = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": sha,
                "private": repo.token is not None and not repo.gated, "gated": "manual" if repo.gated else False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
                "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
                "usedStorage": sum(len(d) for d in files.values())}
        if expand:
            keep = set(expand.split(",")) | {"_id", "id"}
            info = {k: v for k, v in info.items() if k in keep}
        return info

    def _tree(self, repo: Repo, sha: str, under: str, *, recursive: bool) -> list[dict]:
        files = repo.commits[sha]
        prefix = f"{under.strip('/')}/" if under.strip("/") else ""
        out, dirs = [], set()
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            if "/" in rest and not recursive:
                dirs.add(prefix + rest.split("/")[0])
                continue
            for i, _ in enumerate(rest.split("/")[:-1]):
                dirs.add(prefix + "/".join(rest.split("/")[: i + 1]))
            data = files[path]
            git, sha256 = repo.digests(sha, path)
            entry: dict = {"type": "file", "oid": git, "size": len(data), "path": path}
            if repo.is_lfs(path):
                entry["lfs"] = {"oid": sha256, "size": len(data), "pointerSize": 134}
            out.append(entry)
        out += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                for d in sorted(dirs)]
        if prefix and not out:
            raise _HubError(404, "EntryNotFound", f"{under} does not exist on \"{sha}\"", commit=sha)
        return out

    # ---- files ---------------------------------------------------------------------------------------
    def _plain(self, path: str, *, head: bool) -> None:
        hub = self.server.hub
        if path not in hub.files:
            raise _HubError(404, None, "Not found")
        data, token = hub.files[path]
        if not self.server.is_cdn and hub.faults.redirect_files:
            return self._send(302, b"", {"Location": f"{hub.cdn}/files/{quote(path)}"}, head=head)
        if token is not None and not self.server.is_cdn and self.headers.get("Authorization") != f"Bearer {token}":
            raise _HubError(401, None, "Invalid credentials in Authorization header")
        self._body("files", path, data, {"Accept-Ranges": "bytes", "ETag": f'"{git_blob_sha(data)}"'}, head=head)

    def _file(self, repo: Repo, revision: str, path: str, *, head: bool, via_cdn: bool) -> None:
        sha = self._commit(repo, revision)
        data = repo.commits[sha].get(path)
        if data is None or path in self.server.hub.faults.not_found:
            raise _HubError(404, "EntryNotFound", "Entry not found", commit=sha)
        meta = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if repo.is_lfs(path) and not via_cdn:
            git, sha256 = repo.digests(sha, path)
            location = f"{self.server.hub.cdn}/cdn/{quote(repo.repo_id)}/{sha}/{quote(path)}"
            meta.update({"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data)), "Location": location,
                         "ETag": f'W/"{git[:16]}"'})
            return self._send(302, b"", meta, head=head)
        git, sha256 = repo.digests(sha, path)
        etag = sha256 if repo.is_lfs(path) else git
        meta["ETag"] = f'"{etag}"'
        self._body(repo.repo_id, path, data, meta, head=head)

    def _body(self, repo_id: str, path: str, data: bytes, meta: dict, *, head: bool) -> None:
        hub = self.server.hub
        if path in hub.faults.wrong_bytes:
            data = data.translate(_FLIP)
        start, end, status = 0, len(data) - 1, 200
        m = None if hub.faults.ignore_range else re.fullmatch(r"bytes=(\d+)-(\d*)",
                                                              self.headers.get("Range", "").strip())
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
            if start >= len(data) or start > end:
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head=head)
            status = 206
            meta["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        chunk = data[start:end + 1]
        self._headers(status, len(chunk), meta)
        if head:
            return
        cut = hub._take_drop(path)
        limit = len(chunk) if cut is None else min(cut, len(chunk))
        sent = self._write(chunk[:limit], (repo_id, path), start)
        if cut is not None and sent == limit:
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _write(self, data: bytes, key: tuple[str, str], start: int = 0) -> int:
        """Write `data` (the file's bytes from `start`) at the fault's rate, pausing at a hold."""
        hub, sent = self.server.hub, 0
        step = 64 * 1024
        if hub.faults.rate:
            step = max(1, min(step, int(hub.faults.rate / 20)))
        held = hub.faults.holds.get(key[1])
        if held is not None and (held.reached.is_set() or start > held.at):
            held = None  # one request is held
        t0, base = time.monotonic(), 0
        while sent < len(data) and not hub._stopping.is_set():
            if held is not None and start + sent >= held.at:
                held.reached.set()
                while not held.release.wait(0.05) and not hub._stopping.is_set():
                    pass
                held, t0, base = None, time.monotonic(), sent
            part = data[sent:sent + step]
            if held is not None:
                part = part[:held.at - start - sent]
            hub._count(key, len(part))  # before the write: a client that has the bytes sees them counted
            try:
                self.wfile.write(part)
            except OSError:
                hub._count(key, -len(part))
                self.close_connection = True
                break
            sent += len(part)
            if hub.faults.rate:
                ahead = (sent - base) / hub.faults.rate - (time.monotonic() - t0)
                if ahead > 0:
                    hub._stopping.wait(ahead)
        return sent

    # ---- responses -----------------------------------------------------------------------------------
    def _headers(self, status: int, length: int, meta: dict) -> None:
        self.send_response(status)
        for k, v in meta.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, body: bytes, meta: dict, *, head: bool) -> None:
        self._headers(status, len(body), meta)
        if not head and body:
            self.wfile.write(body)

    def _error(self, err: _HubError, *, head: bool) -> None:
        meta = {"Content-Type": "application/json", "X-Error-Message": err.message}
        if err.code:
            meta["X-Error-Code"] = err.code
        if err.commit:
            meta["X-Repo-Commit"] = err.commit
        self._send(err.status, json.dumps({"error": err.message}).encode(), meta, head=head)
