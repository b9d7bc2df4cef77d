"""Issue 21 findings 1, 11, 16: what the manifests walk and the manifest reader do with entries that are
not plain manifest files: a FIFO or a link to /dev/zero named *.yaml (once: `open()` blocked the control
loop forever / read until memory ran out), a link to / (walked whole on every pass), a link to a file
outside the dir, a state dir inside the manifests dir. Every load runs in a thread with a deadline, so a
regression fails instead of hanging the suite."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.conftest import model_yaml
from xgen_declare.manifests.load import LoadResult, load_paths

DEADLINE = 20.0


def load_within(paths: list[str], deadline: float = DEADLINE) -> tuple[LoadResult, float]:
    """load_paths in a daemon thread; fails (never hangs) when it has not returned by the deadline."""
    out: list = []
    started = time.monotonic()
    t = threading.Thread(target=lambda: out.append(load_paths(paths)), daemon=True)
    t.start()
    t.join(deadline)
    assert out, f"load_paths({paths}) still running after {deadline}s (blocked in open() or walking forever?)"
    return out[0], time.monotonic() - started


@pytest.fixture
def mdir(tmp_path):
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "good.yaml").write_text(model_yaml("good"))
    return d


def formatted(result: LoadResult) -> list[str]:
    return [p.format() for p in result.problems]


def test_a_fifo_named_yaml_is_skipped_unopened_and_the_others_load(mdir):
    os.mkfifo(mdir / "pipe.yaml")
    result, _ = load_within([str(mdir)])
    assert [m.name for m in result.models] == ["good"]
    assert formatted(result) == [f"{mdir}/pipe.yaml: is a FIFO (named pipe), not a regular file: skipped (never "
                                 "opened) (replace it with a regular manifest file or remove it)"]
    assert result.errors and result.broken_files == {f"{mdir}/pipe.yaml"}  # a model it declared is kept


def test_a_fifo_given_as_the_path_is_refused_not_opened_blocking(mdir):
    os.mkfifo(mdir / "pipe.yaml")
    result, _ = load_within([str(mdir / "pipe.yaml")])
    assert formatted(result) == [f"{mdir}/pipe.yaml: file not read: it is a FIFO (named pipe), not a regular file "
                                 "(replace it with a regular file or remove it)"]
    assert result.broken_files == {f"{mdir}/pipe.yaml"}


def test_a_link_to_dev_zero_is_refused_not_read(mdir):
    (mdir / "zero.yaml").symlink_to("/dev/zero")
    result, _ = load_within([str(mdir)])
    assert [m.name for m in result.models] == ["good"]
    assert formatted(result) == [f"{mdir}/zero.yaml: is a character device, not a regular file: skipped (never "
                                 "opened) (replace it with a regular manifest file or remove it)"]
    result, _ = load_within([str(mdir / "zero.yaml")])
    assert formatted(result) == [f"{mdir}/zero.yaml: file not read: it is a character device, not a regular file "
                                 "(replace it with a regular file or remove it)"]


def test_a_directory_link_to_root_is_skipped_at_once_with_a_warning(mdir):
    (mdir / "everything").symlink_to("/")
    result, took = load_within([str(mdir)])
    assert [m.name for m in result.models] == ["good"] and result.ok
    assert formatted(result) == [f"{mdir}/everything: warning: symlinked directory leads outside the manifests "
                                 "directory (to /): skipped (copy it into the directory, or give its path on the "
                                 "command line)"]
    assert took < 5, took  # it was 17 s (4 330 files) on every pass


def test_a_file_link_outside_is_skipped_with_a_warning_and_keeps_its_model(mdir, tmp_path):
    (tmp_path / "elsewhere.yaml").write_text(model_yaml("far"))
    (mdir / "far.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    result, _ = load_within([str(mdir)])
    assert [m.name for m in result.models] == ["good"] and result.ok
    assert formatted(result) == [f"{mdir}/far.yaml: warning: symlinked file leads outside the manifests directory "
                                 f"(to {tmp_path}/elsewhere.yaml): skipped (copy it into the directory, or give its "
                                 "path on the command line)"]
    assert result.broken_files == {f"{mdir}/far.yaml"}  # `far`, if it runs, keeps its process
    result, _ = load_within([str(mdir / "far.yaml")])  # named on the command line: read
    assert [m.name for m in result.models] == ["far"] and result.problems == []


def test_links_that_stay_inside_are_followed(mdir):
    (mdir / "sub").mkdir()
    (mdir / "sub" / "inner.yaml").write_text(model_yaml("inner"))
    (mdir / "alias-dir").symlink_to("sub")  # same real files: loaded once
    (mdir / "same.yaml").symlink_to("good.yaml")
    result, _ = load_within([str(mdir)])
    assert sorted(m.name for m in result.models) == ["good", "inner"] and result.problems == []


def test_a_state_dir_inside_the_manifests_dir_is_not_walked(mdir):
    state = mdir / "state"
    (state / "models").mkdir(parents=True)
    (state / "daemon.lock").write_text("123\n")
    (state / "models" / "looks-like.yaml").write_text(model_yaml("ghost"))
    result, _ = load_within([str(mdir)])
    assert [m.name for m in result.models] == ["good"] and result.problems == []
    assert result.files == [str(mdir / "good.yaml")]
    # a dir without the markers is an ordinary subdir
    (state / "daemon.lock").unlink()
    result, _ = load_within([str(mdir)])
    assert sorted(m.name for m in result.models) == ["ghost", "good"]


def test_the_manifests_dir_itself_may_be_the_state_dir(mdir):
    (mdir / "models").mkdir()
    (mdir / "daemon.json").write_text("{}")
    result, _ = load_within([str(mdir)])
    assert [m.name for m in result.models] == ["good"]
