"""Safe YAML loading with lines, and a property test: no input ever escapes as an exception."""

from __future__ import annotations

import time

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import model_yaml
from xgen_declare.manifests.load import load_paths, validate_document
from xgen_declare.readers.yamlsource import MAX_FILE_BYTES, MAX_NODES, dump_exact, first_difference, parse_documents


def test_lines_of_keys_and_items():
    docs, problems = parse_documents("a: 1\nb:\n  - x\n  - y: 2\n", "f")
    assert problems == []
    d = docs[0]
    assert d.line_of(("b", 1, "y")) == 4 and d.line_of(("b", 0)) == 3 and d.line_of(("nope",)) == 1


def test_duplicate_key():
    _, problems = parse_documents("a: 1\nb: 2\na: 3\n", "f")
    assert [(p.line, p.message, p.hint) for p in problems] == [(3, "duplicated key 'a'", "it is already set on line 1; keep one")]


def test_python_tags_refused():
    for text in ("x: !!python/object/apply:os.system ['id']\n", "!!python/name:os.system\n",
                 "x: !!binary aGk=\n", "x: !custom 1\n"):
        docs, problems = parse_documents(text, "f")
        assert docs == [] and len(problems) == 1 and "is not allowed" in problems[0].message


def test_alias_bomb_and_recursion():
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh"))
    _, problems = parse_documents(bomb, "f")
    assert "file expands to more than 20000 nodes" in problems[0].message
    _, problems = parse_documents("a: &a [*a]\n", "f")
    assert "deeper than" in problems[0].message


def test_the_node_budget_is_per_file_not_per_document():
    """Issue 21 finding 12: 1 MiB of small bombs, each under the budget, cost 80 s of CPU (128 KiB: 9 s of a
    stalled control loop). Now the documents of a file share one budget and the rest is not built."""
    bomb = "---\na: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n" for p, c in zip("abc", "bcd"))  # ~11 100 nodes each
    assert parse_documents(bomb, "one")[1] == []  # one of them is fine
    text = bomb * (128 * 1024 // len(bomb))
    started = time.monotonic()
    docs, problems = parse_documents(text, "many.yaml")
    took = time.monotonic() - started
    assert [p.format() for p in problems] == [
        "many.yaml:7: file expands to more than 20000 nodes (all its documents together) (an alias bomb? write "
        "the values out instead of repeating anchors, or split the file)"]
    assert len(docs) == 1 and took < 5, took  # the second document spends the budget; the rest is never built


def test_a_huge_flat_document_is_not_composed_whole(monkeypatch):
    """Finding 12, the other half: a 1 MiB flat list (no alias) was composed whole by the pure-Python composer
    (57 s on a loaded 2-core host) before the budget refused it. Composing now stops at 2 * MAX_NODES
    (keys are at most half of the nodes, so nothing the budget accepts is refused)."""
    calls = [0]
    compose = yaml.composer.Composer.compose_node

    def counting(self, parent, index):
        calls[0] += 1
        return compose(self, parent, index)

    monkeypatch.setattr(yaml.composer.Composer, "compose_node", counting)
    _, problems = parse_documents("a: [" + ",".join(["x"] * 100_000) + "]\n", "flat.yaml")
    assert calls[0] <= 2 * MAX_NODES, calls[0]
    assert [p.message for p in problems] == ["file expands to more than 20000 nodes (all its documents together)"]
    assert parse_documents("{" + ",".join(f"k{i}: {i}" for i in range(MAX_NODES - 1)) + "}\n", "ok")[1] == []


def test_syntax_error_has_line():
    _, problems = parse_documents("a: 1\nb: [1, 2\nc: 3\n", "f")
    assert problems[0].line == 3 and problems[0].message.startswith("YAML syntax error")


def test_file_size_cap_and_binary(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: \xff\xfe\n")
    probs = {p.file.rsplit("/", 1)[1]: p for p in load_paths([str(tmp_path)]).problems}
    assert (probs["big.yaml"].message, probs["big.yaml"].hint) == (
        "file not read: it is 1048577 bytes; the limit for a manifest is 1048576 bytes", "split it into smaller files")
    assert probs["bad.yaml"].message == "file is not valid UTF-8"


def test_discovery_skips_hidden_backups_and_config(tmp_path):
    for name in ["a.yaml", "b.yml", ".hidden.yaml", "c.yaml~", ".c.yaml.swp", "d.yaml.bak", "xgen-declare.yaml",
                 "notes.txt", "..data/e.yaml", "sub/f.yaml", "#g.yaml#"]:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(model_yaml(name.replace(".", "-").replace("/", "-").strip("-#~").lower()[:20] or "x"))
    files = sorted(f.rsplit("/", 1)[1] for f in load_paths([str(tmp_path)]).files)
    assert files == ["a.yaml", "b.yml", "f.yaml"]


def test_configmap_style_symlinks(tmp_path):
    data = tmp_path / "..2026_11_25"
    data.mkdir()
    (data / "m.yaml").write_text(model_yaml("cm"))
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "m.yaml").symlink_to("..data/m.yaml")
    result = load_paths([str(tmp_path)])
    assert [m.name for m in result.models] == ["cm"] and result.problems == []


# --- property test: mutate valid manifests; every outcome is a problem with file and line -------------

VALID = model_yaml("prop", ctx_size=4096, gpus=[0, 1], tensor_split=[1.0, 1.0], alias=["a"], env={"A": "1"})
BASE = yaml.safe_load(VALID)

hostile_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=50),
    st.text(min_size=5000, max_size=6000), st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from(["!!python/object:os.system {}", "*undefined_alias", "&a [*a]", "!!binary aGk=",
                     "{a: 1, a: 2}", "[", "'unterminated", "\t- tab", "~", ".nan", "0x1F", "2026-01-01"]),
)
fields = st.sampled_from(list(BASE["spec"]) + list(BASE) + ["metadata", "name", "n_gpu_layers", "port",
                                                              "gpus", "tensor_split", "unknown_field"])


