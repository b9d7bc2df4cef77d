"""A spawn's secret files (vLLM's VLLM_API_KEY from spec.api_key_file) are read through the bounded
reader on the control loop: a FIFO is refused at once (SecretFileError: the model is Blocked with the
reason), never waited on; a huge file is refused too (issue #21 finding 3)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from xgen_declare.testing.deadline import within
from xgen_declare.errors import SecretFileError
from xgen_declare.processes.supervised import child_env
from xgen_declare.testing.fakes import spec


def with_secret(path) -> object:
    return dataclasses.replace(spec("v"), secret_env={"VLLM_API_KEY": str(path)})


def test_the_secret_is_read_into_the_environment(tmp_path):
    key = tmp_path / "k"
    key.write_text("sk-vllm\n")
    assert child_env(with_secret(key), "m")["VLLM_API_KEY"] == "sk-vllm"


def test_a_fifo_secret_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "k"
    os.mkfifo(fifo)
    with pytest.raises(SecretFileError) as err:
        within(5, lambda: child_env(with_secret(fifo), "m"), release=fifo)
    assert str(err.value) == (f"cannot read the secret file for VLLM_API_KEY: {fifo}: is a FIFO (named pipe), not a "
                              "regular file (point it at a regular file)")


def test_a_huge_or_missing_secret_file_is_refused(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"k" * (1 << 20))
    with pytest.raises(SecretFileError, match=r"VLLM_API_KEY: .*big: is 1.0 MiB; the limit for a secret file is "
                                              r"64 KiB \(use a smaller file\)$"):
        child_env(with_secret(big), "m")
    with pytest.raises(SecretFileError, match=r"VLLM_API_KEY: .*nope: cannot be read: No such file or "
                                              r"directory \(check the path and its permissions\)$"):
        child_env(with_secret(tmp_path / "nope"), "m")
