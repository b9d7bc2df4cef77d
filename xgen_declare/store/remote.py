"""Which files of a hub repository a `Source` means, from the repository's file list at one commit (pure:
the list comes from `model_info(files_metadata=True)`; tests give it as plain data).

- a file source: that file (all parts of a split GGUF); each must be in the list;
- a quant source (`:Q4_K_M`): the one .gguf whose name carries the tag (all parts when it is split);
- a whole repository: every file, except that a repository of GGUF files (and no safetensors) means one
  GGUF, as llama.cpp picks it: the Q4_K_M file, else the first .gguf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xgen_declare.errors import FetchError
from xgen_declare.manifests.source import Source, split_parts

__all__ = ["RemoteFile", "pick_files", "DEFAULT_QUANT", "quant_matches"]

DEFAULT_QUANT = "Q4_K_M"  # llama.cpp's own default for a repository named without a file or tag


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None = None   # LFS files: the content's sha256 (their ETag)
    blob_id: str | None = None  # the git blob sha1 (the ETag of files not in LFS)


def quant_matches(files: list[str], quant: str) -> list[str]:
    """The .gguf files among `files` whose name carries the tag `quant` (Q4_K_M)."""
    tag = re.compile(rf"(?:^|[-._/]){re.escape(quant)}(?:[-._]|$)", re.IGNORECASE)
    return [f for f in files if f.lower().endswith(".gguf") and tag.search(f.rsplit("/", 1)[-1][:-5])]


def _one_model(matches: list[str], what: str, repo: str, commit: str) -> list[str]:
    """The files of one model among `matches`: a single file, or every part of one split GGUF."""
    firsts = []
    for f in matches:
        try:
            parts = split_parts(f)
        except Exception:  # noqa: BLE001 - a later part or an odd name: not a model's first file
            continue
        firsts.append((f, parts or (f,)))
    models = [parts for _, parts in firsts]
    if len(models) > 1:
        names = ", ".join(parts[0] for parts in models[:6])
        raise FetchError(f"{repo}@{commit[:12]}: several files match {what} ({names}); name one in the source: "
                         f"hf://{repo}@{commit[:12]}/FILE.gguf", blocked=True)
    if not models:
        raise FetchError(f"{repo}@{commit[:12]} has no .gguf file for {what}; list its files on the hub and "
                         "name one in the source, or use another quant", blocked=True)
    return list(models[0])


def pick_files(source: Source, listing: dict[str, RemoteFile], commit: str) -> list[RemoteFile]:
    """The files `source` needs from `listing` (path -> RemoteFile) at `commit`; FetchError(blocked) when
    the source names something the repository does not have."""
    repo = str(source.repo)
    if source.files:
        missing = [f for f in source.files if f not in listing]
        if missing:
            raise FetchError(f"{missing[0]} is not in {repo} at commit {commit[:12]}; check the file name "
                             "(the hub lists the repository's files) or the revision", blocked=True)
        return [listing[f] for f in source.files]
    ggufs = sorted(p for p in listing if p.lower().endswith(".gguf"))
    if source.quant is not None:
        return [listing[f] for f in _one_model(quant_matches(ggufs, source.quant), f":{source.quant}", repo, commit)]
    if ggufs and not any(p.endswith(".safetensors") for p in listing):
        matches = quant_matches(ggufs, DEFAULT_QUANT)
        chosen = _one_model(matches, f":{DEFAULT_QUANT}", repo, commit) if matches else \
            _one_model(ggufs[:1], "the first .gguf", repo, commit)
        return [listing[f] for f in chosen]
    return [listing[p] for p in sorted(listing)]
