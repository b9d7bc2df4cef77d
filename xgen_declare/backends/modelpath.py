"""What a manifest's `model_path` names: a local .gguf file, a HuggingFace repository of GGUF files, or
something for vLLM (a HuggingFace model id or a local directory).

Pure string rules, no filesystem access; `request` builds its validation on them. The seed's rule is that
any model path containing "gguf" is llama.cpp's; for a HuggingFace id that means a repository of GGUF
files, rendered as llama.cpp's own download flags (`--hf-repo`, `--hf-file`), never as a vLLM model. Since
issue 23 the daemon fetches such a repository (and a vLLM id, `hub_model_id`) into the store first
(manifests/source.implied_source) and renders the local file; `--hf-repo` remains a preview (`render`,
`export`). So llama-cpp-python, which cannot download a repository itself, serves one too: it is started
with `--model` on the fetched file (a Kubernetes export, where the pod would have to download it, refuses
that: export/kubernetes.py).
"""

from __future__ import annotations

import re
from typing import Any

# A HuggingFace repository id as llama.cpp accepts it (letters, digits, '_', with '.' and '-' between them,
# exactly one '/'), optionally with llama.cpp's `:QUANT` tag (`-hf <user>/<model>[:quant]`).
_HF_NAME = r"[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*"
_HF_REPO = re.compile(rf"^({_HF_NAME}/{_HF_NAME})(?::([A-Za-z0-9_][A-Za-z0-9_.-]*))?$")
# A file inside the repository: relative, no '..' segment, not a flag, ends in .gguf.
HF_FILE_RE = re.compile(r"^(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_][A-Za-z0-9_./+-]*\.gguf$", re.IGNORECASE)
GGUF_REPO_HINT = "org/name-GGUF or org/name:QUANT"


def is_gguf_path(model_path: str) -> bool:
    """A local .gguf file (as opposed to a repository of them, see gguf_repo)."""
    return model_path.lower().endswith(".gguf")


def gguf_repo(model_path: str, hf_file: str | None = None) -> tuple[str, str | None] | None:
    """(repo, quant tag) when `model_path` names a HuggingFace repository of GGUF files: a repo id whose
    name contains "gguf", or one with a `:QUANT` tag, or any repo id when `hf_file` names the file.
    None for a local path (`models/x.gguf` is a file) or a plain HuggingFace model id (vLLM's)."""
    m = None if is_gguf_path(model_path) else _HF_REPO.match(model_path)
    if m is None:
        return None
    repo, tag = m.groups()
    if tag is None and hf_file is None and "gguf" not in repo.lower():
        return None
    return repo, tag


def hub_model_id(model_path: str) -> str | None:
    """ORG/REPO when `model_path` is a HuggingFace model id with no tag (what vLLM downloads itself, and the
    store now fetches); None for a local path (./dir, /dir, x.gguf) or anything else."""
    if is_gguf_path(model_path):
        return None
    m = _HF_REPO.match(model_path)
    return m.group(1) if m is not None and m.group(2) is None else None


def gguf_problems(spec: Any, engine: str) -> list[tuple[str, str]]:
    """(field, "message; hint") for GGUF files and repositories against the engine and `hf_file`.
    `spec` is a ModelLoadRequest; `engine` its engine ("llama" or "vllm", backends/profile.py)."""
    repo = gguf_repo(spec.model_path, spec.hf_file)
    out = []
    if engine == "vllm" and is_gguf_path(spec.model_path):
        out.append(("backend", f"{spec.backend} cannot serve a GGUF file; use a llama-server backend, "
                    "llama-cpp-python or backend: auto"))
    elif engine == "vllm" and repo is not None:
        out.append(("backend", f"{spec.backend} cannot serve a GGUF repository; use a llama-server backend or "
                    "backend: auto"))
    elif engine == "llama" and not is_gguf_path(spec.model_path) and repo is None:
        out.append(("model_path", f"backend {spec.backend} needs a .gguf file, or a HuggingFace repository of "
                    f"them such as {GGUF_REPO_HINT}; use a vllm backend for other HuggingFace models"))
    if spec.hf_file is not None:
        if repo is None:
            out.append(("hf_file", "only applies when model_path is a HuggingFace repository of GGUF files "
                        f"({GGUF_REPO_HINT}); remove it"))
        elif repo[1] is not None:
            out.append(("hf_file", f"llama.cpp's --hf-file overrides the :{repo[1]} tag of model_path; give one "
                        "of them"))
    return out
