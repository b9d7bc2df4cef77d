"""Split GGUFs (llama.cpp's gguf-split: STEM-00001-of-0000N.gguf ...): the first part holds the metadata (with
split.count and split.tensors.count) and the tensors stored in it; every later part holds only split.* keys
and its own tensors. Placement counts the weights of all parts: the first part's facts (gguf_facts.py) with
the tensor tables of the others, read with the same reader and budgets (from files, or from the hub's
first bytes of each part: store/hubmeta.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

from xgen_declare.placement.gguf_facts import (GgufFacts, TensorFact, _Meta, alignment, parse_guarded,
                                               read_file_guarded, tensors_within)
from xgen_declare.placement.gguf_header import GgufError, Header, read_header

__all__ = ["split_count", "split_part_paths", "read_part_tensors", "part_tensors_from_prefix", "with_parts",
           "read_split_facts", "MAX_SPLIT"]

_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
MAX_SPLIT = 512  # parts of one split GGUF (manifests/source.py takes as many)


def split_count(facts: GgufFacts) -> int:
    """split.count of a first part (1: not split); GgufError for a value that is no plausible count."""
    value = facts.metadata.get("split.count")
    if value is None:
        return 1
    return _Meta(facts.path, facts.metadata).check("split.count", value, MAX_SPLIT, lo=1)


def split_part_paths(path: str, count: int) -> list[str]:
    """The later parts of the split GGUF whose first part is `path`, named as llama.cpp names them
    (STEM-00001-of-0000N.gguf); GgufError when `path` is not named so."""
    head, _, name = path.rpartition("/")
    m = _SPLIT_RE.match(name)
    if m is None or int(m["part"]) != 1 or int(m["count"]) != count:
        raise GgufError(path, f"a split GGUF of {count} parts (split.count) whose first part is not named "
                        f"STEM-00001-of-{count:05d}.gguf: its other parts cannot be found (rename them as "
                        "gguf-split names them)")
    prefix = f"{head}/" if head else ""
    return [f"{prefix}{m['stem']}-{i:05d}-of-{m['count']}.gguf" for i in range(2, count + 1)]


def part_tensors_from_prefix(head: bytes, size: int, path: str) -> list[TensorFact]:
    """The tensor table of a later part of a split GGUF whose start is `head` (BeyondPrefix: read more)."""
    return parse_guarded(path, size, lambda: read_header(head, path, file_size=size), _part_tensors)


def read_part_tensors(path: str) -> tuple[list[TensorFact], int]:
    """(the tensors, the file's size) of a later part on disk, opened and read as read_gguf_facts does."""
    return read_file_guarded(path, _part_tensors, "a part of a split GGUF", "cannot read this part of a split GGUF")


def _part_tensors(path: str, size: int, header: Header) -> list[TensorFact]:
    return tensors_within(path, header, size, alignment(_Meta(path, header.metadata)))[0]


def with_parts(facts: GgufFacts, parts: list[tuple[list[TensorFact], int]]) -> GgufFacts:
    """The first part's facts with the tensors (and sizes) of the later parts: the whole model. GgufError
    when the tensors do not add up to split.tensors.count (a part from another model)."""
    tensors = list(facts.tensors) + [t for ts, _ in parts for t in ts]
    want = facts.metadata.get("split.tensors.count")
    if want is not None and want != len(tensors):
        raise GgufError(facts.path, f"the {len(parts) + 1} parts of this split GGUF hold {len(tensors)} tensors but "
                                    f"split.tensors.count is {want!r}: a part is from another model or corrupt")
    return replace(facts, tensors=tensors, file_size=facts.file_size + sum(n for _, n in parts))


def read_split_facts(facts: GgufFacts) -> GgufFacts:
    """`facts` of a file on disk, with its later parts' tensors when it is the first part of a split GGUF."""
    count = split_count(facts)
    if count == 1:
        return facts
    parts = []
    for part in split_part_paths(facts.path, count):
        if not os.path.lexists(part):
            raise GgufError(facts.path, f"part {part.rsplit('/', 1)[-1]} of this split GGUF is missing: its "
                            "weights cannot be counted (put every part beside the first)")
        parts.append(read_part_tensors(part))
    return with_parts(facts, parts)
