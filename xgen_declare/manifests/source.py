"""`spec.source`: where a model's files come from, parsed once into a typed `Source` (no network).

Forms (README "Model sources"):
  hf://ORG/REPO[@REVISION]                   a whole HuggingFace repository (safetensors for vLLM, or GGUF)
  hf://ORG/REPO-GGUF[@REVISION]/FILE.gguf    one GGUF file of a repository (a split GGUF, named by its first
                                             part FILE-00001-of-0000N.gguf, is all N parts as one source)
  hf://ORG/REPO-GGUF[@REVISION]:QUANT        the GGUF file of a quantisation (Q4_K_M), picked by the store
  {url: https://HOST/PATH/x.gguf, sha256: HEX}   a file over HTTPS, with its required checksum
  ./models/x.gguf, /srv/models/qwen          a local path (what `model_path` takes)
The mapping form {url: ..., sha256: ..., token_file: ...} is accepted for every remote form (a hub file may be
pinned by checksum too); `token_file` names a file holding the access token (relative paths: to the manifest's
directory), read by the store when it fetches, never shown in argv or logs. REVISION is a branch, a tag or a 40-hex commit; a commit is already pinned.

`Source.text` is the source as written: `validate`, `render` and the API show it unchanged.

A `model_path` that names a hub repository (a vLLM id ORG/REPO; a GGUF repository ORG/REPO-GGUF[:QUANT], or
ORG/REPO with `hf_file`) is an implied source (`implied_source`): the same as the hf:// form, fetched into the
store, with `implied` set so that `render` and `plan` can say it came from model_path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from xgen_declare.backends.modelpath import gguf_repo, hub_model_id
from xgen_declare.backends.profile import LLAMA, VLLM, engine_of
from xgen_declare.names import is_commit_id

__all__ = ["Source", "parse_source", "SourceError", "SOURCE_EXAMPLES", "split_parts", "implied_source",
           "implied_by_spec"]

SOURCE_EXAMPLES = ("hf://Qwen/Qwen3-0.6B@main, hf://org/model-GGUF:Q4_K_M, "
                   "hf://org/model-GGUF@v1/model.Q4_K_M.gguf, {url: https://host/x.gguf, sha256: <64 hex>} "
                   "or a local path")

# HuggingFace repo names: letters, digits, '_', with single '.' or '-' between them (no '--', no '..').
_NAME = r"[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*"
_REV = r"(?:refs/pr/\d+|[A-Za-z0-9_][A-Za-z0-9_.-]*)"
_QUANT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_FILE = r"(?!.*//)(?!.*(?:^|/)\.\.?(?:/|$))[A-Za-z0-9_][A-Za-z0-9_./+-]*"
_HF = re.compile(rf"^hf://(?P<repo>{_NAME}/{_NAME})(?:@(?P<rev>{_REV}))?"
                 rf"(?::(?P<quant>{_QUANT})|/(?P<file>{_FILE}))?$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_MAX_PARTS = 512
_MAX_LEN = 4096  # as every other string of a spec (fields.NoNewline)


class SourceError(ValueError):
    """A source that is not one of the forms; the message is "what is wrong; what to write"."""


@dataclass(frozen=True)
class Source:
    kind: Literal["hf", "url", "path"]
    text: str                       # as written (the string, or the url of the mapping form)
    repo: str | None = None         # hf: ORG/REPO
    revision: str | None = None     # hf: as written; None = the default branch (main)
    file: str | None = None         # hf: the file named (a split GGUF's first part)
    files: tuple[str, ...] = ()     # hf: every file of a file source (all parts of a split GGUF)
    quant: str | None = None        # hf: the quantisation tag
    url: str | None = None          # url: the https URL
    path: str | None = None         # path: the local path as written
    sha256: str | None = None       # lowercase hex; required for url
    token_file: str | None = None   # hf, url: a file holding the access token, as written
    implied: bool = field(default=False, compare=False)  # from a model_path naming a hub repo (implied_source)

    @property
    def pinned(self) -> bool:
        """True when the weights cannot change under this source: a commit, or a checksum."""
        return is_commit_id(self.revision) or self.sha256 is not None

    @property
    def is_remote(self) -> bool:
        return self.kind != "path"

    def shown(self) -> str:
        """The source as written, for `validate`, `render` and the API (an implied one: said so)."""
        if self.implied:
            return f"{self.text} (from {self.written_as()})"
        return self.text if self.sha256 is None else f"{self.text} (sha256 {self.sha256})"

    def model_path(self) -> str:
        """What `model_path` says for the same model today: the local path, the repository id a backend
        downloads itself (ORG/REPO, ORG/REPO:QUANT), or the URL. Until the store is wired in, this keeps
        backend selection and rendering as they are for an equivalent `model_path`."""
        if self.kind == "path":
            return self.path or ""
        if self.kind == "url":
            return self.url or ""
        return f"{self.repo}:{self.quant}" if self.quant else str(self.repo)

    def written_as(self) -> str:
        """An implied source as its manifest wrote it: model_path (and hf_file)."""
        if self.file is not None:
            return f"model_path {self.repo} with hf_file {self.file}"
        return f"model_path {self.model_path()}"

    def to_json(self) -> str | dict:
        if self.sha256 is None and self.token_file is None:
            return self.text
        out = {"url": self.text}
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if self.token_file is not None:
            out["token_file"] = self.token_file
        return out


def split_parts(file: str) -> tuple[str, ...] | None:
    """All parts of a split GGUF named by its first part, or None for a single file. A later part is an
    error: the source names the model, and the model is named by its first part."""
    m = _SPLIT.match(file.rsplit("/", 1)[-1])
    if m is None:
        return None
    part, count = int(m["part"]), int(m["count"])
    prefix = file[: len(file) - len(file.rsplit("/", 1)[-1])]
    if count < 1 or part < 1 or part > count or count > _MAX_PARTS:
        raise SourceError(f"{file!r} is not a valid split GGUF part name (part {part} of {count}); "
                          f"name the first part, e.g. {m['stem']}-00001-of-{m['count']}.gguf")
    if part != 1:
        raise SourceError(f"names part {part} of a split GGUF; name its first part "
                          f"{m['stem']}-00001-of-{m['count']}.gguf (the source is all {count} parts)")
    return tuple(f"{prefix}{m['stem']}-{i:05d}-of-{m['count']}.gguf" for i in range(1, count + 1))


def implied_source(model_path: str, hf_file: str | None, engine: str) -> Source | None:
    """The hub source a `model_path` names, as `hf://` would (None for a local path): a GGUF repository for
    llama.cpp (ORG/REPO-GGUF, ORG/REPO:QUANT, or ORG/REPO with `hf_file`), or a vLLM model id ORG/REPO
    (`engine` VLLM; a local directory is written ./dir or /dir). SourceError for an `hf_file` the hf://
    form refuses (a later part of a split GGUF)."""
    repo = gguf_repo(model_path, hf_file)
    if repo is not None and engine == LLAMA:
        name, quant = repo
        text = f"hf://{name}/{hf_file}" if hf_file else f"hf://{name}:{quant}" if quant else f"hf://{name}"
    elif engine == VLLM and repo is None and (model_id := hub_model_id(model_path)) is not None:
        text = f"hf://{model_id}"
    else:
        return None
    return replace(_hf(text, None), implied=True)


def implied_by_spec(spec: Any) -> Source | None:
    """`implied_source` of a spec as read (a mapping, not validated yet: the API's body, `pull`'s look at
    the YAML): None without a model_path, with a `source`, or when a field is malformed (validation says so)."""
    if not isinstance(spec, dict) or "source" in spec:
        return None
    path, hf_file, backend = spec.get("model_path"), spec.get("hf_file"), spec.get("backend", "auto")
    if not isinstance(path, str) or not isinstance(backend, str) or not (hf_file is None or isinstance(hf_file, str)):
        return None
    try:
        return implied_source(path, hf_file, engine_of(path, backend, hf_file))
    except SourceError:
        return None


def parse_source(value: Any) -> Source:
    """A `Source` from what the manifest holds (a string, or a mapping {url, sha256}); SourceError if it is
    not one of the forms."""
    sha256 = token_file = None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"url", "sha256", "token_file"})
        if unknown:
            raise SourceError(f"unknown key {unknown[0]!r} in source; write source: {{url: ..., sha256: ..., "
                              "token_file: ...}")
        if "url" not in value:
            raise SourceError("the mapping form needs `url`; write source: {url: https://host/x.gguf, "
                              "sha256: <64 hex>}")
        token_file = _token_file(value.get("token_file"))
        if "sha256" not in value and token_file is None:
            raise SourceError("the mapping form needs `sha256`; write source: {url: ..., sha256: <64 hex>} "
                              "(sha256sum FILE prints it), or write the source as a plain string")
        if "sha256" in value:
            sha256 = value["sha256"]
            if not isinstance(sha256, str) or not _SHA256.match(sha256):
                raise SourceError("sha256 must be the file's SHA-256 as 64 hex digits (sha256sum FILE prints it)")
            sha256 = sha256.lower()
        value = value["url"]
    if not isinstance(value, str) or not value:
        raise SourceError(f"must be a string or a mapping {{url, sha256}}; write e.g. {SOURCE_EXAMPLES}")
    if len(value) > _MAX_LEN:
        raise SourceError(f"is {len(value)} characters long; the limit is {_MAX_LEN}: write the source itself")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SourceError("must not contain control characters; write it on one line")
    if value.startswith("hf://"):
        return replace(_hf(value, sha256), token_file=token_file)
    if value.startswith(("https://", "http://")):
        return replace(_url(value, sha256), token_file=token_file)
    if "://" in value or value.startswith(("hf:", "huggingface.co/", "https:")):
        scheme = value.split(":", 1)[0]
        raise SourceError(f"{scheme!r} is not a source scheme; write one of {SOURCE_EXAMPLES}")
    if value.startswith("-"):
        raise SourceError("must not start with '-': a backend would read it as a flag; write ./ before it")
    if sha256 is not None or token_file is not None:
        key = "sha256" if sha256 is not None else "token_file"
        raise SourceError(f"{key} applies to hub and https sources; a local file is used as it is: remove {key}")
    return Source("path", value, path=value)


def _token_file(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_LEN or any(ord(c) < 32 for c in value):
        raise SourceError("token_file must be the path of a file holding the token, on one line; write e.g. "
                          "token_file: /etc/xgen/hf-token")
    return value


def _hf(value: str, sha256: str | None) -> Source:
    m = _HF.match(value)
    if m is None:
        raise SourceError(f"{value!r} is not a HuggingFace source; write hf://ORG/REPO[@REVISION], "
                          "hf://ORG/REPO-GGUF[@REVISION]/FILE.gguf or hf://ORG/REPO-GGUF[@REVISION]:QUANT, "
                          "e.g. hf://Qwen/Qwen3-0.6B@main")
    repo, rev, quant, file = m["repo"], m["rev"], m["quant"], m["file"]
    files: tuple[str, ...] = ()
    if file is not None:
        if not file.lower().endswith(".gguf"):
            raise SourceError(f"names the file {file!r}: a file source must be a .gguf file; for a safetensors "
                              f"model name the repository (hf://{repo}{'@' + rev if rev else ''})")
        files = split_parts(file) or (file,)
    if sha256 is not None and file is None:
        raise SourceError("sha256 pins one file: give it with a file source (hf://ORG/REPO@REV/FILE.gguf) or "
                          "pin the repository by a commit (@<40 hex>) instead")
    if sha256 is not None and len(files) > 1:
        raise SourceError("sha256 pins one file but a split GGUF has several; pin the commit (@<40 hex>) instead")
    return Source("hf", value, repo=repo, revision=rev, file=file, files=files, quant=quant, sha256=sha256)


def _url(value: str, sha256: str | None) -> Source:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise SourceError(f"{value!r} is not a valid URL ({exc}); write {{url: https://host/x.gguf, "
                          "sha256: <64 hex>}") from None
    if parts.username or parts.password:
        raise SourceError("must not carry credentials (they would be shown in plans and logs); put the token in "
                          "a secret file")
    if not parts.hostname:
        raise SourceError(f"{value!r} has no host; write {{url: https://host/path/x.gguf, sha256: <64 hex>}}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise SourceError("plain http is accepted only from this host (loopback); use https")
    if parts.fragment:
        raise SourceError("must not have a #fragment; give the sha256 as `sha256:` beside `url:`")
    if not parts.path.lower().endswith(".gguf"):
        raise SourceError("a URL source must name a .gguf file (its path ends in .gguf); for other models use "
                          "an hf:// source or a local path")
    if sha256 is None:
        raise SourceError("a URL source needs the file's sha256; write source: {url: " + value + ", sha256: <64 hex>}")
    del port
    return Source("url", value, url=value, sha256=sha256)
