"""The package's structure as README "Architecture" states it, checked on the source: no import cycle,
the folders in one order (each stage imports only the stages below it), placement a leaf library, one
caller of select_backend, a small top level, and the arrows between folders (processes never reaches up
into desired/ or reconciler/, router never into api/, nobody but cli/ into cli/). Every import counts,
including those inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "xgen_declare"


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = modules()


def _owner(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def imports_of(name: str) -> set[str]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            if t.startswith("xgen_declare"):
                owner = _owner(t)
                if owner and owner != name:
                    found.add(owner)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def edges(src: str, dst: str) -> list[str]:
    return sorted(f"{a} -> {b}" for a, bs in GRAPH.items() for b in bs
                  if a.startswith(f"xgen_declare.{src}") and b.startswith(f"xgen_declare.{dst}"))


def test_no_import_cycle():
    assert cycles() == []


# The stages, bottom first (README "Architecture"): a folder (or a top-level module) imports only what
# stands on an earlier line; two on one line are peers and import neither each other.
LAYERS = [
    ("__init__", "errors", "states", "tools"),      # vocabulary, and dev tools that import none of ours
    ("names", "readers"),                           # model names; generic readers (bounded, YAML, problems)
    ("backends", "placement", "sources"),           # backend facts; memory prediction; git sources
    ("config",),
    ("inventory", "manifests"),                     # the host; the manifests
    ("http", "processes"),
    ("desired", "store"),
    ("reconciler",),
    ("doctor", "export", "router"),
    ("api", "testing"),
    ("cli",),
]


def stage(module: str) -> str:
    """The folder (or top-level module) `module` belongs to: xgen_declare.desired.render -> desired."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def order_violations(graph: dict[str, set[str]], layers: list[tuple[str, ...]]) -> list[str]:
    """Every import between stages that does not go to a lower line of `layers` (or names a stage not in it)."""
    level = {name: i for i, line in enumerate(layers) for name in line}
    out = []
    for a, targets in graph.items():
        for b in targets:
            sa, sb = stage(a), stage(b)
            if sa == sb:
                continue
            if sa not in level or sb not in level:
                out.append(f"{a} -> {b}: {sa if sa not in level else sb} is in no line of LAYERS")
            elif level[sb] >= level[sa]:
                out.append(f"{a} -> {b}: {sa} may not import {sb} ({'a peer' if level[sb] == level[sa] else 'above it'})")
    return sorted(out)


def test_each_stage_imports_only_the_stages_below_it():
    assert order_violations(GRAPH, LAYERS) == []
    assert {stage(m) for m in GRAPH} <= {name for line in LAYERS for name in line}


def test_the_order_check_can_fail():
    graph = {"xgen_declare.config": {"xgen_declare.manifests.load"},      # up
             "xgen_declare.inventory.host": {"xgen_declare.manifests.request"},  # a peer
             "xgen_declare.desired.render": {"xgen_declare.nowhere.x"},   # an unknown stage
             "xgen_declare.cli.main": {"xgen_declare.cli.common", "xgen_declare.errors"}}  # fine
    assert order_violations(graph, LAYERS) == [
        "xgen_declare.config -> xgen_declare.manifests.load: config may not import manifests (above it)",
        "xgen_declare.desired.render -> xgen_declare.nowhere.x: nowhere is in no line of LAYERS",
        "xgen_declare.inventory.host -> xgen_declare.manifests.request: inventory may not import manifests (a peer)"]


def test_placement_imports_nothing_but_itself_errors_and_readers():
    outside = sorted(f"{a} -> {b}" for a, bs in GRAPH.items() if a.startswith("xgen_declare.placement")
                     for b in bs if not b.startswith(("xgen_declare.placement", "xgen_declare.readers"))
                     and b != "xgen_declare.errors")
    assert outside == []
    assert GRAPH["xgen_declare.errors"] == set()


def test_readers_sit_below_everything_but_errors():
    outside = sorted(f"{a} -> {b}" for a, bs in GRAPH.items() if a.startswith("xgen_declare.readers")
                     for b in bs if not b.startswith("xgen_declare.readers") and b != "xgen_declare.errors")
    assert outside == []


def test_sources_import_only_themselves_errors_and_readers():
    outside = sorted(f"{a} -> {b}" for a, bs in GRAPH.items() if a.startswith("xgen_declare.sources")
                     for b in bs if not b.startswith(("xgen_declare.sources", "xgen_declare.readers"))
                     and b != "xgen_declare.errors")
    assert outside == []


def test_select_backend_has_one_caller():
    callers = sorted(str(path.relative_to(PKG)) for path in PKG.rglob("*.py")
                     for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
                     == "select_backend")
    assert callers == ["desired/resolve.py"]


