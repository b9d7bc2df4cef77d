"""llama-fit-params cross-check: found next to llama-server, its fitted args parsed, failures reported."""

from __future__ import annotations

from pathlib import Path

from xgen_declare.inventory.model import Backend, Inventory
from xgen_declare.desired.fit_params import cross_check, parse_fitted


def _inventory(tmp_path: Path, script: str | None) -> Inventory:
    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True)
    server = bindir / "llama-server"
    server.write_text("#!/bin/sh\nexit 0\n")
    server.chmod(0o755)
    if script is not None:
        fp = bindir / "llama-fit-params"
        fp.write_text(script)
        fp.chmod(0o755)
    return Inventory(backends=[Backend(name="llama-server-cuda", available=True, binary=str(server))])


def test_parse_fitted_takes_the_last_line():
    assert parse_fitted("log line\n\n-c 8192 -ngl 33 -ts 20,13\n") == ["-c", "8192", "-ngl", "33", "-ts", "20,13"]
    assert parse_fitted("") == []


def test_cross_check_runs_the_tool_next_to_llama_server(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    inv = _inventory(tmp_path, '#!/bin/sh\necho "loading $2" >&2\necho "-c $4 -ngl 33 -ts 20,13"\n')
    cc = cross_check("/m/x.gguf", 8192, 1024, inv)
    assert cc.error is None and cc.tool.endswith("bin/llama-fit-params")
    assert (cc.n_gpu_layers, cc.tensor_split) == ("33", "20,13")
    assert cc.args[:2] == ["-c", "8192"]


def test_cross_check_failures_are_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    cc = cross_check("/m/x.gguf", None, 1024, _inventory(tmp_path, None))
    assert cc.tool is None and "not found" in cc.error
    cc = cross_check("/m/x.gguf", None, 1024, _inventory(tmp_path / "b", "#!/bin/sh\necho 'bad model' >&2\nexit 3\n"))
    assert cc.error.endswith("exited 3: bad model")
