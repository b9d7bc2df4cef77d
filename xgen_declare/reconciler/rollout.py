"""Rollout decisions (pure): which manifest fields change without touching the backend process.

The spec hash (render.Rendered.spec_hash: argv, env, secret files, port, host, GPU set, backend,
RPC workers) is the identity of what runs: a change there is a restart. Everything below is read only
by xgen-declare itself (the router, the daemon's timers, the supervisor), so a change there is applied
to the running model "in place" — `plan` says `update NAME: update in place: ...`:

    metadata.labels      display and selection only
    spec.activation      the router's on-demand logic (a running model switched to on-demand keeps
                         running; its idle timer then counts from the last request)
    spec.idle_timeout    the router's idle timer
    spec.ready_timeout   the supervisor's wait for Ready (applies to the next start)
    spec.stop_grace      SIGTERM -> SIGKILL delay of the next stop
    spec.rollout         strategy and drain_timeout of the next rollout or stop
    spec.hosts           which hosts the model is for (recorded, so that a selector that no longer
                         matches tells a manifest that moved the model from a host whose labels changed)

`spec.alias` is NOT among them: llama-server gets the names as `--alias` and vLLM as
`--served-model-name` (vLLM answers 404 to a `model` it does not serve), so a new alias restarts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from xgen_declare.processes.settings import InPlace

if TYPE_CHECKING:  # the planner imports this module: keep it free of the manifest loader
    from xgen_declare.manifests.load import ModelDecl

IN_PLACE_FIELDS = ("activation", "idle_timeout", "ready_timeout", "stop_grace", "labels", "rollout", "hosts")


def in_place_settings(decl: ModelDecl) -> InPlace:
    spec = decl.spec
    return InPlace(activation=spec.activation, idle_timeout=spec.idle_timeout, ready_timeout=spec.ready_timeout,
                   stop_grace=spec.stop_grace, labels=dict(decl.labels), rollout=spec.rollout,
                   hosts=spec.hosts.describe() if spec.hosts is not None else None)


def _fmt(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def settings_changes(old_settings: InPlace | None, new_settings: InPlace | None) -> list[str]:
    """["idle_timeout 300 → 600", "labels: team changed"]; empty when equal, or when either is unknown
    (a record written before settings were recorded: it takes the new ones without a word)."""
    if old_settings is None or new_settings is None:
        return []
    old, new = old_settings.to_json(), new_settings.to_json()
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "labels" and isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            out.append("labels: " + ", ".join(keys) + " changed")
        elif isinstance(a, dict) and isinstance(b, dict):  # rollout: one entry per changed sub-field
            out.extend(f"{key}.{k} {_fmt(a.get(k))} → {_fmt(b.get(k))}" for k in sorted(set(a) | set(b))
                       if a.get(k) != b.get(k))
        else:
            out.append(f"{key} {_fmt(a)} → {_fmt(b)}")
    return out
