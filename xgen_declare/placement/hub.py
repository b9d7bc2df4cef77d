"""What the hub's metadata tells placement about a model whose files are not fetched yet (plain data:
store/hubmeta.py reads it over HTTP, desired/demands.py turns it into a Demand).

A GGUF: the facts of its header (read with Range requests, parsed as a file on disk is, so the figures are
the same); a vLLM model: its config.json and the bytes of its weights (the hub's file sizes). Or why
placement is unknown: the metadata not read yet, offline, a hostile header, a config.json missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from xgen_declare.placement.gguf_facts import GgufFacts

__all__ = ["HubFacts", "NOT_READ"]

NOT_READ = "metadata not read yet"


@dataclass(frozen=True)
class HubFacts:
    source: str                       # the source as written
    commit: str | None = None         # the commit the metadata was read at
    file: str | None = None           # a GGUF: the file read (a split GGUF: its first part)
    facts: GgufFacts | None = None    # a GGUF: its header's facts
    config: dict | None = None        # vLLM: config.json
    weights: int | None = None        # vLLM: bytes of the weights (*.safetensors, else *.bin)
    reason: str | None = None         # set: placement unknown, and why
    stored: bool = False              # read from the files the store holds while a fetch asks the hub

    def basis(self) -> str:
        """The plan's line for a model placed from this: "placement from hub metadata (org/m@0123456789ab)"."""
        where = f"{self.commit[:12]}" if self.commit else "?"
        if self.stored:  # a branch not pinned yet: its fetch resolves it on the hub, the store has its ref's files
            return f"placement from the files the store holds ({self.source} at commit {where}) while its fetch " \
                   "asks the hub for the branch's commit"
        if self.source.startswith(("http://", "https://")):  # a URL source: its "commit" is its sha256
            return f"placement from the GGUF header read over HTTP ({self.source}, sha256 {where}), before its " \
                   "file is fetched"
        return f"placement from hub metadata ({self.source} at commit {where}), before its files are fetched"
