"""Sparse GGUF fixtures of realistic shapes, generated per session (header + tensor table real, data a hole)."""

from __future__ import annotations

import pytest

from xgen_declare.testing.synthetic import SHAPES, write_sparse_gguf


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def sparse(gguf_dir):
    """sparse(name, weight_type="F16", **shape_changes) -> path of a sparse GGUF (cached per session)."""
    made: dict = {}

    def make(name: str, weight_type: str = "F16", **changes):
        key = repr((name, weight_type, sorted(changes.items())))
        if key not in made:
            shape = SHAPES[name].with_(**changes) if changes else SHAPES[name]
            suffix = "-".join(f"{k}{v}" for k, v in sorted(changes.items())).replace(" ", "")
            made[key] = str(write_sparse_gguf(gguf_dir / f"{name}-{weight_type}{suffix}.gguf", shape, weight_type,
                                              vocab=False))
        return made[key]

    return make
