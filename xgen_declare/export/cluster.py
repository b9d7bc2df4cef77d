"""What the cluster offers, from the `kubernetes:` section of xgen-declare.yaml.

Backends run from container images, so "available" means "an image is configured for it" (and, with
`--inventory FILE` describing the GPU nodes, also available there). GPUs are unknown unless that
inventory says otherwise: the device plugin, not a host index, decides which GPUs a pod sees.
"""

from __future__ import annotations

import os

from xgen_declare.backends.profile import profile
from xgen_declare.config import Config, KubernetesImage
from xgen_declare.inventory.model import Backend, Inventory
from xgen_declare.backends.families import ALL_BACKENDS

# The backend's executable inside the usual images of each family (ghcr.io/ggml-org/llama.cpp:server-*
# put it at /app/llama-server; vllm/vllm-openai has `vllm` on PATH; llama-cpp-python runs as a module).
DEFAULT_COMMAND = {"llama-server": "/app/llama-server", "vllm": "vllm", "llama-cpp-python": "python3"}


def image_for(config: Config, backend: str) -> KubernetesImage | None:
    """The image entry for a backend: its own name first, then its family."""
    images = config.kubernetes.images
    entry = images.get(backend, images.get(profile(backend).family))
    if entry is None:
        return None
    return KubernetesImage(image=entry) if isinstance(entry, str) else entry


def command_for(config: Config, backend: str) -> str:
    entry = image_for(config, backend)
    return (entry.command if entry and entry.command else None) or DEFAULT_COMMAND[profile(backend).family]


def cluster_inventory(config: Config, nodes: Inventory | None = None) -> Inventory:
    """The inventory models are rendered against: a backend is available when it has an image (and
    `nodes`, an inventory of the GPU nodes, does not rule it out)."""
    backends = []
    for name in ALL_BACKENDS:
        entry = image_for(config, name)
        on_nodes = nodes.backend(name) if nodes is not None else None
        if entry is None:
            backends.append(Backend(name=name, available=False, reason="no image for it in kubernetes.images"))
        elif nodes is not None and not (on_nodes and on_nodes.available):
            why = (on_nodes.reason if on_nodes else "") or "not in the inventory"
            backends.append(Backend(name=name, available=False, reason=f"unavailable on the nodes: {why}"))
        else:
            dialect = entry.dialect if profile(name).llama_server else None
            backends.append(Backend(name=name, available=True, dialect=dialect))
    if nodes is None:
        return Inventory(hostname="kubernetes", gpus=[], backends=backends)
    # the nodes' name, arch and labels: spec.hosts and spec.overrides are applied for them (export/hosts.py)
    return Inventory(hostname=nodes.hostname, arch=nodes.arch, labels=dict(nodes.labels), gpus=list(nodes.gpus),
                     backends=backends)


def container_path(local_path: str, config: Config) -> tuple[str | None, str]:
    """A host path -> (the path inside the container, "") or (None, why it cannot be mapped)."""
    volume = config.kubernetes.model_volume
    if volume is None:
        return None, "no kubernetes.model_volume is configured"
    local_dir = os.path.normpath(volume.local_dir)
    path = os.path.normpath(local_path)
    if os.path.commonpath([local_dir, path]) != local_dir:
        return None, f"it is outside kubernetes.model_volume.local_dir ({volume.local_dir})"
    mount = os.path.normpath(volume.mount_path or volume.local_dir)
    rel = os.path.relpath(path, local_dir)
    return (mount if rel == "." else f"{mount}/{rel}"), ""
