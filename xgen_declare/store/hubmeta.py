"""Placement before the download: what the hub's metadata says of a hub source, read with a few small HTTP
requests and never a whole file, and kept in the state dir.

- a GGUF (a file, a quant, a split GGUF's first part, which holds the metadata): the start of the file with
  Range requests (HEAD_FIRST bytes, then 4x more while the header needs it, at most HEAD_LIMIT), parsed by
  the same reader as a file on disk (placement/gguf_facts.facts_from_prefix with the hub's file size), so the
  figures are those the fetched file gives;
- a vLLM repository: config.json (at most vllm_checks.CONFIG_LIMIT bytes) and the weights' bytes from the
  hub's file sizes (the files `weights_bytes` counts in the fetched snapshot);
- a URL source (`{url, sha256}`, a GGUF): its size from a HEAD (store/url.py's, as the fetch asks it), then
  the same Range reads of the URL; its "commit" is the manifest's sha256, so the cache is keyed by URL and
  sha256. The token_file's token goes to the URL's own origin only, never to a host a redirect leads to.

Every request goes to huggingface_hub's endpoint (`HF_ENDPOINT`) with the source's token (never logged; not
sent on to another origin, such as the CDN an LFS file redirects to) and a deadline for the whole read.
Outcomes: `HubFacts` with facts, or with the `reason` placement is unknown. A reason that the commit's
files themselves give (a header beyond the reader's limits, not a GGUF, no or bad config.json) is
`lasting`: cached like facts, since a commit never changes. `MetaError` is one worth retrying (the network,
a truncated range, access refused): never cached on disk.

A split GGUF: the first part's facts with the tensor tables of the other parts (each read the same way).

The cache (STATE_DIR/hubmeta/): KEY.json per (source as written, commit), with KEY.head (the GGUF's first
bytes as read, of each part one after the other) beside it, and SRC.ref: the commit last read for a source
whose revision is a branch. At most CACHE_LIMIT bytes are kept: each save removes the entries
used least recently (a revision rolled past, a model removed) until the rest fit.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from xgen_declare.errors import FetchError, FileRefused
from xgen_declare.manifests.source import Source
from xgen_declare.names import is_commit_id
from xgen_declare.placement.gguf_facts import BeyondPrefix, GgufError, facts_from_prefix
from xgen_declare.placement.gguf_split import part_tensors_from_prefix, split_count, with_parts
from xgen_declare.placement.hub import HubFacts
from xgen_declare.placement.vllm_checks import CONFIG_LIMIT, parse_config, weights_of_listing
from xgen_declare.processes.statefiles import make_private_dir, replace_file, write_all
from xgen_declare.readers.bounded import MIB, read_bytes
from xgen_declare.store.fetch import _hub_error, _resolve
from xgen_declare.store.remote import RemoteFile, pick_files
from xgen_declare.store.stream import hub_http

__all__ = ["MetaError", "Read", "read_hub_facts", "save", "load", "HEAD_FIRST", "HEAD_LIMIT", "TIMEOUT"]

HEAD_FIRST = 1 * MIB
HEAD_LIMIT = 32 * MIB  # published GGUF headers (a vocabulary, its merges) are 1-15 MiB
CACHE_LIMIT = 256 * MIB  # every source's and commit's entries together; the least recently used go first
TIMEOUT = 60.0         # the whole read of one source
_REDIRECTS = 5


class MetaError(Exception):
    """A read worth trying again later (network, a truncated range, access refused); `reason` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Read:
    facts: HubFacts
    heads: tuple[tuple[bytes, int], ...] = ()  # a GGUF: (the first bytes read, the file's size) of each part


def read_hub_facts(source: Source, *, endpoint: str | None = None, token: str | None = None,
                   timeout: float = TIMEOUT, first: int | None = None, limit: int | None = None) -> Read:
    """The hub's metadata of `source` (revision: a commit, or a branch resolved now). A lasting reason is
    `Read.facts.reason`; MetaError for one worth retrying. `first`, `limit`: HEAD_FIRST, HEAD_LIMIT."""
    first, limit = first or HEAD_FIRST, limit or HEAD_LIMIT
    deadline = time.monotonic() + timeout
    if source.kind == "url":
        return _read_url(source, token, deadline, first, limit)
    try:
        commit, listing = _resolve(source, endpoint, token, timeout=timeout)
    except FetchError as exc:
        raise MetaError(exc.reason) from None
    try:
        files = pick_files(source, listing, commit)
    except FetchError as exc:
        return Read(HubFacts(source.text, commit, reason=exc.reason))
    http = _Http(str(source.repo), commit, endpoint, token, deadline, source)
    try:
        if files and files[0].path.lower().endswith(".gguf"):
            return _gguf(source, commit, files, http, first, limit)
        return Read(_vllm(source, commit, listing, http))
    except FetchError as exc:  # a file the listing names is not served (404): so it stays at this commit
        return Read(HubFacts(source.text, commit, files[0].path if files else None, reason=exc.reason))


