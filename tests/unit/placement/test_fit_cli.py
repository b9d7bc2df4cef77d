
import pytest

INVENTORY = """\
apiVersion: xgen/v1
kind: Inventory
gpus:
  - {index: 0, vendor: nvidia, type: nvidia, name: RTX 4090, memory_total_mib: 24564, memory_free_mib: 24000}
  - {index: 1, vendor: nvidia, type: nvidia, name: RTX 4090, memory_total_mib: 24564, memory_free_mib: 24000}
cpu: {memory_total_mib: 131072, memory_available_mib: 120000}
"""


@pytest.fixture
def host(tmp_path):
    p = tmp_path / "host.yaml"
    p.write_text(INVENTORY)
    return str(p)


def test_fit_json_contract_8b(cli, sparse, host):
    r = cli("fit", sparse("llama3-8b"), "--ctx-size", "8192", "--parallel", "1", "--gpus", "0",
            "--inventory", host, "-o", "json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["n_gpu_layers"] == 33 and d["tensor_split"] == []
    assert d["kv_cache_mib"] == 1024.0 and d["compute_mib"] == 132.0 + 16.0
    assert set(d["per_gpu"][0]) >= {"gpu", "layers", "weights_mib", "kv_cache_mib", "compute_mib", "total_mib",
                                    "usable_mib"}
    g = d["per_gpu"][0]
    assert (g["gpu"], g["layers"], g["kv_cache_mib"], g["usable_mib"]) == (0, 33, 1024.0, 24000.0 - 1024)
    assert set(d["cpu"]) >= {"layers", "weights_mib", "kv_cache_mib", "total_mib"}
    assert d["cpu"]["weights_mib"] == 128256 * 4096 * 2 / 2**20
    assert d["weights_mib"] == pytest.approx(g["weights_mib"] + d["cpu"]["weights_mib"], abs=0.02)


def test_fit_70b_two_gpus(cli, sparse, host):
    r = cli("fit", sparse("llama3-70b", "Q4_K"), "--ctx-size", "8192", "--parallel", "1", "--inventory", host,
            "-o", "json")
    d = r.json()
    assert r.code == 0 and d["n_gpu_layers"] == 81 and d["tensor_split"] == [41, 40]
    assert [g["layers"] for g in d["per_gpu"]] == [41, 40] and d["kv_cache_mib"] == 2560.0


def test_fit_table(cli, sparse, host):
    r = cli("fit", sparse("llama3-8b"), "--ctx-size", "8192", "--gpus", "0", "--inventory", host)
    assert r.code == 0
    assert "n_gpu_layers: 33/33" in r.out and "GPU0" in r.out and "CPU" in r.out


def test_explicit_layers_that_do_not_fit_exit_3(cli, sparse, host):
    r = cli("fit", sparse("llama3-70b", "Q4_K"), "--gpus", "0", "--n-gpu-layers", "all", "--inventory", host,
            "-o", "json")
    assert r.code == 3 and r.json()["per_gpu"][0]["fits"] is False


def test_not_gguf_is_a_message(cli, tmp_path, host):
    p = tmp_path / "x.gguf"
    p.write_text("hello world, not a model at all")
    r = cli("fit", str(p), "--inventory", host)
    assert r.code == 1
    assert r.err.strip() == f"error: {p}: not a GGUF file (no GGUF magic at the start)"
    assert "Traceback" not in r.err


def test_truncated_is_a_message(cli, sparse, tmp_path, host):
    p = tmp_path / "cut.gguf"
    p.write_bytes(open(sparse("tiny"), "rb").read(3000))
    r = cli("fit", str(p), "--inventory", host)
    assert r.code == 1 and r.err.startswith(f"error: {p}: truncated GGUF file")


def test_unknown_arch_is_a_message(cli, tmp_path, host):
    from xgen_declare.testing.synthetic import Shape, write_sparse_gguf
    p = write_sparse_gguf(tmp_path / "m.gguf", Shape("mamba", 2, 64, 1, 1, 128, 400), vocab=False)
    r = cli("fit", str(p), "--inventory", host)
    assert r.code == 1 and r.err.startswith(f"error: {p}: unknown architecture 'mamba'")


def test_unknown_gpu(cli, sparse, host):
    r = cli("fit", sparse("tiny"), "--gpus", "5", "--inventory", host)
    assert r.code == 2 and "GPU 5 is not in the inventory (GPUs: 0, 1)" in r.err


def test_fit_gemma3_iswa_names_the_design(cli, sparse, host):
    # the case: 576 MiB predicted where llama-server allocates 96 + 15 MiB (test_attention.py)
    r = cli("fit", sparse("gemma3-270m"), "--ctx-size", "32768", "--parallel", "1", "--gpus", "0",
            "--inventory", host)
    assert r.code == 0, r.err
    assert ("note: iSWA: 3 global layers x 32768 cells + 15 windowed layers x 1024 cells (window 512 tokens)"
            in r.out)
    assert "not modelled" not in r.out
    r = cli("fit", sparse("gemma3-270m"), "--ctx-size", "8192", "--parallel", "1", "--swa-full", "--gpus", "0",
            "--inventory", host, "-o", "json")
    assert r.json()["kv_cache_mib"] == 144.0  # 24 + 120 MiB: llama-server's lines with --swa-full


def test_fit_hybrid_shows_the_recurrent_state(cli, sparse, host):
    # Granite-4.0-H-Tiny shape, auto slots: 4 sequence states x 36 Mamba-2 layers = 221.48 MiB
    # (llama-server's 'RS buffer size' line, test_attention.py), on the GPU with its layers
    r = cli("fit", sparse("granite-4.0-h-tiny"), "--ctx-size", "8192", "--gpus", "0", "--inventory", host,
            "-o", "json")
    d = r.json()
    assert r.code == 0 and d["recurrent_state_mib"] == 221.48 and d["per_gpu"][0]["recurrent_state_mib"] == 221.48
    assert d["kv_cache_mib"] == 64.0 and d["cpu"]["recurrent_state_mib"] == 0.0
    assert d["notes"] == ["hybrid (Mamba-2 + attention): 4 attention layers x 8192 cells + 36 recurrent layers x 4 sequence states"]
    r = cli("fit", sparse("granite-4.0-h-tiny"), "--ctx-size", "8192", "--gpus", "0", "--inventory", host)
    head = r.out.splitlines()[2].split()
    assert head[:5] == ["device", "layers", "weights", "MiB", "KV"] and "recurrent" in head
    assert "recurrent" not in cli("fit", sparse("tiny"), "--inventory", host).out  # plain models: no column


def test_fit_n_cpu_moe_auto(cli, sparse, host):
    path = sparse("mixtral-8x7b", "Q4_0")
    d = cli("fit", path, "--ctx-size", "8192", "--parallel", "1", "--gpus", "0", "--inventory", host, "-o", "json").json()
    assert d["n_gpu_layers"] < 33 and d["n_cpu_moe"] == 0
    r = cli("fit", path, "--ctx-size", "8192", "--parallel", "1", "--gpus", "0", "--inventory", host,
            "--n-cpu-moe", "auto", "-o", "json")
    d = r.json()
    assert r.code == 0 and d["n_gpu_layers"] == 33 and d["n_cpu_moe"] > 0 and d["cpu_moe_mib"] > 0
    r = cli("fit", path, "--ctx-size", "8192", "--parallel", "1", "--gpus", "0", "--inventory", host,
            "--n-cpu-moe", "auto")
    assert f"n_cpu_moe: {d['n_cpu_moe']} ({d['cpu_moe_mib']:.0f} MiB of expert weights in host memory)" in r.out
    r = cli("fit", path, "--n-cpu-moe", "x", "--inventory", host)
    assert r.code == 2 and "use auto, all or a layer count" in r.err


def test_fit_n_cpu_moe_all_is_every_block(cli, sparse, host):
    path = sparse("mixtral-8x7b", "Q4_0")
    args = ("fit", path, "--ctx-size", "8192", "--parallel", "1", "--gpus", "0", "--inventory", host, "-o", "json")
    every = cli(*args, "--n-cpu-moe", "32").json()
    d = cli(*args, "--n-cpu-moe", "all").json()
    assert d["n_cpu_moe"] == 32 and d["cpu_moe_mib"] == every["cpu_moe_mib"] > 0 and d["n_gpu_layers"] == 33


def test_fit_names_the_new_hybrid_designs(cli, sparse, host):
    # Nemotron-H (Nemotron-Nano-9B-v2 shape): 4 attention layers' KV (64 MiB) + 27 Mamba-2 states (138.80 MiB),
    # llama-server's own lines (test_hybrids.py); 17 GiB of F16 weights fit one 24 GiB GPU
    r = cli("fit", sparse("nemotron-h-9b"), "--ctx-size", "4096", "--parallel", "1", "--gpus", "0",
            "--inventory", host, "-o", "json")
    d = r.json()
    assert r.code == 0 and d["kv_cache_mib"] == 64.0 and d["recurrent_state_mib"] == 138.8
    assert d["notes"] == ["hybrid (Mamba-2 + attention): 4 attention layers x 4096 cells + 27 recurrent layers x 1 "
                          "sequence states + 25 layers with neither"]
    r = cli("fit", sparse("lfm2-1.2b"), "--ctx-size", "8192", "--gpus", "0", "--inventory", host)
    assert r.code == 0, r.err
    assert ("note: hybrid (short convolution + attention): 6 attention layers x 8192 cells + 10 recurrent layers x 4 "
            "sequence states") in r.out


def test_fit_of_a_split_gguf_counts_every_part(cli, tmp_path, host):
    from xgen_declare.testing.hostile_gguf import write_gguf, write_split_gguf

    whole = cli("fit", write_gguf(tmp_path / "whole.gguf"), "--inventory", host, "-o", "json")
    split = cli("fit", str(write_split_gguf(tmp_path, "m", 3)[0]), "--inventory", host, "-o", "json")
    assert (whole.code, split.code) == (0, 0), whole.err + split.err
    a, b = whole.json(), split.json()
    assert a["weights_mib"] == b["weights_mib"] > 0 and a["per_gpu"] == b["per_gpu"] and a["cpu"] == b["cpu"]
