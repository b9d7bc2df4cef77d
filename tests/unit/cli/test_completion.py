"""Shell completion (click's): verbs, options, paths for DIR arguments, and model names from the state
dir's records and the manifests dirs it records, through the same entry point the shell calls."""

from __future__ import annotations

import pytest

from xgen_declare.cli.main import main
from xgen_declare.processes.state_store import Record, StateStore


@pytest.fixture
def complete(monkeypatch, capsys):
    """complete("xgen-declare logs ") -> the (type, value) items bash would be offered."""
    def run(line: str) -> list[tuple[str, str]]:
        words = line.split(" ")
        monkeypatch.setenv("_XGEN_DECLARE_COMPLETE", "bash_complete")
        monkeypatch.setenv("COMP_WORDS", line)
        monkeypatch.setenv("COMP_CWORD", str(len(words) - 1))
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main([])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        return [tuple(item.split(",", 1)) for item in out.splitlines() if item]
    return run


def test_verbs(complete):
    assert complete("xgen-declare do") == [("plain", "doctor"), ("plain", "down")]


def test_options(complete):
    items = complete("xgen-declare status --")
    assert ("plain", "--output") in items and ("plain", "--state-dir") in items


def test_dir_arguments_complete_as_paths(complete):
    assert complete("xgen-declare doctor ma") == [("file", "ma")]


def test_model_names_from_records_and_recorded_manifests(complete, tmp_path, monkeypatch):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "m.yaml").write_text("apiVersion: xgen/v1\nkind: Model\nmetadata: {name: from-manifest}\n"
                                      "spec: {model_path: /models/x.gguf}\n")
    store = StateStore(tmp_path / "state")
    store.save(Record(name="from-state"))
    store.save(Record(name="other"))
    store.write_daemon_info({"manifests": [str(manifests)]})
    monkeypatch.setenv("XGEN_STATE_DIR", str(tmp_path / "state"))
    assert complete("xgen-declare logs ") == [("plain", "from-manifest"), ("plain", "from-state"), ("plain", "other")]
    assert complete("xgen-declare restart from-") == [("plain", "from-manifest"), ("plain", "from-state")]
    assert complete("xgen-declare status o") == [("plain", "other")]


def test_model_names_without_state_complete_nothing(complete, tmp_path, monkeypatch):
    monkeypatch.setenv("XGEN_STATE_DIR", str(tmp_path / "none"))
    assert complete("xgen-declare down ") == []
