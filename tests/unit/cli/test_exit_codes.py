"""Every exit code has one meaning (errors.EXIT_CODES); README's "Exit codes" table and `--help` list
exactly those, and each code is produced by what its line says."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.conftest import REPO, model_yaml
from xgen_declare.errors import EXIT_CODES
from xgen_declare.processes.state_store import StateStore


@pytest.fixture
def manifests(write, tmp_path):
    (tmp_path / "sys").mkdir()
    write("xgen-declare.yaml", json.dumps({"binaries": {"llama-server-cpu": str(tmp_path / "no-such-server")},
                                           "ports": {"start": 29301, "end": 29310}}))
    return write


def run(cli, tmp_path, *args: str, state=None):
    return cli(*args, "--state-dir", str(state or tmp_path / "state"), "--sysfs-root", str(tmp_path / "sys"))


def test_readme_and_help_list_exactly_the_codes(cli):
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = [(int(c), text) for c, text in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.M)]
    assert rows == [(int(c), text) for c, text in EXIT_CODES.items()]
    r = cli("--help")
    assert r.code == 0
    help_text = " ".join(r.out.split("Exit codes:", 1)[1].split())
    for code, text in EXIT_CODES.items():
        assert f"{int(code)} {text}" in help_text


def test_0_success_and_1_invalid_input(cli, write):
    write("ok.yaml", model_yaml("ok"))
    assert cli("validate", str(write.root)).code == 0
    write("bad.yaml", model_yaml("bad", ctx_sise=1))
    r = cli("validate", str(write.root))
    assert r.code == 1 and "bad.yaml:6: spec.ctx_sise" in r.err


def test_2_usage(cli, tmp_path):
    assert cli("status", "--no-such-option").code == 2
    r = cli("up", "--state-dir", str(tmp_path / "empty"))
    assert r.code == 2
    assert r.err == (f"error: state dir {tmp_path / 'empty'} records no manifests dir: give DIR (or run "
                     "`xgen-declare apply DIR` / `run DIR` once)\n")


def test_3_goal_not_reached_and_1_wins_over_it(cli, manifests, tmp_path):
    manifests("a.yaml", model_yaml("a", backend="llama-server-cpu"))
    r = run(cli, tmp_path, "apply", str(manifests.root))
    assert r.code == 3 and "Blocked" in r.out
    manifests("bad.yaml", model_yaml("bad", ctx_sise=1))
    r = run(cli, tmp_path, "apply", str(manifests.root))
    assert r.code == 1 and "spec.ctx_sise" in r.out + r.err


def test_4_busy(cli, manifests, tmp_path):
    manifests("a.yaml", model_yaml("a", backend="llama-server-cpu"))
    holder = StateStore(tmp_path / "state")
    assert holder.try_lock()
    try:
        r = run(cli, tmp_path, "apply", str(manifests.root))
    finally:
        holder.unlock()
    assert r.code == 4
    assert r.err == (f"error: state dir {tmp_path / 'state'} is in use by another xgen-declare process (pid "
                     f"{os.getpid()}); stop the daemon first, or let it converge (it watches the manifests dir)\n")


def test_5_not_found(cli, tmp_path):
    r = run(cli, tmp_path, "logs", "nope")
    assert r.code == 5
    assert r.err == f"error: no log for 'nope' in {tmp_path / 'state' / 'logs'} (known: none)\n"


def test_6_state_dir_cannot_be_created(cli, manifests, tmp_path):
    """A state dir below a regular file: ENOTDIR, for root too (chmod does not stop root)."""
    manifests("a.yaml", model_yaml("a", backend="llama-server-cpu"))
    (tmp_path / "file").write_text("not a dir")
    state = tmp_path / "file" / "state"
    r = run(cli, tmp_path, "apply", str(manifests.root), state=state)
    assert r.code == 6
    assert r.err == f"error: cannot write {state / 'daemon.lock'}: Not a directory (errno 20 ENOTDIR)\n"


def test_7_cannot_serve(cli, manifests, tmp_path, monkeypatch):
    monkeypatch.setattr("xgen_declare.cli.run.setup_logging", lambda verbose: None)
    monkeypatch.delenv("XGEN_API_TOKEN", raising=False)
    r = run(cli, tmp_path, "run", str(manifests.root), "--api", "--api-host", "0.0.0.0")
    assert r.code == 7 and r.err.startswith("error: the API would listen on 0.0.0.0, beyond this machine, "
                                            "without a token")


@pytest.mark.parametrize("exc, code, err", [
    (RuntimeError("boom"), 70, "internal error: RuntimeError: boom (this is a bug in xgen-declare; rerun with "
                               "XGEN_DEBUG=1 for a traceback and report it)\n"),
    (KeyboardInterrupt(), 130, "aborted"),
])
def test_70_internal_and_130_interrupted(cli, tmp_path, monkeypatch, exc, code, err):
    def boom(*_a, **_k):
        raise exc

    monkeypatch.delenv("XGEN_DEBUG", raising=False)
    monkeypatch.setattr("xgen_declare.cli.status.status_rows", boom)
    r = run(cli, tmp_path, "status")
    assert (r.code, r.err.strip()) == (code, err.strip())


def test_6_records_cannot_be_written_by_a_one_shot_verb(cli, manifests, tmp_path):
    """apply (no daemon keeps its states in memory) fails when it cannot record them. The fault: a
    directory where the record's temp file goes (EISDIR, for root too)."""
    manifests("a.yaml", model_yaml("a", backend="llama-server-cpu"))
    state = tmp_path / "state"
    (state / "models" / f".a.json.{os.getpid()}.tmp").mkdir(parents=True)
    r = run(cli, tmp_path, "apply", str(manifests.root))
    assert r.code == 6
    assert r.err.endswith(f"error: state_write_failed: cannot write {state / 'models' / 'a.json'}: Is a directory "
                          f"(errno 21 EISDIR); the models' states could not be recorded (make the state dir {state} "
                          "writable, then run the verb again)\n")
