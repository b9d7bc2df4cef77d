"""readers.bounded: a path from outside is read only when it is a regular file, within its limit."""

from __future__ import annotations

import os
import pytest

from xgen_declare.errors import ExitCode, FileRefused
from xgen_declare.readers.bounded import opened, read_bytes, read_text, tail_bytes
from xgen_declare.testing.deadline import within


def test_a_regular_file_is_read(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("name: x\n")
    assert read_text(p, 100) == "name: x\n"
    assert read_bytes(p, 8) == b"name: x\n"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    p = tmp_path / "m.yaml"
    os.mkfifo(p)
    with pytest.raises(FileRefused, match=r"is a FIFO \(named pipe\), not a regular file") as err:
        within(5, lambda: read_text(p, 100), release=p)
    assert err.value.path == str(p) and err.value.exit_code == ExitCode.INVALID_INPUT


def test_a_link_to_dev_zero_is_refused_before_any_read(tmp_path):
    p = tmp_path / "m.yaml"
    p.symlink_to("/dev/zero")
    with pytest.raises(FileRefused, match="is a character device, not a regular file"):
        within(5, lambda: read_bytes(p, 1 << 20))


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(FileRefused, match="is a directory"):
        read_bytes(tmp_path, 10)


def test_a_file_over_the_limit_is_refused(tmp_path):
    p = tmp_path / "big"
    p.write_bytes(b"x" * 2048)
    with pytest.raises(FileRefused, match="is 2 KiB; the limit for a key file is 1 KiB"):
        read_bytes(p, 1024, what="a key file")
    assert read_bytes(p, 2048) == b"x" * 2048


def test_no_follow_refuses_a_link_and_follow_takes_it(tmp_path):
    target = tmp_path / "target"
    target.write_text("secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert read_text(link, 100) == "secret"
    with pytest.raises(FileRefused, match="is a symlink, and this file may not be one"):
        read_text(link, 100, follow=False)
    with pytest.raises(FileRefused):
        with opened(link, follow=False):
            pass


def test_missing_file_is_an_oserror_for_the_caller(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "nope", 10)


def test_tail_reads_the_end_only(tmp_path):
    p = tmp_path / "log"
    p.write_bytes(b"a" * 1000 + b"END")
    assert tail_bytes(p, 3) == b"END"
    assert tail_bytes(p, 10_000) == b"a" * 1000 + b"END"
