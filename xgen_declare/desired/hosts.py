"""Which declared models this host serves: each manifest's `spec.hosts` selector (readers/selector.py)
against the host's labels (inventory/labels.py). Pure; build.py calls it once per pass, before anything is
resolved, so a model for other hosts is never rendered, given a port or counted in the memory ledger here.

A model without `hosts` is for every host. A model that is not for this host is not an error: the plan
shows it as such (reconciler/plan.py, `NotHere`), with the requirement that failed and this host's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xgen_declare.config import Config, HostSection
from xgen_declare.manifests.load import ModelDecl

__all__ = ["for_another_host", "not_for_host", "select_for_host"]


def for_another_host(config: Config) -> Config:
    """The config for a preview of another host (`--inventory FILE`): this machine's `host.labels` are not
    that host's; its labels are those of its inventory file."""
    return config.model_copy(update={"host": HostSection()})


def not_for_host(decl: ModelDecl, labels: Mapping[str, str]) -> str | None:
    """Why `decl` is not for a host with these labels ("gpu.vendor In [amd] (this host: nvidia)"), or None."""
    hosts = decl.spec.hosts
    return None if hosts is None else hosts.mismatch(labels)


def select_for_host(decls: Sequence[ModelDecl],
                    labels: Mapping[str, str]) -> tuple[list[ModelDecl], dict[str, str]]:
    """The models for this host, in order, and name -> why for the others."""
    here: list[ModelDecl] = []
    elsewhere: dict[str, str] = {}
    for decl in decls:
        why = not_for_host(decl, labels)
        if why is None:
            here.append(decl)
        else:
            elsewhere[decl.name] = why
    return here, elsewhere
