"""Rendering: golden argv (both llama-server dialects), the seed's deployments, hostile strings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import REPO, model_yaml
from xgen_declare.inventory.dialect import dialect_from_help
from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.errors import RenderError
from xgen_declare.inventory.model import Backend, Gpu, Inventory
from xgen_declare.desired.render import parse_argv

HELP = REPO / "tests" / "fixtures" / "llama-server-help"
EXAMPLES = REPO / "manifests" / "examples"


def inventory(dialect: str | None = None, gpus: list[Gpu] | None = None) -> Inventory:
    names = ["llama-server-vulkan", "llama-server-cuda", "llama-server-rocm", "llama-server-cpu",
             "llama-cpp-python", "vllm-cuda", "vllm-rocm", "vllm-cpu"]
    return Inventory(gpus=gpus or [], backends=[Backend(name=n, available=True, dialect=dialect) for n in names])


def render_dir(paths, inv=None, config=None):
    d = build_desired([str(p) for p in paths], config or Config(), inv or inventory("new"), preview=True)
    return d


def flags(argv: list[str]) -> dict[str, str | None]:
    """--flag value pairs (value None for switches); order-free comparison of a command."""
    out: dict[str, str | None] = {}
    i = 1
    while i < len(argv):
        if argv[i] == "--served-model-name":  # vLLM's nargs="+": every name up to the next flag
            j = next((k for k in range(i + 1, len(argv)) if argv[k].startswith("--")), len(argv))
            out[argv[i]] = " ".join(argv[i + 1:j])
            i = j
        elif argv[i].startswith("-"):
            nxt = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
            out[argv[i]] = nxt
            i += 2 if nxt is not None else 1
        else:
            out.setdefault("_positional", "")
            out["_positional"] = (out["_positional"] + " " + argv[i]).strip()
            i += 1
    return out


def test_help_fixtures_have_different_dialects():
    assert dialect_from_help((HELP / "new.txt").read_text()) == "new"
    assert dialect_from_help((HELP / "old.txt").read_text()) == "old"


SEED = {
    "qwen3-8b": ("llama-server-vulkan", {"--model": "/app/models/Qwen3-8B.Q4_K_M.gguf", "--n-gpu-layers": "99",
                                         "--main-gpu": "0"}),
    "llama-70b-split": ("llama-server-vulkan", {"--model": "/app/models/llama-70b.Q4_K_M.gguf",
                                                "--n-gpu-layers": "80", "--main-gpu": "0", "--split-mode": "layer",
                                                "--tensor-split": "3.0,1.0"}),
    "llama-70b-offload": ("llama-server-vulkan", {"--model": "/app/models/llama-70b.Q4_K_M.gguf",
                                                  "--n-gpu-layers": "20", "--main-gpu": "0"}),
    "llama-3-3-70b": ("vllm", {"_positional": "serve meta-llama/Llama-3.3-70B-Instruct",
                               "--served-model-name": "llama-3-3-70b meta-llama/Llama-3.3-70B-Instruct",
                               "--tensor-parallel-size": "4", "--gpu-memory-utilization": "0.9",
                               "--max-model-len": "32768", "--trust-remote-code": None}),
    # not from the seed: the example of `source:` (issue 23); a preview without the store: the hub equivalent
    "qwen3-0-6b": ("llama-server-vulkan", {"--hf-repo": "Qwen/Qwen3-0.6B-GGUF", "--hf-file": "Qwen3-0.6B-Q8_0.gguf",
                                           "--ctx-size": "4096"}),
}


@pytest.mark.parametrize("dialect", ["new", "old"])
def test_seed_deployments_golden(dialect):
    d = render_dir([EXAMPLES], inventory(dialect))
    assert d.problems == {}
    assert set(d.rendered) == set(SEED)
    for name, (argv0, expected) in SEED.items():
        r = d.rendered[name]
        assert r.argv[0] == argv0
        got = flags(r.argv)
        for flag, value in expected.items():
            assert got[flag] == value, (name, flag)
        assert got["--host"] == "127.0.0.1" and got["--port"] == str(r.port)
        assert r.endpoint == f"http://127.0.0.1:{r.port}/v1"
    offload = flags(d.rendered["llama-70b-offload"].argv)
    if dialect == "new":
        assert offload["--load-mode"] == "mmap+mlock" and "--mlock" not in offload
        assert offload["--fit"] == "off"
    else:
        assert "--mlock" in offload and "--load-mode" not in offload and "--fit" not in offload


def _fake_llama_server(tmp_path: Path, name: str, help_file: Path) -> str:
    script = tmp_path / name
    script.write_text(f"#!/bin/sh\ncat '{help_file}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_captured_help_texts_produce_different_argv(tmp_path, write, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write("m.yaml", model_yaml("m", backend="llama-server-cpu", n_gpu_layers=-1, mlock=True, flash_attn="on"))
    inv = Inventory(backends=[Backend(name="llama-server-cpu", available=True)])  # dialect unknown: probe
    argvs = {}
    for dialect in ("new", "old"):
        binary = _fake_llama_server(tmp_path, f"llama-server-{dialect}", HELP / f"{dialect}.txt")
        d = render_dir([write.root], inv, Config(binaries={"llama-server-cpu": binary}))
        assert d.problems == {}
        argvs[dialect] = d.rendered["m"].argv[1:]
        assert d.rendered["m"].dialect == dialect
    new, old = flags(["x"] + argvs["new"]), flags(["x"] + argvs["old"])
    assert new["--n-gpu-layers"] == "all" and new["--fit"] == "off" and new["--load-mode"] == "mmap+mlock"
    assert new["--flash-attn"] == "on"
    assert old["--n-gpu-layers"] == "999" and "--mlock" in old and old["--flash-attn"] is None
    assert argvs["new"] != argvs["old"]


def test_auto_layers_leave_fit_on(write):
    write("m.yaml", model_yaml("m", n_gpu_layers="auto"))
    argv = render_dir([write.root]).rendered["m"].argv
    assert flags(argv)["--n-gpu-layers"] == "auto" and "--fit" not in argv


def test_auto_layers_on_old_build_is_a_clear_error(write):
    write("m.yaml", model_yaml("m", n_gpu_layers="auto"))
    d = render_dir([write.root], inventory("old"))
    assert "m" not in d.rendered
    assert d.problems["m"][0].message.endswith(
        "n_gpu_layers: auto needs a llama-server with --fit (this build is older); set a layer count")


def test_embedding_llama_server_and_llama_cpp_python(write):
    write("a.yaml", model_yaml("emb", server_type="embedding", backend="llama-server-cpu"))
    write("b.yaml", model_yaml("emb2", server_type="embedding", backend="llama-cpp-python", pooling="cls"))
    d = render_dir([write.root])
    a = flags(d.rendered["emb"].argv)
    assert "--embedding" in a and a["--pooling"] == "mean"
    b = d.rendered["emb2"].argv
    assert b[1:3] == ["-m", "llama_cpp.server"] and flags(b)["--embedding"] == "true"
    assert d.rendered["emb2"].readiness_path == "/v1/models"
    assert d.rendered["emb"].readiness_path == "/health"


def test_llama_cpp_python_flags(write):
    write("a.yaml", model_yaml("p", backend="llama-cpp-python", gpus=[0, 1], tensor_split=[3, 1], ctx_size=2048,
                               mlock=True, split_mode="row"))
    argv = render_dir([write.root], inventory("new", [Gpu(index=0, vendor="nvidia", type="nvidia"),
                                                      Gpu(index=1, vendor="nvidia", type="nvidia")])).rendered["p"].argv
    i = argv.index("--tensor_split")
    assert argv[i + 1:i + 3] == ["3.0", "1.0"]
    f = flags(argv)
    assert f["--split_mode"] == "2" and f["--n_ctx"] == "2048" and f["--use_mlock"] == "true"
    assert f["--n_gpu_layers"] == "-1"


def test_vllm_embedding_and_api_key_is_env_not_argv(write):
    write("a.yaml", model_yaml("v", model_path="org/emb", backend="vllm-cuda", server_type="embedding",
                               api_key_file="/run/secrets/key"))
    r = render_dir([write.root]).rendered["v"]
    assert flags(r.argv)["--runner"] == "pooling"
    assert "/run/secrets/key" not in r.argv and r.secret_env == {"VLLM_API_KEY": "/run/secrets/key"}
    assert r.to_json()["env"]["VLLM_API_KEY"] == "***"
    assert "VLLM_API_KEY='***'" in r.shell() or "VLLM_API_KEY=***" in r.shell()


def test_vllm_serves_the_name_aliases_and_the_model_id(write):
    """vLLM answers only to --served-model-name once given; the model id (what it answers to by default)
    stays one of them, after the name it reports first. Local directories: as on argv."""
    write("a.yaml", model_yaml("v", model_path="meta-llama/Llama-3.3-70B-Instruct", backend="vllm-cuda",
                               alias=["llama", "v"]))
    write("sub/b.yaml", model_yaml("d", model_path="./tiny", backend="vllm-cpu"))
    write("c.yaml", model_yaml("g", alias=["x"]))
    d = render_dir([write.root])
    argv = d.rendered["v"].argv
    i = argv.index("--served-model-name")
    assert argv[i + 1:i + 5] == ["v", "llama", "meta-llama/Llama-3.3-70B-Instruct", "--gpu-memory-utilization"]
    argv = d.rendered["d"].argv
    i = argv.index("--served-model-name")
    assert argv[2] == argv[i + 2] == str(write.root / "sub" / "tiny")
    assert flags(d.rendered["g"].argv)["--alias"] == "g,x"


def test_llama_server_api_key_file_flag(write):
    write("a.yaml", model_yaml("k", api_key_file="/run/secrets/key", env={"HF_TOKEN": "hf_abc", "PLAIN": "1"}))
    r = render_dir([write.root]).rendered["k"]
    assert flags(r.argv)["--api-key-file"] == "/run/secrets/key"
    shown = r.to_json()["env"]
    assert shown["HF_TOKEN"] == "***" and shown["PLAIN"] == "1"
    assert "hf_abc" not in r.shell()


HOSTILE = ["a b", "it's \"quoted\"", "x; rm -rf /", "$(touch /tmp/pwned)", "`id`", "--evil", "|| true", "*", "~"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_stay_one_argv_element(write, value):
    write("a.yaml", model_yaml("h", model_path=f"/m/{value}.gguf", alias=["a" + value.replace(",", "")],
                               extra_args=[value], env={"X": value}))
    r = render_dir([write.root]).rendered["h"]
    assert r.argv[r.argv.index("--model") + 1] == f"/m/{value}.gguf"
    assert r.argv[-1] == value
    assert r.env["X"] == value


def test_newline_then_flag_is_rejected_not_split(write):
    write("a.yaml", 'apiVersion: xgen/v1\nkind: Model\nmetadata: {name: h}\nspec:\n'
                    '  model_path: "/m/a.gguf"\n  extra_args: ["x\\n- --evil"]\n')
    d = render_dir([write.root])
    assert "h" not in d.rendered
    assert d.load.problems[0].field == "spec.extra_args"


def test_template_output_cannot_gain_elements_from_values():
    # finalize encodes; a raw literal outside {{ }} is refused
    assert parse_argv('"a" "b c"\n "d\\"e"', "t") == ["a", "b c", 'd"e']
    with pytest.raises(RenderError, match="text outside"):
        parse_argv('"a" --evil', "t")


def test_user_template_dir_overrides_per_file_and_is_sandboxed(tmp_path, write):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "llama-server.j2").write_text('{{ binary }} {{ "--custom" }} {{ spec.model_path }}\n')
    write("a.yaml", model_yaml("a"))
    write("b.yaml", model_yaml("b", model_path="org/m"))
    d = render_dir([write.root], config=Config(templates_dir=str(tdir)))
    assert d.rendered["a"].argv[1:] == ["--custom", "/models/x.gguf"]
    assert d.rendered["b"].argv[1] == "serve"  # vllm.j2 still the shipped one
    (tdir / "llama-server.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    d = render_dir([write.root], config=Config(templates_dir=str(tdir)))
    assert "a" not in d.rendered and "template llama-server.j2" in d.problems["a"][0].message
    (tdir / "llama-server.j2").write_text("{{ binary }} --raw-literal\n")
    d = render_dir([write.root], config=Config(templates_dir=str(tdir)))
    assert "text outside" in d.problems["a"][0].message
    (tdir / "llama-server.j2").write_text("{{ nosuchvar }}\n")
    d = render_dir([write.root], config=Config(templates_dir=str(tdir)))
    assert "'nosuchvar' is undefined" in d.problems["a"][0].message


def test_gpu_pinning_env(write):
    gpus = [Gpu(index=0, vendor="nvidia", type="nvidia", uuid="GPU-aaa", vendor_index=0),
            Gpu(index=1, vendor="nvidia", type="nvidia", uuid="GPU-bbb", vendor_index=1),
            Gpu(index=2, vendor="amd", type="amd_cdna", gfx="gfx942", vendor_index=0, vulkan_index=0),
            Gpu(index=3, vendor="amd", type="amd_cdna", gfx="gfx942", vendor_index=1, vulkan_index=3)]
    write("a.yaml", model_yaml("c", backend="llama-server-cuda", gpus=[1]))
    write("b.yaml", model_yaml("r", backend="llama-server-rocm", gpus=[3]))
    write("c.yaml", model_yaml("v", backend="llama-server-vulkan", gpus=[2, 3], tensor_split=[1, 1]))
    write("d.yaml", model_yaml("h", model_path="org/m", backend="vllm-rocm", gpus=[2, 3], tensor_parallel_size=2))
    d = render_dir([write.root], inventory("new", gpus))
    assert d.rendered["c"].env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "GPU-bbb"}
    assert d.rendered["r"].env == {"ROCR_VISIBLE_DEVICES": "1", "HIP_VISIBLE_DEVICES": None,
                                   "CUDA_VISIBLE_DEVICES": None}
    assert d.rendered["v"].env == {"GGML_VK_VISIBLE_DEVICES": "0,3"}
    assert d.rendered["h"].env == {"HIP_VISIBLE_DEVICES": "0,1", "ROCR_VISIBLE_DEVICES": None,
                                   "CUDA_VISIBLE_DEVICES": None}
    assert "env -u ROCR_VISIBLE_DEVICES -u CUDA_VISIBLE_DEVICES" in d.rendered["h"].shell()


def test_spec_hash_ignores_explicit_defaults(write):
    write("a.yaml", model_yaml("a", port=8011))
    h1 = render_dir([write.root]).rendered["a"].spec_hash()
    write("a.yaml", model_yaml("a", port=8011, split_mode="layer", n_gpu_layers=-1, cache_type_k="f16",
                               host="127.0.0.1", enabled=True, alias=[]))
    h2 = render_dir([write.root]).rendered["a"].spec_hash()
    write("a.yaml", model_yaml("a", port=8011, ctx_size=4096))
    h3 = render_dir([write.root]).rendered["a"].spec_hash()
    assert h1 == h2 != h3


def test_ports_preview_and_stability(write):
    from xgen_declare.desired.ports import assign_ports
    from xgen_declare.errors import PortRangeExhausted

    a = assign_ports({"b": None, "a": None, "x": 8001}, 8001, 8003, preview=True)
    assert (a["x"].port, a["a"].port, a["b"].port) == (8001, 8002, 8003)
    assert a["a"].source == "preview"
    kept = assign_ports({"b": None, "c": None}, 8001, 8003, held={"b": 8003})
    assert kept["b"].port == 8003 and kept["c"].port == 8001  # b keeps its port although a left
    with pytest.raises(PortRangeExhausted, match="no free port in 8001-8001 for: b"):
        assign_ports({"a": None, "b": None}, 8001, 8001)


def test_relative_model_paths_are_relative_to_the_manifest(write):
    write("sub/a.yaml", model_yaml("a", model_path="models/x.gguf"))
    write("b.yaml", model_yaml("b", model_path="./hf-dir", backend="vllm-cpu"))
    write("c.yaml", model_yaml("c", model_path="org/model"))
    d = render_dir([write.root])
    assert d.rendered["a"].argv[d.rendered["a"].argv.index("--model") + 1] == str(write.root / "sub/models/x.gguf")
    assert d.rendered["b"].argv[2] == str(write.root / "hf-dir")
    assert d.rendered["c"].argv[2] == "org/model"


@pytest.mark.parametrize("value, shown", [("a\x1b]0;pwned\x07", "\\x1b at position 1"), ("x\x9b", "\\x9b at position 1"),
                                          ("b\n--evil", "\\n at position 1")])
def test_a_template_value_with_control_characters_is_refused(value, shown):
    """#21 finding 17, defence in depth: whatever a template renders, no control character reaches argv."""
    from xgen_declare.desired.render import _finalize

    with pytest.raises(RenderError) as exc:
        _finalize(value)
    assert str(exc.value).endswith(f"contains a control character ({shown}); remove it from the value the "
                                   "template renders")
    assert _finalize("tab\tok") == '"tab\\tok"'


