"""Compiled templates are shared by every Renderer of a process (each reconcile pass builds a new
Renderer; compiling llama-server.j2 again each pass cost ~70 ms of every pass on a loaded 2-core host,
the largest part of an on-demand wake). An edited template is compiled again."""

from __future__ import annotations

import jinja2

from tests.conftest import model_yaml
from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.inventory.model import Backend, Inventory

INV = Inventory(backends=[Backend(name="llama-server-cpu", available=True, dialect="new")])


def compiles(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = jinja2.Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):
        seen.append(name)
        return real(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return seen


def test_unchanged_template_is_compiled_once_across_passes(write, monkeypatch):
    write("a.yaml", model_yaml("a"))
    write("b.yaml", model_yaml("b"))
    seen = compiles(monkeypatch)
    first = build_desired([str(write.root)], Config(), INV, preview=True)
    n = len(seen)
    second = build_desired([str(write.root)], Config(), INV, preview=True)
    assert len(seen) == n, seen
    assert first.rendered["a"].argv == second.rendered["a"].argv


def test_edited_template_is_compiled_again(tmp_path, write, monkeypatch):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "llama-server.j2").write_text('{{ binary }} {{ "--one" }}\n')
    write("a.yaml", model_yaml("a"))
    config = Config(templates_dir=str(tdir))
    seen = compiles(monkeypatch)
    assert build_desired([str(write.root)], config, INV, preview=True).rendered["a"].argv[1:] == ["--one"]
    (tdir / "llama-server.j2").write_text('{{ binary }} {{ "--two" }}\n')
    assert build_desired([str(write.root)], config, INV, preview=True).rendered["a"].argv[1:] == ["--two"]
    assert seen.count("llama-server.j2") == 2
