"""An in-process daemon (control loop in a thread, no backend binary: nothing is ever spawned) behind a
TestClient of the management API."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from xgen_declare.api.app import create_app
from xgen_declare.api.context import ApiContext
from xgen_declare.config import load_config
from xgen_declare.reconciler.env import Env
from xgen_declare.reconciler.daemon import Daemon
from xgen_declare.processes.state_store import StateStore


@dataclass
class Api:
    root: Path
    manifests: Path
    daemon: Daemon
    ctx: ApiContext
    client: TestClient

    def hand(self, rel: str, name: str, **spec) -> Path:
        spec.setdefault("model_path", "/models/x.gguf")
        body = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in spec.items())
        path = self.manifests / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n{body}\n")
        return path


def make_api(tmp_path: Path, token: str | None = None, router: dict | None = None,
             **api_settings) -> tuple[Api, threading.Thread]:
    manifests, state = tmp_path / "m", tmp_path / "state"
    manifests.mkdir()
    cfg = {"binaries": {"llama-server-cpu": str(tmp_path / "no-such-binary")}, "python": str(tmp_path / "no-python"),
           "ports": {"start": 29001, "end": 29010}, "reconciler": {"resync_interval": 60, "debounce": 0.02},
           "api": api_settings, **({"router": router} if router else {})}
    (manifests / "xgen-declare.yaml").write_text(json.dumps(cfg))
    (tmp_path / "sys").mkdir()
    config = load_config(None, [str(manifests)])
    env = Env(config, StateStore(state), [str(manifests)], None, sysfs_root=str(tmp_path / "sys"))
    daemon = Daemon(env)
    daemon.start()
    thread = threading.Thread(target=daemon.loop, daemon=True)
    thread.start()
    ctx = ApiContext(daemon, config.api, "127.0.0.1", token)
    ctx.attach()
    client = TestClient(create_app(ctx), base_url="http://127.0.0.1", raise_server_exceptions=False)
    return Api(tmp_path, manifests, daemon, ctx, client), thread


def stop(api: Api, thread: threading.Thread) -> None:
    api.ctx.detach()
    api.daemon.stopping = True
    api.daemon.wake.set()
    thread.join(10)
    api.daemon.shutdown()


@pytest.fixture
def api(tmp_path):
    a, t = make_api(tmp_path)
    yield a
    stop(a, t)


@pytest.fixture
def api_token(tmp_path):
    a, t = make_api(tmp_path, token="s3cret")
    yield a
    stop(a, t)
