"""Per-device memory prediction for llama-server (`split_mode: layer`). Pure: facts + settings in.

Where each part goes (llama.cpp `llama_model::load_tensors`, see layers.py):
* input layer (`token_embd`, position/type embeddings): always host memory;
* repeating layer N (`blk.N.*`) and its KV cache: the device the split rule gives it, else host;
* output layer (`output_norm`, `output`; with tied embeddings a duplicate of `token_embd`): the last
  device when offloaded (see layers.Rule for when it is), else host;
* a compute buffer on every participating device (memory.compute_bytes), and a host one.

All figures are bytes; `*_mib` helpers give MiB (2^20 bytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xgen_declare.placement.attention import HYBRID_ARCHS, attention_of
from xgen_declare.placement.gguf_facts import GgufError, GgufFacts
from xgen_declare.placement.layers import OUTPUT_FIRST, Rule, assign_layers, normalize_n_gpu_layers
from xgen_declare.placement.memory import (ContextSettings, compute_bytes, host_compute_bytes, kv_bytes_per_layer, kv_cells,
                                           output_buffer_bytes, rs_bytes_per_layer, swa_cells)

__all__ = ["DevicePart", "Prediction", "predict", "design", "expert_bytes_per_layer", "layer_sizes", "require_supported", "SUPPORTED_ARCHS", "MIB"]

# Architectures whose memory is modelled here (attention.py: K/V rows of head_count_kv x key/value_length
# per layer, sliding windows, MLA, the hybrids of attention.HYBRID_ARCHS). Others (pure recurrent, other hybrids) are
# refused rather than mispredicted.
SUPPORTED_ARCHS = frozenset({
    "llama", "llama4", "mistral3", "qwen2", "qwen2moe", "qwen3", "qwen3moe", "gemma", "gemma2", "gemma3",
    "phi2", "phi3", "starcoder2", "granite", "granitemoe", "command-r", "cohere2", "olmo", "olmo2", "olmoe",
    "internlm2", "stablelm", "baichuan", "glm4", "exaone", "smollm3", "gpt-oss", "minicpm", "deci", "deepseek2",
    "granitehybrid", "qwen3next", "nemotron_h", "lfm2", "jamba",
})

MIB = 1 << 20
_INPUT_TENSORS = ("token_embd.", "position_embd.", "token_types.", "token_embd_norm.")
_EXPERTS = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch)?exps\.")  # common/arg.cpp's --n-cpu-moe pattern


@dataclass
class DevicePart:
    """What one device (a GPU, or the host when gpu is None) holds."""

    gpu: int | None  # host GPU index; None = CPU / host memory
    layers: int = 0  # repeating layers + the output layer when it is here (llama.cpp's count)
    repeating_layers: int = 0
    has_output: bool = False
    weights: int = 0
    kv_cache: int = 0
    recurrent: int = 0  # recurrent state of hybrid models' Mamba layers (llama.cpp's "RS buffer")
    compute: int = 0
    other: int = 0  # host only: the logits output buffer
    usable: int | None = None  # bytes available to this model, when known

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.recurrent + self.compute + self.other

    @property
    def fits(self) -> bool | None:
        return None if self.usable is None else self.total <= self.usable


@dataclass
class Prediction:
    n_gpu_layers: int  # llama.cpp count, 0..n_layer + 1
    tensor_split: list[float]
    gpus: list[DevicePart]
    cpu: DevicePart
    kv_cells: int
    n_layer: int
    notes: list[str] = field(default_factory=list)
    n_cpu_moe: int = 0  # llama-server --n-cpu-moe: the expert tensors of layers 0..N-1 stay in host memory
    cpu_moe_bytes: int = 0  # what that keeps in host memory (counted in cpu.weights)

    @property
    def weights(self) -> int:
        return sum(p.weights for p in self.gpus) + self.cpu.weights

    @property
    def kv_cache(self) -> int:
        return sum(p.kv_cache for p in self.gpus) + self.cpu.kv_cache

    @property
    def recurrent(self) -> int:
        return sum(p.recurrent for p in self.gpus) + self.cpu.recurrent

    @property
    def compute(self) -> int:
        return sum(p.compute for p in self.gpus) + self.cpu.compute

    def gpu(self, index: int) -> DevicePart | None:
        return next((p for p in self.gpus if p.gpu == index), None)


def layer_sizes(facts: GgufFacts) -> tuple[int, list[int], int, int]:
    """(input bytes, bytes of each repeating layer, output-layer bytes, extra bytes of the output
    layer when it is on a GPU: a tied `token_embd` is duplicated there)."""
    return facts.memo("layer_sizes", _layer_sizes)


def _layer_sizes(facts: GgufFacts) -> tuple[int, list[int], int, int]:
    inputs = output = 0
    layers = facts.layer_bytes()
    for t in facts.tensors:
        if t.layer is not None:
            continue
        if t.name.startswith(_INPUT_TENSORS):
            inputs += t.nbytes
        else:
            output += t.nbytes  # output, output_norm and other global tensors (rope_freqs, ...)
    tied = facts.tensor("output.weight") is None
    emb = facts.tensor("token_embd.weight")
    return inputs, layers, output, (emb.nbytes if tied and emb else 0)


def predict(facts: GgufFacts, settings: ContextSettings, gpus: list[int], n_gpu_layers: int | str = -1,
            tensor_split: list[float] | None = None, rule: Rule = OUTPUT_FIRST,
            free_mib: list[int | None] | None = None, n_cpu_moe: int = 0) -> Prediction:
    """Predict what llama-server puts on each of `gpus` (host indices, in the order the backend sees
    them) and on the host. `tensor_split` empty/None = llama.cpp's default, proportional to each
    device's free memory (`free_mib`, equal when unknown). `n_cpu_moe` N: llama-server's
    `--n-cpu-moe N` (common/arg.cpp overrides `blk.<i>.ffn_(up|down|gate)_exps` of i < N to the CPU
    buffer type): those layers' expert weights are host memory wherever the layer is."""
    require_supported(facts)
    n_layer = facts.block_count
    ngl = normalize_n_gpu_layers(n_gpu_layers, n_layer) if gpus else 0
    split = list(tensor_split or []) or _default_split(gpus, free_mib)
    placement = assign_layers(n_layer, ngl, split, rule) if gpus else [None] * (n_layer + 1)
    inputs, layers, output, tied_extra = layer_sizes(facts)
    kv = kv_bytes_per_layer(facts, settings)
    rs = rs_bytes_per_layer(facts, settings)
    experts, cpu_moe = expert_bytes_per_layer(facts), 0
    n_cpu_moe = max(0, min(n_cpu_moe, n_layer))
    parts = [DevicePart(gpu=g) for g in gpus]
    cpu = DevicePart(gpu=None, weights=inputs)
    for il, pos in enumerate(placement):
        part = cpu if pos is None else parts[pos]
        part.layers += 1
        if il == n_layer:
            part.has_output = True
            part.weights += output + (tied_extra if pos is not None else 0)
        else:
            part.repeating_layers += 1
            moved = experts[il] if il < n_cpu_moe and pos is not None else 0
            part.weights += layers[il] - moved
            cpu.weights += moved
            cpu_moe += moved
            part.kv_cache += kv[il]
            part.recurrent += rs[il]
    full = compute_bytes(facts, settings)
    for part in parts:
        if part.repeating_layers:
            part.compute = full
        elif part.has_output:
            part.compute = host_compute_bytes(facts, settings) + output_buffer_bytes(facts, settings)
    cpu.layers = cpu.repeating_layers  # llama.cpp counts offloaded layers; the host "layers" are repeating ones
    # experts kept in host memory run their FFN on the host: its compute buffer is a layer's (not measured
    # on a GPU build yet; the CPU build cannot show the split)
    cpu.compute = full if cpu.repeating_layers or cpu_moe else host_compute_bytes(facts, settings)
    cpu.other = output_buffer_bytes(facts, settings)
    shown_split = list(tensor_split or []) if len(gpus) > 1 else []  # [] = llama.cpp's default
    return Prediction(n_gpu_layers=ngl, tensor_split=shown_split, gpus=parts, cpu=cpu,
                      kv_cells=kv_cells(facts, settings), n_layer=n_layer, notes=_notes(facts, settings),
                      n_cpu_moe=n_cpu_moe if cpu_moe else 0, cpu_moe_bytes=cpu_moe)


