"""Rendering `n_cpu_moe`: `--n-cpu-moe N` in both flag dialects, only for a llama-server whose `--help`
lists the flag (fake binaries printing the captured help texts of tests/fixtures/llama-server-help)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.conftest import model_yaml
from xgen_declare.inventory.dialect import flags_from_help
from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.inventory.model import Backend, Inventory
from tests.unit.desired.test_render import HELP, inventory

LINE = "-ncmoe, --n-cpu-moe N                   keep the Mixture of Experts (MoE) weights of the first N layers\n"


def fake_server(tmp_path: Path, help_text: str) -> str:
    """An executable that prints `help_text` for --help (the dialect probe runs it, no shell)."""
    (tmp_path / "help.txt").write_text(help_text)
    path = tmp_path / "llama-server"
    path.write_text(f"#!/bin/sh\ncat {tmp_path / 'help.txt'}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def render(write, inv: Inventory | None = None, **spec):
    path = write("m.yaml", model_yaml("moe", backend=spec.pop("backend", "llama-server-cpu"), **spec))
    d = build_desired([str(path.parent)], Config(), inv or Inventory(backends=[
        Backend(name="llama-server-cpu", available=True)]), preview=True)
    return d, path


def _value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.parametrize("help_file,extra,ngl", [("new.txt", "", "all"), ("old.txt", LINE, "999")])
def test_both_dialects_render_the_flag_when_help_lists_it(write, tmp_path, help_file, extra, ngl):
    """new.txt lists --n-cpu-moe; an old-dialect build from late 2025 (no --fit) has it too."""
    binary = fake_server(tmp_path, (HELP / help_file).read_text() + extra)
    d, _ = render(write, binary=binary, n_cpu_moe=3)
    assert d.problems == {}
    r = d.rendered["moe"]
    assert r.dialect == ("new" if help_file == "new.txt" else "old")
    assert _value(r.argv, "--n-cpu-moe") == "3" and _value(r.argv, "--n-gpu-layers") == ngl


def test_a_build_without_the_flag_is_a_problem_on_the_field(write, tmp_path):
    binary = fake_server(tmp_path, (HELP / "old.txt").read_text())
    d, path = render(write, binary=binary, n_cpu_moe=3)
    assert "moe" not in d.rendered
    assert [p.format() for p in d.problems["moe"]] == [
        f"{path}:8: spec.n_cpu_moe: {binary} has no --n-cpu-moe (its --help does not list it; llama.cpp added it "
        "in August 2025) (update llama.cpp, or remove n_cpu_moe)"]


def test_off_renders_nothing_and_needs_no_flag(write, tmp_path):
    binary = fake_server(tmp_path, (HELP / "old.txt").read_text())
    d, _ = render(write, binary=binary)
    assert d.problems == {} and "--n-cpu-moe" not in d.rendered["moe"].argv


def test_a_binary_that_cannot_be_probed_gets_the_flag_as_asked(write):
    d, _ = render(write, inv=inventory("new"), backend="llama-server-vulkan", n_cpu_moe=2)  # not on PATH here
    assert d.problems == {} and _value(d.rendered["moe"].argv, "--n-cpu-moe") == "2"


def test_auto_left_unresolved_renders_no_flag_and_warns(write):
    d, _ = render(write, n_cpu_moe="auto")  # /models/x.gguf does not exist: placement unknown
    r = d.rendered["moe"]
    assert "--n-cpu-moe" not in r.argv
    assert ("n_cpu_moe: auto was not resolved (placement unknown): no --n-cpu-moe, every expert weight stays with "
            "its layer; give a layer count to keep some in host memory") in r.warnings


def test_backend_auto_choosing_llama_cpp_python_is_a_problem(write):
    only_python = Inventory(backends=[Backend(name="llama-cpp-python", available=True)])
    d, path = render(write, inv=only_python, backend="auto", n_cpu_moe=2)
    assert [p.format() for p in d.problems["moe"]] == [
        f"{path}:7: spec.n_cpu_moe: n_cpu_moe only applies to llama-server backends, and llama-cpp-python was "
        "chosen (remove n_cpu_moe or choose a llama-server backend)"]


def test_a_user_template_that_drops_the_flag_is_a_problem(write, tmp_path):
    tdir = tmp_path / "templates"
    tdir.mkdir()
    (tdir / "llama-server.j2").write_text('{{ binary }} {{ "--model" }} {{ spec.model_path }}\n')
    path = write("m.yaml", model_yaml("moe", backend="llama-server-cpu", n_cpu_moe=2))
    d = build_desired([str(path.parent)], Config(templates_dir=str(tdir)),
                      Inventory(backends=[Backend(name="llama-server-cpu", available=True)]), preview=True)
    assert [p.format() for p in d.problems["moe"]] == [
        f"{path}:7: spec.n_cpu_moe: template llama-server.j2 does not pass n_cpu_moe on (no --n-cpu-moe in its "
        "output); see the shipped template"]


def test_flags_from_help_does_not_take_the_draft_flag_for_it():
    assert flags_from_help((HELP / "new.txt").read_text()) == ["--n-cpu-moe", "--cpu-moe"]
    assert flags_from_help((HELP / "old.txt").read_text()) == []
    assert flags_from_help("--spec-draft-n-cpu-moe, --n-cpu-moe-draft N\n") == []
    assert flags_from_help("--spec-draft-cpu-moe, -cmoed, --cpu-moe-draft\n") == []


ALL_LINE = "-cmoe, --cpu-moe                        keep all Mixture of Experts (MoE) weights in the CPU\n"


@pytest.mark.parametrize("help_file,extra", [("new.txt", ""), ("old.txt", LINE + ALL_LINE)])
def test_all_renders_cpu_moe_in_both_dialects(write, tmp_path, help_file, extra):
    """`all` is llama-server's --cpu-moe (common/arg.cpp: the expert pattern of every block), no count."""
    binary = fake_server(tmp_path, (HELP / help_file).read_text() + extra)
    d, _ = render(write, binary=binary, n_cpu_moe="all")
    assert d.problems == {}
    argv = d.rendered["moe"].argv
    assert "--cpu-moe" in argv and "--n-cpu-moe" not in argv
    assert argv[argv.index("--cpu-moe") + 1].startswith("-")  # a switch: no value follows it
    assert d.rendered["moe"].placement.n_cpu_moe == "all"


