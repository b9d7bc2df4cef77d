"""Every reconcile pass reads every manifest; parsing them was 150 ms of a 200 ms pass over 20
manifests on the loaded 2-core host (bench/vs_supervisord.py, bench/cold_start.py). A text parsed
before is not parsed again; callers get their own copy (they may change it)."""

from __future__ import annotations

from xgen_declare.readers import yamlsource
from xgen_declare.readers.yamlsource import load_documents, parse_documents

TEXT = "apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: a\nspec:\n  model_path: /m/a.gguf\n  ctx_size: 4096\n"


def counting_loader(monkeypatch) -> list[int]:
    made: list[int] = []
    real = yamlsource._Loader  # the SafeLoader subclass that counts composed nodes

    class Counting(real):
        def __init__(self, stream):
            made.append(1)
            super().__init__(stream)

    monkeypatch.setattr(yamlsource, "_Loader", Counting)
    return made


def test_same_text_is_parsed_once_and_each_caller_gets_a_copy(monkeypatch):
    made = counting_loader(monkeypatch)
    docs, problems = parse_documents(TEXT, "cache-test-a.yaml")
    docs[0].data["spec"]["ctx_size"] = 1  # a caller changing its copy
    again, _ = parse_documents(TEXT, "cache-test-a.yaml")
    assert len(made) == 1 and problems == []
    assert again[0].data["spec"]["ctx_size"] == 4096 and again[0].line_of(("spec", "ctx_size")) == 7


def test_edited_file_is_parsed_again(tmp_path, monkeypatch):
    made = counting_loader(monkeypatch)
    path = tmp_path / "a.yaml"
    path.write_text(TEXT)
    assert load_documents(path)[0][0].data["spec"]["ctx_size"] == 4096
    path.write_text(TEXT.replace("4096", "8192"))
    assert load_documents(path)[0][0].data["spec"]["ctx_size"] == 8192
    assert load_documents(path)[0][0].data["spec"]["ctx_size"] == 8192
    assert len(made) == 2


def test_problems_come_back_every_time(monkeypatch):
    bad = "a: 1\na: 2\n"
    first = parse_documents(bad, "cache-test-dup.yaml")[1]
    second = parse_documents(bad, "cache-test-dup.yaml")[1]
    assert first == second and len(first) == 1 and "a" in first[0].message
