"""Issue 21 findings 1 and 11 at the CLI: `validate DIR` and `plan DIR` with a FIFO, a link to /dev/zero,
a link to / or a FIFO config in the manifests dir print the problem (file, reason, what to do) and return,
within a deadline; a FIFO or a device is exit 1 for `validate`. `plan` treats the file like any invalid
manifest (it shows the problem, keeps the model, exits 0: tests/unit/test_names.py), except a broken
config, which is exit 1 for every verb."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import model_yaml
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.testing.deadline import within

FIFO = "is a FIFO (named pipe), not a regular file: skipped (never opened) (replace it with a regular manifest " \
       "file or remove it)"


def run(cli, *args):
    """The CLI call, failing (not hanging the suite) when it blocks: on a FIFO, the old code did."""
    return within(30, lambda: cli(*args), what=" ".join(args[-3:]))


@pytest.fixture
def root(write):
    write("good.yaml", model_yaml("good"))
    return write.root


def test_validate_reports_a_fifo_and_exits_1(cli, root):
    os.mkfifo(root / "pipe.yaml")
    r = run(cli, "validate", str(root))
    assert (r.code, r.out) == (1, "")
    assert r.err.splitlines() == [f"{root}/pipe.yaml: {FIFO}", "1 problem(s) in 1 file(s); 1 valid model(s)"]


def test_validate_reports_a_link_to_dev_zero_and_exits_1(cli, root):
    (root / "zero.yaml").symlink_to("/dev/zero")
    r = run(cli, "validate", str(root))
    assert r.code == 1
    assert r.err.splitlines()[0] == (f"{root}/zero.yaml: is a character device, not a regular file: skipped (never "
                                     "opened) (replace it with a regular manifest file or remove it)")
    r = run(cli, "validate", str(root / "zero.yaml"))
    assert r.code == 1
    assert r.err.splitlines()[0] == (f"{root}/zero.yaml: file not read: it is a character device, not a regular "
                                     "file (replace it with a regular file or remove it)")


def test_validate_skips_a_link_to_root_with_a_warning(cli, root):
    (root / "all").symlink_to("/")
    r = run(cli, "validate", str(root))
    assert (r.code, r.out) == (0, "ok: 1 model(s) in 1 file(s)\n")
    assert r.err == (f"{root}/all: warning: symlinked directory leads outside the manifests directory (to /): "
                     "skipped (copy it into the directory, or give its path on the command line)\n")


def test_a_fifo_config_is_exit_1_for_validate_and_plan(cli, root, tmp_path):
    os.mkfifo(root / "xgen-declare.yaml")
    r = run(cli, "validate", str(root))
    assert r.code == 1
    assert r.err.splitlines()[0] == (f"{root}/xgen-declare.yaml: file not read: it is a FIFO (named pipe), not a "
                                     "regular file (replace it with a regular file or remove it)")
    r = run(cli, "--state-dir", str(tmp_path / "state"), "plan", str(root))
    assert (r.code, r.out) == (1, "")
    assert f"{root}/xgen-declare.yaml: file not read: it is a FIFO (named pipe)" in r.err


def test_plan_keeps_the_model_whose_file_became_a_fifo(cli, root, tmp_path):
    (root / "xgen-declare.yaml").write_text(json.dumps({"ports": {"start": 29321, "end": 29330}}))
    os.mkfifo(root / "a.yaml")
    StateStore(tmp_path / "state").save(Record(name="a", state="Stopped", file=str(root / "a.yaml")))
    r = run(cli, "--state-dir", str(tmp_path / "state"), "plan", str(root), "-o", "json")
    assert r.code == 1, r.err  # a broken file is invalid input; the model is kept
    actions = {a["name"]: (a["kind"], a["reason"], a["manifest_error"]) for a in r.json()["actions"]}
    assert actions["a"] == ("keep", "manifest file cannot be parsed: nothing running", f"{root}/a.yaml: {FIFO}")
    assert f"{root}/a.yaml: {FIFO}" in r.err


def test_validate_with_a_fifo_as_the_inventory_file_exits_1(cli, root, tmp_path):
    os.mkfifo(tmp_path / "host.yaml")
    r = run(cli, "validate", str(root), "--inventory", str(tmp_path / "host.yaml"))
    assert r.code == 1
    assert f"{tmp_path}/host.yaml: file not read: it is a FIFO (named pipe), not a regular file (replace it with a " \
           "regular file or remove it)" in r.err
