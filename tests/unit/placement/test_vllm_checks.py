"""vLLM pre-checks from config.json (a tiny HF llama dir: 4 heads, like tools/tinyhf.py writes)."""

import json

from xgen_declare.placement.vllm_checks import find_config, vllm_problems, weights_bytes

TINY = {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 4, "num_key_value_heads": 4,
        "num_hidden_layers": 2, "hidden_size": 64, "max_position_embeddings": 512, "torch_dtype": "float32"}
L8B = {"num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32, "hidden_size": 4096,
       "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}


def model_dir(tmp_path, cfg=TINY, weights=1 << 20):
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    with open(d / "model.safetensors", "wb") as f:
        f.truncate(weights)
    return d


def test_heads_not_divisible_uses_vllms_text(tmp_path):
    cfg, d, warning = find_config(str(model_dir(tmp_path)))
    assert warning is None and weights_bytes(d) == 1 << 20
    assert vllm_problems(cfg, tp=3, pp=1, gpus=[0, 1, 2], totals_mib=[81920] * 3, gmu=0.9, max_model_len=None,
                         weights=1 << 20) == [
        "Total number of attention heads (4) must be divisible by tensor parallel size (3)."]


def test_more_gpus_than_available():
    assert vllm_problems(TINY, tp=2, pp=2, gpus=[0, 1], totals_mib=[81920] * 2, gmu=0.9, max_model_len=None,
                         weights=0) == [
        "tensor_parallel_size x pipeline_parallel_size = 4 needs 4 GPUs but 2 are available to this model "
        "(GPU0, GPU1)"]


def test_weights_plus_kv_for_max_model_len():
    # Llama-3-8B bf16: 15 GiB of weights; KV per token = 2 x 32 x 8 x 128 x 2 = 128 KiB -> 16 GiB at 131072;
    # (21.6 - 15) GiB / 128 KiB = 54067 tokens would fit
    w = 15 * (1 << 30)
    got = vllm_problems(L8B, tp=1, pp=1, gpus=[0], totals_mib=[24576], gmu=0.9, max_model_len=None, weights=w)
    assert got == ["weights 15.0 GiB + KV cache for max_model_len 131072 16.0 GiB per GPU > gpu_memory_utilization "
                   "0.9 x 24.0 GiB = 21.6 GiB on GPU0; max_model_len ≤ 54067 would fit"]
    assert vllm_problems(L8B, tp=1, pp=1, gpus=[0], totals_mib=[24576], gmu=0.9, max_model_len=32768,
                         weights=w) == []
    # tp=2 halves weights and KV heads per GPU
    assert vllm_problems(L8B, tp=2, pp=1, gpus=[0, 1], totals_mib=[24576] * 2, gmu=0.9, max_model_len=None,
                         weights=w) == []


def test_missing_config_is_a_warning(tmp_path):
    (tmp_path / "empty").mkdir()
    cfg, _, warning = find_config(str(tmp_path / "empty"))
    assert cfg is None and warning == f"no config.json in {tmp_path / 'empty'}: vLLM pre-checks skipped (placement unknown)"
    cfg, _, warning = find_config("nobody/nothing-here")
    assert cfg is None and "not in the local HuggingFace cache" in warning


def test_bad_json_is_a_warning(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    cfg, _, warning = find_config(str(d))
    assert cfg is None and "not valid JSON" in warning


def test_a_fifo_config_json_is_a_warning_not_a_wait(tmp_path, monkeypatch):
    """#21 finding 2, vLLM side: config.json is read with readers.bounded, in a model dir and in the cache."""
    import os

    from xgen_declare.testing.deadline import within

    d = tmp_path / "fifo"
    d.mkdir()
    os.mkfifo(d / "config.json")
    cfg, _, warning = within(5, lambda: find_config(str(d)), "find_config")
    assert cfg is None
    assert warning == (f"{d / 'config.json'}: is a FIFO (named pipe), not a regular file: vLLM pre-checks skipped "
                       "(placement unknown)")
    snap = tmp_path / "hub" / "models--org--m" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    os.mkfifo(snap / "config.json")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg, _, warning = within(5, lambda: find_config("org/m"), "find_config")
    assert cfg is None and "not in the local HuggingFace cache" in warning


def test_json_nested_too_deep_is_a_warning(tmp_path):
    d = tmp_path / "deep"
    d.mkdir()
    (d / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    cfg, _, warning = find_config(str(d))
    assert cfg is None
    assert warning == f"{d / 'config.json'}: not valid JSON: vLLM pre-checks skipped (placement unknown)"


def test_fields_of_the_wrong_type_skip_the_check_instead_of_raising():
    for bad in ({"head_dim": "128"}, {"num_key_value_heads": "8"}, {"max_position_embeddings": 10 ** 400},
                {"num_hidden_layers": 2.5}, {"num_attention_heads": True}):
        assert vllm_problems({**L8B, **bad}, tp=1, pp=1, gpus=[0], totals_mib=[24576], gmu=0.9, max_model_len=None,
                             weights=0) == [], bad


def test_a_dangling_weights_link_is_left_out(tmp_path):
    d = model_dir(tmp_path)
    (d / "gone.safetensors").symlink_to(tmp_path / "no-such-blob")
    assert weights_bytes(d) == 1 << 20
