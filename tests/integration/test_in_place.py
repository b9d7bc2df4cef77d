"""Fields only xgen-declare reads change without touching the backend process (issue 15 item 4):
`plan` says update in place, the pid stays, the record and the router take the new values."""

from __future__ import annotations

from xgen_declare.processes.state_store import StateStore

from .conftest import manifest
from .test_router import chat, start_router


def test_stop_grace_ready_timeout_and_labels_update_in_place(host):
    host.write("a", stop_grace=2, ready_timeout=10)
    assert host.cli("apply", str(host.manifests)).returncode == 0
    pid = host.status()["a"]["pid"]
    text = manifest("a", stop_grace=7, ready_timeout=20).replace("  name: a\n", "  name: a\n  labels: {team: x}\n")
    host.write("a", text)
    r = host.cli("plan")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "update   a: update in place: labels: team changed; ready_timeout 10 → 20; stop_grace 2 → 7",
        "0 to start, 0 to restart, 0 to stop, 1 to update in place, 0 blocked, 0 unchanged"]
    assert host.cli("apply", str(host.manifests)).returncode == 0
    st = host.status()["a"]
    assert (st["pid"], st["restarts"], st["state"]) == (pid, 0, "Ready")
    rec = StateStore(host.state).load("a")
    assert (rec.stop_grace, rec.ready_timeout, rec.settings.labels) == (7, 20, {"team": "x"})
    assert host.cli("plan").stdout.splitlines()[0] == "keep     a: unchanged"
    host.cli("down")


def test_a_running_model_turned_on_demand_keeps_running_then_idles(host):
    host.write("a")
    base = start_router(host)
    pid = host.wait_ready("a")["a"]["pid"]
    host.write("a", manifest("a", activation="on-demand", idle_timeout="3s"))
    # applied in place: same process, still answering; then the idle timer stops it
    host.wait(lambda s: settings_of(host, "a").get("activation") == "on-demand", 10, "settings applied")
    st = host.status()["a"]
    assert (st["pid"], st["state"], st["restarts"]) == (pid, "Ready", 0)
    assert chat(base, "a").status_code == 200
    assert "a: update in place: activation always → on-demand; idle_timeout (none) → 3" in host.daemon_log()
    host.wait(lambda s: s["a"]["state"] == "Idle", 15, "a Idle after idle_timeout")


def settings_of(host, name: str) -> dict:
    rec = StateStore(host.state).load(name)
    return rec.to_json()["settings"] or {} if rec else {}  # as the record file holds them
