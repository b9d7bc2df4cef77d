"""Two hosts, one manifests dir (issue 24 item 6): two state dirs with their own config (`host.labels`, port
range) apply the same manifests; each runs only the models whose spec.hosts selects it. Moving a model by
its selector stops it on the old host and starts it on the new one; a host whose labels change keeps what it
runs."""

from __future__ import annotations

import json

from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.client import status_rows

from .conftest import FAST, alive, manifest


def hosts_manifest(name: str, role: str | None) -> str:
    text = manifest(name)
    return text if role is None else text + f"  hosts: {{matchLabels: {{role: {role}}}}}\n"


class Box:
    """One simulated host: its config file (labels, a port range of its own) and its state dir."""

    def __init__(self, host, name: str, role: str, base: int):
        self.host, self.name, self.base = host, name, base
        self.config_file = host.root / f"{name}.yaml"
        self.state = host.root / f"state-{name}"
        self.labels(role)

    def labels(self, role: str) -> None:
        cfg = {"binaries": {"llama-server-cpu": str(self.host.fake)}, "ports": {"start": self.base, "end": self.base + 4},
               "reconciler": FAST, "host": {"labels": {"role": role, "box": self.name}}}
        self.config_file.write_text(json.dumps(cfg))

    def cli(self, *args: str):
        return self.host.cli("--config", str(self.config_file), "--state-dir", str(self.state), *args)

    def status(self) -> dict[str, dict]:
        return {m.name: m.to_json() for m in status_rows(StateStore(self.state))}


def test_each_host_runs_only_its_models(host):
    a, b = Box(host, "a", "chat", host.base), Box(host, "b", "embed", host.base + 5)
    host.write("chat", hosts_manifest("chat", "chat"))
    host.write("embed", hosts_manifest("embed", "embed"))
    host.write("both", hosts_manifest("both", None))
    try:
        plan_a = a.cli("plan", str(host.manifests))
        assert plan_a.returncode == 0, plan_a.stderr
        assert plan_a.stdout.splitlines() == [
            "start    both: new model", "start    chat: new model",
            "keep     embed: not for this host: role In [embed] (this host: chat)",
            "2 to start, 0 to restart, 0 to stop, 0 blocked, 0 unchanged, 1 not for this host"]
        for box in (a, b):
            r = box.cli("apply", str(host.manifests))
            assert r.returncode == 0, r.stderr
        sa, sb = a.status(), b.status()
        assert {n: s["state"] for n, s in sa.items()} == {"both": "Ready", "chat": "Ready"}  # no record of embed
        assert {n: s["state"] for n, s in sb.items()} == {"both": "Ready", "embed": "Ready"}
        assert sa["both"]["port"] == a.base and sb["both"]["port"] == b.base  # each in its own range
        chat_pid = sa["chat"]["pid"]

        # the manifest moves chat to the embed host: stopped (and forgotten) on a, started on b
        host.write("chat", hosts_manifest("chat", "embed"))
        assert a.cli("plan").stdout.splitlines()[0] == "stop     chat: not for this host: role In [embed] (this host: chat)"
        assert a.cli("apply", str(host.manifests)).returncode == 0
        assert b.cli("apply", str(host.manifests)).returncode == 0
        assert "chat" not in a.status() and not alive(chat_pid)
        assert b.status()["chat"]["state"] == "Ready"

        # b's labels change (not its manifests): what it runs stays, and plan says why
        embed_pid = b.status()["embed"]["pid"]
        b.labels("retired")
        plan_b = b.cli("plan")
        assert "keep     embed: not for this host: role In [embed] (this host: retired); kept running: its " \
               "spec.hosts did not change, this host's labels did (run `xgen-declare down embed` to stop it)" \
               in plan_b.stdout.splitlines()
        assert b.cli("apply", str(host.manifests)).returncode == 0
        assert b.status()["embed"]["pid"] == embed_pid and alive(embed_pid)
    finally:
        for box in (a, b):
            box.cli("down")


def test_a_daemon_serves_only_its_models_and_follows_a_move(host):
    """The same through `run`: the daemon of box a never starts embed (not even a record), and starts it once
    a manifest edit selects box a; a model moved away is stopped by the daemon."""
    from xgen_declare.testing.harness import Daemon

    a = Box(host, "a", "chat", host.base)
    host.write("chat", hosts_manifest("chat", "chat"))
    host.write("embed", hosts_manifest("embed", "embed"))
    d = Daemon(host.manifests, a.state, log=host.root / "daemon-a.log", env={k: host.env[k] for k in (
        "FAKE_PIDDIR", "XDG_CACHE_HOME")})
    d.status_via_cli, d.poll, d.timeout = False, 0.05, 20.0
    try:
        d.start("--config", str(a.config_file))
        d.wait_ready("chat")
        assert "embed" not in d.status()
        pid = d.status()["chat"]["pid"]
        host.write("embed", hosts_manifest("embed", "chat"))   # now for box a
        host.write("chat", hosts_manifest("chat", "embed"))    # and chat moves away
        d.wait_status(lambda s: s.get("embed", {}).get("state") == "Ready" and "chat" not in s, what="the move")
        assert not alive(pid)
        assert "chat: not for this host: role In [embed] (this host: chat)" in d.log_text()
    finally:
        a.cli("down")
        d.cleanup()