def _read_url(source: Source, token: str | None, deadline: float, first: int, limit: int) -> Read:
    """A URL source's GGUF header: MetaError for anything the server may answer otherwise later (no size,
    401, 404, the network); a lasting reason for what the file's bytes give."""
    from xgen_declare.store.url import _head, url_file_name
    sha, name = str(source.sha256), url_file_name(str(source.url))
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        _location, size = _head(source, headers, timeout=max(0.1, min(10.0, deadline - time.monotonic())))
    except FetchError as exc:
        raise MetaError(exc.reason) from None
    if size is None:
        raise MetaError(f"{source.text}: the server gives no size (HEAD): placement waits for the file")
    http = _Http(str(source.url), sha, None, token, deadline, source, url=str(source.url))
    try:
        return _gguf(source, sha, [RemoteFile(name, size, sha)], http, first, limit)
    except FetchError as exc:  # a 404 on the GET: a URL's server may serve it later (no listing says so)
        raise MetaError(exc.reason) from None


def _label(source: Source, commit: str, path: str | None) -> str:
    if source.kind == "url":
        return f"{source.text} (sha256 {commit[:12]})"
    return f"hf://{source.repo}@{commit[:12]}/{path}"


def _gguf(source: Source, commit: str, files: list[RemoteFile], http: "_Http", first: int, limit: int) -> Read:
    f = files[0]
    label = _label(source, commit, f.path)

    def unknown(why: str) -> Read:
        return Read(HubFacts(source.text, commit, f.path, reason=why))

    try:
        facts, head = _prefix(http, f, label, first, limit, facts_from_prefix)
        heads = [(head, f.size or 0)]
        count = split_count(facts)
        if count != len(files):
            return unknown(f"{label}: split.count is {count} but the source names {len(files)} part(s)")
        parts = []
        for part in files[1:]:
            tensors, head = _prefix(http, part, _label(source, commit, part.path), first, limit,
                                    part_tensors_from_prefix)
            parts.append((tensors, part.size or 0))
            heads.append((head, part.size or 0))
        facts = with_parts(facts, parts) if parts else facts
    except GgufError as exc:
        return unknown(str(exc))
    return Read(HubFacts(source.text, commit, f.path, facts=facts), tuple(heads))


def _prefix(http: "_Http", f: RemoteFile, label: str, first: int, limit: int, parse):
    """(parse(head, size, label), head): the start of `f` read with Range requests, 4x more each time the
    header needs it, never more than `limit` bytes (GgufError beyond)."""
    size = f.size or 0
    if size < 24:
        raise GgufError(label, f"not a GGUF file ({size} bytes as the hub lists it)")
    want = min(first, size, limit)
    head = http.get(f.path, 0, want)
    while True:
        try:
            return parse(head, size, label), head
        except BeyondPrefix:
            if want >= min(limit, size):
                raise GgufError(label, f"the GGUF header is larger than the {_amount(limit)} read from the hub "
                                "(a crafted file, or one to fetch before it is placed)") from None
            want = min(want * 4, limit, size)
            head += http.get(f.path, len(head), want)


