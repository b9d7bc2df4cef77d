"""Export manifests to other systems. Today: Kubernetes (`xgen-declare export kubernetes`).

    cluster.py     what the cluster offers: images per backend, the inventory used for rendering,
                   host model paths -> in-container paths
    gpu.py         GPUs a model needs, the vendor's extended resource, node affinity from the labels
                   NVIDIA GPU feature discovery / the AMD node labeller publish
    kubernetes.py  one Deployment + Service per model (a LeaderWorkerSet + Service for distributed: ray),
                   argv from the same Renderer as local processes
    hosts.py       spec.hosts / spec.overrides: applied for the --inventory's labels, spec.hosts as node
                   affinity (hostname, arch, own labels), refused where that would be wrong
    output.py      YAML files (one per model) + kustomization.yaml, or one stream

Building the objects is pure (no I/O beyond reading the manifests); a model that cannot be expressed
gets problems, never a partial object.
"""

from xgen_declare.export.kubernetes import ExportResult, ModelExport, export_kubernetes
from xgen_declare.export.output import render_stream, write_dir

__all__ = ["ExportResult", "ModelExport", "export_kubernetes", "render_stream", "write_dir"]