def expert_bytes_per_layer(facts: GgufFacts) -> list[int]:
    """Bytes of each layer's routed-expert tensors (what --n-cpu-moe keeps in host memory)."""
    return list(facts.memo("expert_bytes", _expert_bytes))


def _expert_bytes(facts: GgufFacts) -> tuple[int, ...]:
    out = [0] * facts.block_count
    for t in facts.tensors:
        if t.layer is not None and t.layer < facts.block_count and _EXPERTS.search(t.name):
            out[t.layer] += t.nbytes
    return tuple(out)


def require_supported(facts: GgufFacts) -> None:
    if facts.architecture not in SUPPORTED_ARCHS:
        raise GgufError(facts.path, f"unknown architecture {facts.architecture!r}: placement cannot be predicted "
                                    "for this model (known: " + ", ".join(sorted(SUPPORTED_ARCHS)) + ")")
    if not any(t.layer is not None for t in facts.tensors):
        raise GgufError(facts.path, "no repeating-layer tensors (blk.N.*) in the tensor table; placement cannot "
                                    "be predicted for this model")


def _default_split(gpus: list[int], free_mib: list[int | None] | None) -> list[float]:
    if not gpus:
        return []
    free = list(free_mib or [])
    if len(free) == len(gpus) and all(f for f in free):
        return [float(f) for f in free]  # type: ignore[arg-type]
    return [1.0] * len(gpus)


def design(facts: GgufFacts, settings: ContextSettings) -> str | None:
    """The cache design the KV prediction modelled, when it is not one plain cache of every layer."""
    att = attention_of(facts)
    if att.is_iswa:
        return att.describe(facts.head_count_kv, kv_cells(facts, settings), swa_cells(facts, settings))
    if att.recurrent:
        n_rec = sum(att.recurrent)
        n_kv = sum(1 for il, h in enumerate(facts.head_count_kv) if h and not att.recurrent[il])
        return (f"hybrid ({HYBRID_ARCHS[facts.architecture]} + attention): {n_kv} attention layers x "
                f"{kv_cells(facts, settings)} cells + {n_rec} recurrent layers x {max(1, settings.n_seq)} sequence states"
                + (f" + {n_plain} layers with neither" if (n_plain := facts.block_count - n_kv - n_rec) else ""))
    if att.mla:
        return (f"MLA: {sum(1 for h in facts.head_count_kv if h)} layers x {kv_cells(facts, settings)} cells of one "
                f"{facts.key_length}-wide latent K row, no V")
    return None


def _notes(facts: GgufFacts, settings: ContextSettings) -> list[str]:
    named = design(facts, settings)
    return [named] if named else []
