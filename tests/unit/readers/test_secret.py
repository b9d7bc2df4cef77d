"""readers/secret.py: one read of a token or key file, and one FileRefused whatever its fault."""

from __future__ import annotations

import os

import pytest

from xgen_declare.errors import FileRefused
from xgen_declare.readers.secret import read_secret


def refused(path, **kw) -> str:
    with pytest.raises(FileRefused) as exc:
        read_secret(path, **kw)
    return str(exc.value)


def test_the_text_without_surrounding_whitespace(tmp_path):
    (tmp_path / "t").write_text("  s3cret \n")
    assert read_secret(tmp_path / "t") == "s3cret"


def test_every_fault_is_one_file_refused_naming_the_path(tmp_path):
    (tmp_path / "empty").write_text(" \n")
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    (tmp_path / "two").write_text("a\nb\n")
    (tmp_path / "big").write_text("x" * 2048)
    os.mkfifo(tmp_path / "fifo")
    assert refused(tmp_path / "nope") == (f"{tmp_path}/nope: cannot be read: No such file or directory "
                                          "(check the path and its permissions)")
    assert refused(tmp_path / "empty") == (f"{tmp_path}/empty: is empty (put the secret in it; "
                                           "`openssl rand -hex 32` makes one)")
    assert refused(tmp_path / "bin") == f"{tmp_path}/bin: is not UTF-8 text (put the secret in it as text)"
    assert refused(tmp_path / "two", one_line=True) == (f"{tmp_path}/two: holds more than one line (put only "
                                                        "the secret in it, on one line)")
    assert refused(tmp_path / "big", limit=1024).startswith(f"{tmp_path}/big: is 2 KiB; the limit for a token file")
    assert refused(tmp_path / "fifo").startswith(f"{tmp_path}/fifo: is a FIFO (named pipe)")
    assert read_secret(tmp_path / "empty", allow_empty=True) == ""
    assert read_secret(tmp_path / "two") == "a\nb"
