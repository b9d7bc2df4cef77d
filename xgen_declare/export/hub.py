"""A hub model in a Kubernetes export (docs/kubernetes.md "Models from a hub"): a pod has no store, so the
backend in it downloads the model itself, and what this host pins must be said in its args or in a warning.

  vLLM               `serve ORG/REPO` plus `--revision C --tokenizer-revision C` when the commit C is known (a
                     commit in the manifest, or the one the store pinned in the state dir: `xgen-declare pull`
                     or the daemon's first fetch); else `--revision BRANCH` as written, and a warning that the
                     pod fetches an unpinned branch.
  llama-server       `--hf-repo ORG/REPO[:QUANT]` (`--hf-file FILE`). llama-server has no revision flag (its
                     --help in both dialects lists --hf-repo, --hf-file and --hf-token only) and downloads the
                     default branch, so a source at another revision (a commit, a tag, a branch other than
                     main) cannot be honoured and is not exported; one on main is, with a warning that the
                     pod fetches main as it is when it starts.
  llama-cpp-python   downloads nothing itself: not exported.
  a URL source       fetched by the daemon's store only: not exported.
The remedy of the refusals is the same: the fetched file on kubernetes.model_volume, named by model_path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from xgen_declare.backends.profile import profile
from xgen_declare.errors import Problem
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.manifests.source import Source
from xgen_declare.names import is_commit_id

__all__ = ["PodSource", "for_pod", "PinLookup", "ON_VOLUME"]

PinLookup = Callable[[Source], "str | None"]  # the commit the store pinned a branch or tag to (None: not pinned)
ON_VOLUME = ("put the file on kubernetes.model_volume (`xgen-declare pull` fetches it into the store) and set "
             "model_path to it")
DEFAULT_BRANCH = "main"


@dataclass
class PodSource:
    """What a hub model adds to its pod's args, or why it is not exported, and the warnings to print."""

    args: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def for_pod(decl: ModelDecl, backend: str, pins: PinLookup | None) -> PodSource:
    out = PodSource()
    src = decl.spec.source
    if src is None or not src.is_remote:
        return out
    key = "model_path" if src.implied else "source"
    fld, line = f"spec.{key}", decl.line_of(key)

    def refuse(message: str, hint: str = ON_VOLUME) -> PodSource:
        out.problems.append(Problem(decl.file, line, fld, message, hint))
        return out

    def warn(message: str) -> None:
        out.warnings.append(Problem(decl.file, line, fld, message, severity="warning"))

    if src.kind == "url":
        return refuse(f"{src.text} is fetched by the daemon's store, and a pod has none: the export renders no "
                      "download for a URL source")
    prof = profile(backend)
    if prof.python_module:
        return refuse(f"{src.text} is fetched by the daemon's store, and in a pod llama-cpp-python would have to "
                      "download it itself, which it does not",
                      f"export it with a llama-server backend, or {ON_VOLUME}")
    commit = src.revision if is_commit_id(src.revision) else (pins(src) if pins is not None else None)
    branch = src.revision or DEFAULT_BRANCH
    if prof.llama_server:
        if branch != DEFAULT_BRANCH:
            return refuse(f"{src.text} names revision {branch}, and llama-server's --hf-repo downloads the "
                          f"{DEFAULT_BRANCH} branch only (llama-server has no revision flag): the pod would serve "
                          "other weights")
        pinned = f", which may differ from commit {commit[:12]} pinned here" if commit else ""
        warn(f"the pod's llama-server downloads {src.repo} itself from the unpinned branch {DEFAULT_BRANCH} as it "
             f"is when the pod starts (--hf-repo has no revision flag){pinned}; to pin it, {ON_VOLUME}")
        return out
    if "--revision" in decl.spec.extra_args:  # the manifest's own choice, passed on unchanged
        return out
    if commit is not None:
        out.args = ["--revision", commit, "--tokenizer-revision", commit]
        return out
    if src.revision is not None:
        out.args = ["--revision", src.revision, "--tokenizer-revision", src.revision]
    warn(f"{src.text} is not pinned (no commit in the manifest, none pinned in the state dir): the pod's vLLM "
         f"downloads branch {branch} as it is when the pod starts; pin it with @<commit> in the source, or run "
         "`xgen-declare pull` first so that the export renders --revision <commit>")
    return out
