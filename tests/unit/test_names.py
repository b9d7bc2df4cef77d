"""Issue 12 item 3: a name that is not a model name (a DNS label) never reaches the state dir.

Before the fix, a document whose metadata.name failed validation still lent that raw name to the
reconciler ("manifest invalid: nothing running"), which saved a record under it: `../../x` wrote
STATE/../x.json, `$(touch /p/2)` made directories under models/, a NUL or 250 characters raised out
of `apply` (exit 70) and out of every daemon pass. `abc\\n` even passed validation (`$` matches before a
trailing newline)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import model_yaml
from xgen_declare.errors import ModelNotFound, StateError
from xgen_declare.manifests.load import load_paths
from xgen_declare.names import RULE_TEXT, is_model_name
from xgen_declare.processes.state_store import Record, StateStore

BAD = ["../../x", "$(touch /p/2)", "a\0b", "x" * 250, "abc\n", "", ".", "..", "a/b", "Upper", "-a", "x" * 64]
NAME_PROBLEM = ("metadata.name: must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits and '-', "
                "starting with a letter or digit)")


def bad_manifest(name: str, model_path: str = "/models/x.gguf") -> str:
    return (f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {json.dumps(name)}\n"
            f"spec:\n  model_path: {model_path}\n  backend: llama-server-cpu\n")


def tree(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, dirs, files in os.walk(root) for f in files + dirs)


def test_a_long_name_is_cut_in_messages_and_control_characters_escaped(cli, tmp_path):
    """#21: a 250-character name is not repeated whole; its control characters never reach the terminal."""
    r = cli("logs", "x" * 250 + "\x1b]0;pwned\x07", "--state-dir", str(tmp_path / "state"))
    assert r.code == 5 and "\x1b" not in r.err
    assert r.err == f"error: {'x' * 64!r}... (196 more characters) is not a model name ({RULE_TEXT})\n"


def test_the_rule():
    assert all(is_model_name(n) for n in ("a", "0", "qwen3-8b", "x" * 63))
    assert not any(is_model_name(n) for n in BAD)
    assert not is_model_name(None) and not is_model_name(3)


@pytest.mark.parametrize("bad", BAD)
def test_state_store_refuses_every_other_name(tmp_path, bad):
    s = StateStore(tmp_path / "state")
    shown = repr(bad) if len(bad) <= 64 else f"{bad[:64]!r}... ({len(bad) - 64} more characters)"  # cut
    expected = f"refusing the model name {shown} in the state dir {tmp_path / 'state'}: {RULE_TEXT}"
    for op in (lambda: s.save(Record(name=bad)), lambda: s.load(bad), lambda: s.delete(bad),
               lambda: s.log_path(bad), lambda: s.record_path(bad)):
        with pytest.raises(StateError) as exc:
            op()
        assert str(exc.value) == expected
    assert tree(tmp_path) == []


def test_state_store_skips_records_with_a_bad_or_foreign_name(tmp_path):
    s = StateStore(tmp_path)
    s.save(Record(name="good"))
    (tmp_path / "models" / "evil.json").write_text(json.dumps({"name": "../../x"}))
    (tmp_path / "models" / "other.json").write_text(json.dumps({"name": "good"}))
    assert list(s.load_all()) == ["good"]
    assert s.problems == [
        f"corrupt record {tmp_path}/models/evil.json: record name '../../x' is not a model name; fix: remove it "
        "(xgen-declare writes it again)",
        f"corrupt record {tmp_path}/models/other.json: record name 'good' does not match the file name "
        "other.json; fix: remove it (xgen-declare writes it again)"]


def test_a_bad_name_names_no_model_and_its_file_is_broken(write):
    files = [str(write(f"m{i}.yaml", bad_manifest(n))) for i, n in enumerate(["../../x", "a\0b", "abc\n"])]
    load = load_paths([str(write.root)])
    assert load.models == [] and load.invalid_names == {}
    assert load.broken_files == set(files)
    assert [p.format() for p in load.problems] == [f"{f}:4: {NAME_PROBLEM}" for f in files]


def test_plan_has_no_action_for_a_bad_name(cli, write, tmp_path):
    for i, n in enumerate(["../../x", "$(touch /p/2)", "a\0b", "x" * 250, "abc\n"]):
        write(f"bad{i}.yaml", bad_manifest(n))
    write("ok.yaml", model_yaml("ok", backend="llama-server-cpu"))
    state = tmp_path / "deep" / "state"
    for verb in (("plan",), ("apply", "--dry-run")):
        r = cli("--state-dir", str(state), *verb, str(write.root), "-o", "json")
        assert r.code == 1, r.err  # the broken files are invalid input (README "Exit codes"); ok is planned
        assert [a["name"] for a in r.json()["actions"]] == ["ok"]
        assert r.err.count(NAME_PROBLEM) == 5
    assert not (tmp_path / "deep" / "x.json").exists()


def test_a_bad_name_in_the_file_of_a_recorded_model_keeps_it(cli, write, tmp_path):
    """The file that declared `a` now names `A`: the file names no valid model, so `a` is kept (with the
    problem), as for a file that cannot be parsed; before, `a` was stopped and `A` got a record."""
    path = write("a.yaml", bad_manifest("A"))
    StateStore(tmp_path / "state").save(Record(name="a", state="Stopped", file=str(path)))
    r = cli("--state-dir", str(tmp_path / "state"), "plan", str(write.root), "-o", "json")
    assert r.code == 1, r.err
    assert [(a["kind"], a["name"], a["reason"], a["manifest_error"]) for a in r.json()["actions"]] == [
        ("keep", "a", "manifest file cannot be parsed: nothing running", f"{path}:4: {NAME_PROBLEM}")]


@pytest.mark.parametrize("verb", ["logs", "restart", "down", "up", "status"])
def test_cli_verbs_refuse_a_bad_name(cli, write, tmp_path, verb):
    state = tmp_path / "s" / "state"
    StateStore(state).save(Record(name="a", state="Stopped"))
    (state / "daemon.json").write_text(json.dumps({"manifests": [str(write.root)]}))
    (tmp_path / "s" / "x.log").write_text("outside the state dir\n")
    r = cli("--state-dir", str(state), verb, "../../x")
    assert (r.code, r.out, r.err) == (ModelNotFound.exit_code, "", f"error: '../../x' is not a model name "
                                                                   f"({RULE_TEXT})\n")
    assert tree(tmp_path / "s") == ["state", "state/daemon.json", "state/models", "state/models/a.json", "x.log"]


@pytest.mark.parametrize("what", ["empty", "missing"])
def test_an_empty_or_missing_dir_keeps_every_model_and_says_so(cli, write, tmp_path, what):
    """Issue 12 item 4 (the running case, with status and the log: tests/integration)."""
    StateStore(tmp_path / "state").save(Record(name="a", state="Stopped"))
    root = write.root if what == "empty" else tmp_path / "gone"
    r = cli("--state-dir", str(tmp_path / "state"), "plan", str(root))
    assert r.code == (0 if what == "empty" else 1), r.err  # a DIR that does not exist is invalid input
    assert r.out.splitlines() == [
        f"keep     a: kept: the manifests directory is {what} (reconciler.prune_empty is false)",
        f"note: the manifests directory {root} holds no manifest: nothing is stopped (an empty directory may "
        "be a failed mount); to stop the models, run `xgen-declare down` or set reconciler.prune_empty: true",
        "0 to start, 0 to restart, 0 to stop, 0 blocked, 1 unchanged"]