def _amount(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB and n % MIB == 0 else f"{n} bytes"


def _vllm(source: Source, commit: str, listing: dict[str, RemoteFile], http: "_Http") -> HubFacts:
    where = f"{source.repo}@{commit[:12]}"
    cfg = listing.get("config.json")
    if cfg is None:
        return HubFacts(source.text, commit, reason=f"no config.json in {where}: vLLM pre-checks skipped")
    if cfg.size is not None and cfg.size > CONFIG_LIMIT:
        return HubFacts(source.text, commit, reason=f"config.json of {where} has {cfg.size} bytes, over the "
                        f"{_amount(CONFIG_LIMIT)} read")
    raw = http.get("config.json", 0, cfg.size if cfg.size is not None else CONFIG_LIMIT, whole=cfg.size is None)
    data, why = parse_config(raw)
    if data is None:
        return HubFacts(source.text, commit, reason=f"config.json of {where}: {why}")
    weights = weights_of_listing({p: r.size for p, r in listing.items()})
    return HubFacts(source.text, commit, config=data, weights=weights)


class _Http:
    """Range GETs of one repository's files at one commit, within one deadline, following the hub's
    redirects by hand so that the token never leaves the hub's origin."""

    def __init__(self, repo: str, commit: str, endpoint: str | None, token: str | None, deadline: float,
                 source: Source, url: str | None = None) -> None:
        self.repo, self.commit, self.endpoint, self.token, self.deadline = repo, commit, endpoint, token, deadline
        self.source, self.url = source, url  # url: a URL source's file (`path` is then only its name)
        self.server = "the server" if url is not None else "the hub"

    def left(self, path: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise MetaError(f"reading {path} of {self.repo} from {self.server} took too long (timed out)")
        return left

    def get(self, path: str, start: int, end: int, *, whole: bool = False) -> bytes:
        """Bytes start..end-1 of `path` (`whole`: the file's size is not known, at most `end` bytes of it)."""
        http = hub_http()
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session

        if self.url is not None:  # a URL source: its token (Bearer, as the fetch sends it) to its origin only
            url = self.url
            headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        else:
            url = hf_hub_url(self.repo, path, revision=self.commit, endpoint=self.endpoint)
            headers = build_hf_headers(token=self.token or False)
        origin = _origin(url)
        headers["Range"] = f"bytes={start}-{end - 1}"
        try:
            for _ in range(_REDIRECTS + 1):
                timeout = http.Timeout(min(self.left(path), 10.0))
                with get_session().stream("GET", url, headers=headers, follow_redirects=False,
                                          timeout=timeout) as r:
                    if r.status_code in (301, 302, 303, 307, 308) and r.headers.get("location"):
                        url = urljoin(url, r.headers["location"])
                        if _origin(url) != origin:  # a CDN: the token stays on the hub
                            headers.pop("authorization", None)
                            headers.pop("Authorization", None)
                        continue
                    return self._body(r, path, start, end, whole)
        except (MetaError, FetchError):
            raise
        except http.HTTPError as exc:
            raise MetaError(f"reading {path} of {self.repo} from the hub: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        raise MetaError(f"reading {path} of {self.repo}: more than {_REDIRECTS} redirects")

    def _body(self, r, path: str, start: int, end: int, whole: bool) -> bytes:
        status = r.status_code
        if status in (200, 206):
            skip = 0
            if status == 200:  # the server ignored Range: the file from its start; only what was asked is read
                skip = start
            elif not r.headers.get("content-range", "").startswith(f"bytes {start}-"):
                raise MetaError(f"reading {path} of {self.repo}: {self.server} answered another range "
                                f"({r.headers.get('content-range')!r} for bytes {start}-{end - 1})")
            out = bytearray()
            for chunk in r.iter_bytes():  # as they arrive: the deadline is checked between them
                self.left(path)
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                out += chunk[:end - start - len(out)]
                if len(out) >= end - start:
                    return bytes(out)
            if whole and not skip:
                return bytes(out)
            raise MetaError(f"reading {path} of {self.repo}: {self.server} sent {len(out)} of the {end - start} bytes "
                            "asked for (a truncated range)")
        if self.url is not None:  # a URL source: no hub error mapping; worth retrying later, token or server
            r.read()
            hint = "; check the source's token_file" if status in (401, 403) else ""
            raise MetaError(f"reading {self.source.text}: the server answered HTTP {status}{hint}")
        exc = _status_error(r)
        if status == 404:
            raise FetchError(f"{path} of {self.repo}@{self.commit[:12]}: the hub has no such file (HTTP 404)",
                             blocked=True)
        if exc is not None:
            raise MetaError(_hub_error(exc, self.source, path).reason)
        raise MetaError(f"reading {path} of {self.repo}: HTTP {status}")


def _status_error(r):
    from huggingface_hub.utils import hf_raise_for_status
    try:
        r.read()
        hf_raise_for_status(r)
    except Exception as exc:  # noqa: BLE001 - mapped to a reason by kind
        return exc
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    return p.scheme, (p.hostname or "").lower(), p.port


# ---- the cache in the state dir ---------------------------------------------------------------------

def _key(text: str, commit: str) -> str:
    return hashlib.sha256(f"{text}\0{commit}".encode()).hexdigest()[:32]


def _ref(cache: Path, text: str) -> Path:
    return cache / (hashlib.sha256(text.encode()).hexdigest()[:32] + ".ref")


def save(cache: Path, source: Source, got: Read) -> None:
    """Keep `got` (facts, or a lasting reason) for its commit; OSError when the state dir cannot be written."""
    hf = got.facts
    if hf.commit is None:
        return
    make_private_dir(cache)
    key = _key(source.text, hf.commit)
    if got.heads:
        replace_file(cache / f"{key}.head", lambda fd: write_all(fd, b"".join(h for h, _ in got.heads)))
    record = {"source": source.text, "commit": hf.commit, "file": hf.file, "reason": hf.reason, "config": hf.config,
              "weights": hf.weights, "heads": [[len(h), n] for h, n in got.heads]}
    replace_file(cache / f"{key}.json", lambda fd: write_all(fd, json.dumps(record, sort_keys=True).encode()))
    if source.kind == "hf" and not is_commit_id(source.revision):
        replace_file(_ref(cache, source.text), lambda fd: write_all(fd, hf.commit.encode()))
    prune(cache, keep=key)


def prune(cache: Path, keep: str, limit: int = CACHE_LIMIT) -> list[str]:
    """Remove the least recently used entries (KEY.json and KEY.head; `load` touches what it reads) until
    the entries kept add up to `limit` bytes at most; never `keep`. The keys removed, oldest first."""
    entries = []
    for meta in cache.glob("*.json"):
        head = meta.with_suffix(".head")
        try:
            used = meta.lstat().st_mtime
            size = meta.lstat().st_size + (head.lstat().st_size if head.exists() else 0)
        except OSError:
            continue
        entries.append((used, meta.stem, size))
    total = sum(size for _, _, size in entries)
    removed = []
    for _, key, size in sorted(entries):
        if total <= limit:
            break
        if key == keep:
            continue
        for suffix in (".json", ".head"):
            try:
                (cache / f"{key}{suffix}").unlink()
            except FileNotFoundError:
                pass
        total -= size
        removed.append(key)
    return removed


def cached_commit(cache: Path, source: Source) -> str | None:
    """The commit last read for `source` as written (a branch: the commit it named then)."""
    try:
        text = read_bytes(_ref(cache, source.text), 256, follow=False, what="a hub metadata ref").decode().strip()
    except (OSError, FileRefused, UnicodeDecodeError):
        return None
    return text if is_commit_id(text) else None


def load(cache: Path, source: Source, commit: str) -> HubFacts | None:
    """What `save` kept for `source` at `commit`, parsed again (None: nothing kept, or unreadable)."""
    key = _key(source.text, commit)
    try:
        record = json.loads(read_bytes(cache / f"{key}.json", CONFIG_LIMIT + MIB, follow=False,
                                       what="a hub metadata record"))
        if not isinstance(record, dict) or record.get("commit") != commit or record.get("source") != source.text:
            return None
        _touch(cache / f"{key}.json")
        if record.get("reason"):
            return HubFacts(source.text, commit, record.get("file"), reason=str(record["reason"]))
        if record.get("heads"):
            return _kept_gguf(cache / f"{key}.head", record, source, commit)
        config, weights = record.get("config"), record.get("weights")
        if not isinstance(config, dict) or not (weights is None or isinstance(weights, int)):
            return None
        return HubFacts(source.text, commit, config=config, weights=weights)
    except (OSError, FileRefused, ValueError, TypeError):
        return None


def _touch(path: Path) -> None:
    """Mark an entry used now (prune removes the least recently used first)."""
    try:
        os.utime(path, follow_symlinks=False)
    except OSError:
        pass


def _kept_gguf(path: Path, record: dict, source: Source, commit: str) -> HubFacts:
    """The GGUF facts `save` kept: the parts' first bytes, one after the other, parsed again."""
    heads = [(int(n), int(size)) for n, size in record["heads"]]
    data = read_bytes(path, HEAD_LIMIT * len(heads), follow=False, what="a GGUF header")
    file = record.get("file")
    label = _label(source, commit, file)
    try:
        if sum(n for n, _ in heads) != len(data):
            raise GgufError(label, f"the kept header {path} is not what was read (remove it: it is read again)")
        at, parts, facts = 0, [], None
        for i, (n, size) in enumerate(heads):
            head, at = data[at:at + n], at + n
            if i == 0:
                facts = facts_from_prefix(head, size, label)
            else:
                parts.append((part_tensors_from_prefix(head, size, label), size))
        facts = with_parts(facts, parts) if parts else facts
    except GgufError as exc:  # BeyondPrefix too: the kept bytes do not hold the header
        return HubFacts(source.text, commit, file, reason=str(exc))
    return HubFacts(source.text, commit, file, facts=facts)