def test_all_on_a_build_without_cpu_moe_is_a_problem_on_the_field(write, tmp_path):
    binary = fake_server(tmp_path, (HELP / "old.txt").read_text() + LINE)  # --n-cpu-moe only
    d, path = render(write, binary=binary, n_cpu_moe="all")
    assert "moe" not in d.rendered
    assert [p.format() for p in d.problems["moe"]] == [
        f"{path}:8: spec.n_cpu_moe: {binary} has no --cpu-moe (its --help does not list it; llama.cpp added it "
        "in August 2025) (update llama.cpp, or remove n_cpu_moe)"]


def test_all_with_a_template_that_only_knows_counts_is_a_problem(write, tmp_path):
    tdir = tmp_path / "templates"
    tdir.mkdir()
    (tdir / "llama-server.j2").write_text('{{ binary }} {{ "--model" }} {{ spec.model_path }} '
                                          '{{ "--n-cpu-moe" }} {{ spec.n_cpu_moe }}\n')
    path = write("m.yaml", model_yaml("moe", backend="llama-server-cpu", n_cpu_moe="all"))
    d = build_desired([str(path.parent)], Config(templates_dir=str(tdir)),
                      Inventory(backends=[Backend(name="llama-server-cpu", available=True)]), preview=True)
    assert [p.format() for p in d.problems["moe"]] == [
        f"{path}:7: spec.n_cpu_moe: template llama-server.j2 does not pass n_cpu_moe on (no --cpu-moe in its "
        "output); see the shipped template"]
