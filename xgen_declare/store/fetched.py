"""What a fetch gives back: the source's files in the store, at one commit (or, for a URL, one sha256)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xgen_declare.store.remote import RemoteFile

__all__ = ["Fetched"]


@dataclass(frozen=True)
class Fetched:
    repo: str
    commit: str
    files: tuple[RemoteFile, ...]
    paths: tuple[Path, ...]          # DIR/models--ORG--REPO/snapshots/COMMIT/FILE, in `files` order
    snapshot: Path                   # DIR/models--ORG--REPO/snapshots/COMMIT (a vLLM model's directory)
    fetched_bytes: int = 0           # bytes this call downloaded (0: everything was in the store)
    reused: tuple[str, ...] = field(default=())  # files that were already in the store

    @property
    def local_path(self) -> Path:
        """What a backend is started on: the (first) GGUF file, or the snapshot directory."""
        return self.paths[0] if self.files and self.files[0].path.lower().endswith(".gguf") else self.snapshot
