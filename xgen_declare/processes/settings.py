"""Typed values a model's record carries beside its identity, written in the record's JSON as before and
read back tolerantly (an old record is adopted, never lost):

  InPlace  the manifest fields only xgen-declare reads (reconciler/rollout.py IN_PLACE_FIELDS):
           activation, idle_timeout, ready_timeout, stop_grace, labels, hosts and the `RolloutSpec`; a
           change of these is applied to the running model without a restart;
  Placed   n_gpu_layers / tensor_split / n_cpu_moe a llama.cpp process was started with (as rendered),
           so the next pass knows them without reading argv back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pydantic import ValidationError

from xgen_declare.manifests.fields import RolloutSpec

DEFAULT_DRAIN = 60.0  # rollout.drain_timeout when neither the manifest nor the record has one


@dataclass(frozen=True)
class InPlace:
    activation: str = "always"
    idle_timeout: float | None = None
    ready_timeout: float = 600.0
    stop_grace: float = 10.0
    labels: Mapping[str, str] = field(default_factory=dict)
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    hosts: str | None = None  # spec.hosts as described when it started (a selector that moved it, or labels)

    @property
    def on_demand(self) -> bool:
        return self.activation == "on-demand"

    @property
    def strategy(self) -> str:
        return self.rollout.strategy

    @property
    def drain_timeout(self) -> float:
        value = self.rollout.drain_timeout
        return float(value) if isinstance(value, (int, float)) else DEFAULT_DRAIN

    def to_json(self) -> dict[str, Any]:
        return {"activation": self.activation, "idle_timeout": self.idle_timeout,
                "ready_timeout": self.ready_timeout, "stop_grace": self.stop_grace, "labels": dict(self.labels),
                "rollout": self.rollout.model_dump(), "hosts": self.hosts}

    @classmethod
    def from_json(cls, data: object) -> "InPlace | None":
        """The settings a record holds; None when it holds none (a record from before they were recorded)."""
        if not isinstance(data, Mapping):
            return None
        base = cls()
        rollout = data.get("rollout")
        try:
            spec = RolloutSpec.model_validate(rollout) if isinstance(rollout, Mapping) else base.rollout
        except ValidationError:
            spec = base.rollout
        labels = data.get("labels")
        return cls(activation=_str(data.get("activation"), base.activation),
                   idle_timeout=_num(data.get("idle_timeout"), None),
                   ready_timeout=_num(data.get("ready_timeout"), base.ready_timeout) or base.ready_timeout,
                   stop_grace=_num(data.get("stop_grace"), base.stop_grace) or base.stop_grace,
                   labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
                   rollout=spec, hosts=data.get("hosts") if isinstance(data.get("hosts"), str) else None)


@dataclass(frozen=True)
class Placed:
    n_gpu_layers: int | str                   # a count, or "all" / "auto" (llama.cpp chooses: --fit)
    tensor_split: list[float] | str = field(default_factory=list)  # [] or "auto"
    n_cpu_moe: int | str | None = None        # recorded only when set

    @property
    def layers(self) -> int | None:
        """The layer count it was started with; None when llama.cpp chose ("auto") or it says "all"."""
        n = self.n_gpu_layers
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    @property
    def split(self) -> list[float]:
        return list(self.tensor_split) if isinstance(self.tensor_split, list) else []

    @property
    def cpu_moe(self) -> int:
        """--n-cpu-moe it was started with (0: none)."""
        n = self.n_cpu_moe
        return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_gpu_layers": self.n_gpu_layers, "tensor_split": self.tensor_split}
        if self.n_cpu_moe:  # records of models without it stay as they were
            out["n_cpu_moe"] = self.n_cpu_moe
        return out

    @classmethod
    def from_json(cls, data: object) -> "Placed | None":
        if not isinstance(data, Mapping) or "n_gpu_layers" not in data:
            return None
        ngl = data.get("n_gpu_layers")
        split = data.get("tensor_split")
        moe = data.get("n_cpu_moe")
        return cls(n_gpu_layers=ngl if isinstance(ngl, (int, str)) and not isinstance(ngl, bool) else "auto",
                   tensor_split=[float(x) for x in split if isinstance(x, (int, float)) and not isinstance(x, bool)]
                   if isinstance(split, list) else split if isinstance(split, str) else [],
                   n_cpu_moe=moe if isinstance(moe, (int, str)) and not isinstance(moe, bool) else None)


def _str(value: object, default: str) -> str:
    return value if isinstance(value, str) else default


def _num(value: object, default: float | None) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
