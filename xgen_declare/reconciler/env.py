"""What every reconciler verb resolves once: the config, the state store, the manifests paths it serves
and the host roots (`Env`), and the inventory of that host."""

from __future__ import annotations

import os
from dataclasses import dataclass

from xgen_declare.config import Config, load_config
from xgen_declare.errors import UsageError
from xgen_declare.processes.state_store import StateStore


@dataclass
class Env:
    """Resolved once per verb: config, state store, manifests paths, host roots."""

    config: Config
    store: StateStore
    paths: list[str]
    config_path: str | None               # explicit --config / XGEN_CONFIG (else DIR/xgen-declare.yaml)
    sysfs_root: str = "/sys"
    proc_root: str = "/proc"
    config_in_paths: bool = True          # False for a git source: a commit never brings the host's config

    def load_config(self) -> Config:
        """The config as a pass reads it again: the explicit file, else DIR/xgen-declare.yaml."""
        return load_config(self.config_path, self.paths if self.config_in_paths else [])

    def inventory(self):
        return detect_inventory(self.config, self.sysfs_root, self.proc_root)


def detect_inventory(config: Config, sysfs_root: str, proc_root: str):
    from xgen_declare.inventory import detect

    return detect(config, sysfs_root=sysfs_root, proc_root=proc_root)


def open_env(g, dirs: tuple[str, ...] | list[str] = (), *, need_paths: bool = True) -> Env:
    """DIRs from the command line, else the ones the state dir records (status/logs/down need none)."""
    paths = [os.path.abspath(d) for d in dirs]
    explicit_config = g.config_path()
    config = load_config(explicit_config, paths) if paths else None
    state_dir = g.resolve_state_dir(config)
    store = StateStore(state_dir)
    info = store.daemon_info()
    if not paths:
        paths = store.manifest_paths()
        if not explicit_config and isinstance(info.get("config"), str):
            explicit_config = info["config"]
        if not paths and need_paths:
            raise UsageError(f"state dir {state_dir} records no manifests dir: give DIR "
                             "(or run `xgen-declare apply DIR` / `run DIR` once)")
        config = load_config(explicit_config, paths)
    assert config is not None
    return Env(config, store, paths, explicit_config, g.sysfs(), g.proc())


def open_source_env(g, config: Config, manifests_dir: str) -> Env:
    """`run` following a git source: the manifests are the served commit's (gitpoll.py), the config is the
    host's own (--config FILE / XGEN_CONFIG, or the defaults), never a file of the repository."""
    store = StateStore(g.resolve_state_dir(config))
    return Env(config, store, [manifests_dir], g.config_path(), g.sysfs(), g.proc(), config_in_paths=False)


def record_paths(env: Env) -> None:
    info = env.store.daemon_info()
    info.update({"manifests": env.paths, "config": env.config_path})
    env.store.write_daemon_info(info)