def _mutated(field: str, value) -> str:
    if isinstance(value, str) and value[:1] in "!*&{['\t~." or value in ("0x1F", "2026-01-01"):
        rendered = value  # raw YAML syntax, not a quoted string
    else:
        rendered = yaml.safe_dump(value, default_flow_style=True).strip()
        if rendered.endswith("..."):
            rendered = rendered[:-3].strip()
    lines = VALID.splitlines()
    out, replaced = [], False
    for line in lines:
        key = line.strip().split(":", 1)[0]
        if key == field and not replaced:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{field}: {rendered}")
            replaced = True
        else:
            out.append(line)
    if not replaced:
        out.append(f"  {field}: {rendered}")
    return "\n".join(out) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=fields, value=hostile_values)
def test_mutations_only_ever_produce_problems_with_file_and_line(field, value):
    text = _mutated(field, value)
    docs, problems = parse_documents(text, "prop.yaml")
    for doc in docs:
        decl, doc_problems = validate_document(doc)
        problems.extend(doc_problems)
        assert (decl is None) == bool(doc_problems)
    for p in problems:
        assert p.file == "prop.yaml"
        assert isinstance(p.line, int) and p.line >= 1, p
        assert p.message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    docs, problems = parse_documents(text, "t.yaml")
    for doc in docs:
        validate_document(doc)
    assert all(p.file == "t.yaml" for p in problems)


def test_dump_exact_reads_back_the_same_strings_and_types():
    data = {"spec": {"alias": ["a\x85b", "x\u2028", "é"], "n": 1, "f": 1.0, "b": True, "s": "true", "d": "2020-01-01"}}
    text, problems = dump_exact(data, "api/m.yaml")
    assert problems == [] and "\\N" in text  # NEL escaped: PyYAML writes it raw in UTF-8 mode, read back as ' '
    docs, _ = parse_documents(text, "api/m.yaml")
    assert first_difference(docs[0].data, data) is None
    assert dump_exact({"k": "é"}, "x")[0] == "k: é\n"  # readable UTF-8 when it survives


def test_dump_exact_names_a_value_that_does_not_survive():
    text, problems = dump_exact({"spec": {"tensor_split": [1.0, float("nan")]}}, "api/m.yaml")
    assert text is None
    assert [p.format() for p in problems] == ["api/m.yaml: spec.tensor_split[1]: this value cannot be written to "
                                              "YAML and read back unchanged (remove control characters and unpaired "
                                              "surrogates from it)"]
    assert first_difference({"a": [1]}, {"a": [True]}) == ("a", 0)