def test_a_user_template_that_is_a_fifo_or_too_big_is_the_models_problem_at_once(tmp_path, write):
    """#21: a templates dir from a config repo is input from outside. A FIFO (or a link to a device) named
    like a template was silently skipped for the shipped one; a huge one was read whole. Now each is
    refused at once, as that model's render problem naming the file; the other family still renders."""
    from xgen_declare.testing.deadline import within

    tdir = tmp_path / "tpl"
    tdir.mkdir()
    os.mkfifo(tdir / "llama-server.j2")
    write("a.yaml", model_yaml("a"))
    write("b.yaml", model_yaml("b", model_path="org/m"))
    d = within(10, lambda: render_dir([write.root], config=Config(templates_dir=str(tdir))), release=tdir / "llama-server.j2")
    assert "a" not in d.rendered and d.rendered["b"].argv[1] == "serve"
    assert d.problems["a"][0].message == (f"template llama-server.j2: {tdir}/llama-server.j2: is a FIFO (named pipe), "
                                          "not a regular file")
    (tdir / "llama-server.j2").unlink()
    (tdir / "llama-server.j2").write_text("{{ binary }}\n" + "{# pad #}" * 120_000)
    d = render_dir([write.root], config=Config(templates_dir=str(tdir)))
    assert "is 1080013 bytes; the limit for a template is 1048576 bytes" in d.problems["a"][0].message