def test_top_level_holds_at_most_six_modules():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 6, top


def test_arrows_between_folders():
    assert edges("processes", "desired") == [] and edges("processes", "reconciler") == []
    assert edges("router", "api") == []
    assert edges("desired", "reconciler") == []
    outside_cli = sorted(e for e in (f"{a} -> {b}" for a, bs in GRAPH.items() for b in bs
                                     if b.startswith("xgen_declare.cli") and not a.startswith("xgen_declare.cli")))
    assert outside_cli == []


def test_the_checks_can_fail():
    """The graph sees what it must: relative and function-local imports, and a cycle when there is one."""
    assert "xgen_declare.desired.resolve" in GRAPH["xgen_declare.desired.build"]
    GRAPH["xgen_declare.errors"].add("xgen_declare.states")
    GRAPH["xgen_declare.states"].add("xgen_declare.errors")
    try:
        assert ["xgen_declare.errors", "xgen_declare.states"] in cycles()
    finally:
        GRAPH["xgen_declare.errors"].discard("xgen_declare.states")
        GRAPH["xgen_declare.states"].discard("xgen_declare.errors")


def _architecture_block() -> str:
    readme = (PKG.parent / "README.md").read_text()
    section = readme[readme.index("## Architecture"):readme.index("## Layout")]
    return section[section.index("```\nxgen_declare/"):].split("```")[1]


def test_readme_architecture_names_every_module_under_its_folder():
    """README "Architecture" lists every module of every folder (issue 22 item 7), so a new module is
    placed and described, and a moved one is moved there too."""
    entries: dict[str, str] = {}
    current = None
    for line in _architecture_block().splitlines():
        head = line[2:].split(" ", 1)[0] if line.startswith("  ") and not line.startswith("   ") else ""
        if head.endswith("/"):
            current = head.rstrip("/")
            entries[current] = ""
        if current:
            entries[current] += " " + line
    missing = []
    for path in sorted(PKG.glob("*/*.py")):
        folder, name = path.parent.name, path.stem
        if name == "__init__":
            continue
        text = entries.get(folder, "")
        words = text.translate(str.maketrans("(),:;", "     ")).split()
        if f"{name}.py" not in words and name not in words:
            missing.append(f"{folder}/{name}.py")
    assert missing == []


# Modules that may compare backend, family or engine names as text: backends/ (where they are defined),
# the per-backend binary detection (inventory/binaries.py), the fake backends (testing/), and placement/,
# a leaf that cannot import backends/ (its Demand.engine carries the engine's value).
NAME_OWNERS = ("xgen_declare.backends", "xgen_declare.inventory.binaries", "xgen_declare.testing",
               "xgen_declare.placement")


def _backend_words() -> set[str]:
    from xgen_declare.backends.families import ALL_BACKENDS, FAMILY

    return set(ALL_BACKENDS) | set(FAMILY.values()) | {"llama", "vllm"}


def name_comparisons(module: str, tree: ast.AST, words: set[str]) -> list[str]:
    """`x == "vllm"`, `x in ("llama-server-cuda", ...)`, `x.startswith("llama-server")`: decisions taken on a
    backend's name instead of its profile (backends/profile.py)."""
    out = []
    for node in ast.walk(tree):
        texts: list[str] = []
        if isinstance(node, ast.Compare):
            for part in [node.left, *node.comparators]:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    texts.append(part.value)
                elif isinstance(part, (ast.Tuple, ast.List, ast.Set)):
                    texts += [e.value for e in part.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("startswith", "endswith"):
            texts += [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if getattr(node.func, "attr", None) == "startswith":
                texts = [t for t in texts if t in words or t in ("llama-server", "vllm")]
        hits = [t for t in texts if t in words]
        if hits:
            out.append(f"{module}:{node.lineno}: {', '.join(hits)}")
    return out


def test_backend_decisions_go_through_the_profile():
    """Issue 22 item 5: outside NAME_OWNERS no module decides by a backend's, family's or engine's name."""
    words = _backend_words()
    found = []
    for name, path in MODULES.items():
        if not name.startswith(NAME_OWNERS):
            found += name_comparisons(name, ast.parse(path.read_text()), words)
    assert found == []


def test_the_name_check_can_fail():
    tree = ast.parse('if b == "vllm-cuda" or f in ("llama-server", "x") or b.startswith("vllm"):\n    pass\n')
    assert name_comparisons("m", tree, _backend_words()) == ["m:1: vllm-cuda", "m:1: llama-server", "m:1: vllm"]
