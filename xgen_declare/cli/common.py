"""Shared CLI plumbing: global options (before or after the verb), output helpers, the load pipeline."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable

import click
import click.shell_completion

from xgen_declare.config import Config, load_config
from xgen_declare.names import escape_controls


@dataclass
class Globals:
    config: str | None = None
    state_dir: str | None = None
    sysfs_root: str | None = None
    proc_root: str | None = None

    def config_path(self) -> str | None:
        return self.config or os.environ.get("XGEN_CONFIG") or None

    def sysfs(self) -> str:
        return self.sysfs_root or os.environ.get("XGEN_SYSFS_ROOT") or "/sys"

    def proc(self) -> str:
        return self.proc_root or os.environ.get("XGEN_PROC_ROOT") or "/proc"

    def load_config(self, manifest_paths: list[str] | None = None) -> Config:
        return load_config(self.config_path(), manifest_paths)

    def resolve_state_dir(self, config: Config | None = None) -> str:
        if self.state_dir:
            return self.state_dir
        if os.environ.get("XGEN_STATE_DIR"):
            return os.environ["XGEN_STATE_DIR"]
        if config is not None and config.state_dir:
            return config.resolve(config.state_dir)
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        return os.path.join(base, "xgen-declare")


_GLOBAL_OPTIONS = [
    ("--config", "config", "FILE", "xgen-declare.yaml to use [env: XGEN_CONFIG; default: DIR/xgen-declare.yaml]"),
    ("--state-dir", "state_dir", "DIR", "State directory [env: XGEN_STATE_DIR; default: $XDG_STATE_HOME/xgen-declare]"),
    ("--sysfs-root", "sysfs_root", "DIR", "Root of sysfs for GPU detection [env: XGEN_SYSFS_ROOT; default: /sys]"),
    ("--proc-root", "proc_root", "DIR", "Root of procfs [env: XGEN_PROC_ROOT; default: /proc]"),
]


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None:
        root = ctx.find_root()
        if root.obj is None:
            root.obj = Globals()
        setattr(root.obj, param.name, value)
    return value


def global_options(f: Callable) -> Callable:
    """Attach the global options to a group or a verb, so they work before or after the verb."""
    for flag, name, metavar, help_text in reversed(_GLOBAL_OPTIONS):
        f = click.option(flag, name, metavar=metavar, help=help_text, expose_value=False,
                         callback=_store, is_eager=True)(f)
    return f


def get_globals(ctx: click.Context | None = None) -> Globals:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Globals()
    return root.obj


def model_names(g: Globals) -> list[str]:
    """Names the state dir knows (records) and those its recorded manifests dirs declare."""
    from xgen_declare.manifests.load import load_paths
    from xgen_declare.processes.state_store import StateStore

    store = StateStore(g.resolve_state_dir())
    names = set(store.load_all())
    paths = store.manifest_paths()
    if paths:
        names.update(d.name for d in load_paths(paths).models)
    return sorted(names)


def complete_model_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Shell completion of NAME arguments (click calls this while the user presses TAB)."""
    try:
        names = model_names(get_globals(ctx))
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [click.shell_completion.CompletionItem(n) for n in names if n.startswith(incomplete)]


# DIR / PATH / FILE arguments: completed by the shell as paths.
PATHS = click.Path(readable=False)  # no checks: each verb reports its own errors


def output_option(choices: tuple[str, ...], default: str) -> Callable:
    return click.option("-o", "--output", "output", type=click.Choice(choices), default=default,
                        show_default=True, help="Output format")


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def eprint(message: str) -> None:
    click.echo(message, err=True)


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """Aligned columns; control characters in a cell (a backend's output in an error) are escaped."""
    cells = [[escape_controls(str(c)) if c is not None else "-" for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)

