"""One-shot verbs (`plan`, `apply`, `down`, `restart`) against real (fake) backends, no daemon."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psutil

from .conftest import NAME_RULE, alive, bad_name_manifests

RX6800 = Path(__file__).resolve().parents[1] / "fixtures" / "sysfs" / "rx6800"


def test_each_protocol_ready_and_wrong_path_never_ready(host):
    host.write("ls")                                        # llama-server: /health 503 then 200
    host.write("vl", backend="vllm-cpu")                    # vLLM: refused until ready
    host.write("py", backend="llama-cpp-python")            # /v1/models; /health is 404
    # a llama-server manifest whose server speaks llama-cpp-python: /health stays 404
    host.write("wrong", ready_timeout=1.5, env={"FAKE_PROTOCOL": "llama-cpp-python"})
    r = host.cli("apply", str(host.manifests), "-o", "json")
    assert r.returncode == 3, r.stderr  # goal not reached: "wrong" Failed
    st = host.status()
    assert {n: st[n]["state"] for n in st} == {"ls": "Ready", "vl": "Ready", "py": "Ready", "wrong": "Failed"}
    assert st["wrong"]["last_error"].startswith(
        f"not ready after 1.5s: GET http://127.0.0.1:{st['wrong']['port']}/health: HTTP 404")
    assert st["wrong"]["pid"] is None
    out = json.loads(r.stdout)
    assert {a["name"]: a["kind"] for a in out["plan"]["actions"]} == {n: "start" for n in st}
    assert host.cli("down").returncode == 0
    assert all(m["state"] == "Stopped" and m["held"] for m in host.status().values())


def test_dry_run_prints_exactly_what_plan_prints(host):
    host.write("a", ctx_size=4096)
    assert host.cli("apply", str(host.manifests)).returncode == 0
    host.write("a", ctx_size=8192)
    host.write("b")
    plan, dry = host.cli("plan"), host.cli("apply", "--dry-run")
    assert plan.returncode == dry.returncode == 0
    assert plan.stdout == dry.stdout
    assert plan.stdout.splitlines() == [
        "restart  a: argv changed: --ctx-size 4096 → 8192; auto: recreate (placement unknown: the memory ledger "
        "cannot tell whether two processes fit)",
        "start    b: new model",
        "0 to start, 1 to restart, 0 to stop, 0 blocked, 0 unchanged".replace("0 to start", "1 to start"),
    ]
    assert host.cli("plan", "-o", "json").stdout == host.cli("apply", "--dry-run", "-o", "json").stdout
    pid = host.status()["a"]["pid"]
    assert host.cli("apply").returncode == 0
    st = host.status()
    assert st["a"]["pid"] != pid and st["a"]["restarts"] == 1 and not alive(pid)
    r = host.cli("restart", "b")
    assert r.returncode == 0, r.stderr
    assert host.status()["b"]["restarts"] == 1
    host.cli("down")


def test_missing_binary_is_blocked(host):
    host.config(binaries={"vllm-cpu": str(host.root / "no-such-vllm")})
    host.write("v", backend="vllm-cpu")
    host.write("ok")
    r = host.cli("apply", str(host.manifests))
    assert r.returncode == 3
    st = host.status()
    assert st["ok"]["state"] == "Ready"
    assert st["v"]["state"] == "Blocked"
    assert st["v"]["last_error"].startswith(f"binary '{host.root}/no-such-vllm' not found")
    host.cli("down")


def test_gpu_the_host_lacks_is_blocked_by_apply_and_the_daemon(host):
    """One AMD GPU (rx6800 sysfs): gpus [7] was Ready with GGML_VK_VISIBLE_DEVICES=7; now Blocked with the
    reason plan shows, by apply and by the daemon, until the manifest asks for a GPU the host has."""
    host.env["XGEN_SYSFS_ROOT"] = str(RX6800)
    host.config(binaries={"llama-server-vulkan": str(host.fake)})
    path = host.write("g", backend="llama-server-vulkan", gpus=[7])
    host.write("ok")
    reason = (f"{path}:8: spec.gpus[0]: GPU 7 does not exist on this host (GPUs: 0) "
              "(see `xgen-declare gpus`)")
    assert host.cli("plan", str(host.manifests)).stdout.splitlines()[:2] == ["start    ok: new model", f"blocked  g: {reason}"]
    r = host.cli("apply", str(host.manifests))
    assert r.returncode == 3, r.stderr  # goal not reached (README: Exit codes)
    st = host.status()
    assert (st["ok"]["state"], st["g"]["state"], st["g"]["last_error"]) == ("Ready", "Blocked", reason)
    assert st["g"]["pid"] is None
    render = host.cli("render", str(host.manifests))
    assert render.returncode == 1 and render.stderr.splitlines() == [reason]

    host.start_daemon()
    host.write("g", backend="llama-server-vulkan", gpus=[0, 7])  # an edit: still Blocked, a new reason
    reason = reason.replace("gpus[0]", "gpus[1]")
    host.wait(lambda s: s["g"]["state"] == "Blocked" and s["g"]["last_error"] == reason, 15, "g Blocked anew")
    host.write("g", backend="llama-server-vulkan", gpus=[0])
    st = host.wait_ready("g", "ok")
    assert host.status()["ok"]["restarts"] == 0
    assert psutil.Process(st["g"]["pid"]).environ()["GGML_VK_VISIBLE_DEVICES"] == "0"
    host.cli("down")


def test_foreign_listener_next_port_or_blocked(host):
    foreign = socket.socket()
    foreign.bind(("127.0.0.1", host.base))
    foreign.listen()
    try:
        host.write("auto")                                   # would get host.base: takes the next one
        host.write("fixed", port=host.base)                  # explicit: Blocked, foreign never signalled
        r = host.cli("apply", str(host.manifests))
        assert r.returncode == 3
        st = host.status()
        assert (st["auto"]["state"], st["auto"]["port"]) == ("Ready", host.base + 1)
        assert st["fixed"]["state"] == "Blocked"
        assert f"port {host.base} (spec.port) is in use by a process not started by xgen-declare" in \
            st["fixed"]["last_error"]
        foreign.getsockname()  # still ours and open
    finally:
        foreign.close()
        host.cli("down")


def test_secret_file_read_at_spawn_never_logged(host):
    secret = host.root / "key"
    secret.write_text("s3cr3t-value\n")
    host.write("v", backend="vllm-cpu", api_key_file=str(secret))
    assert host.cli("apply", str(host.manifests)).returncode == 0
    pid = host.status()["v"]["pid"]
    import psutil

    assert psutil.Process(pid).environ()["VLLM_API_KEY"] == "s3cr3t-value"
    assert "s3cr3t" not in "".join(p.read_text() for p in (host.state).rglob("*") if p.is_file())
    host.cli("down")


def test_status_json_contract(host):
    host.write("a")
    host.cli("apply", str(host.manifests))
    r = host.cli("status", "-o", "json")
    assert r.returncode == 0
    rows = json.loads(r.stdout)
    assert {"name", "state", "backend", "pid", "port", "endpoint", "restarts", "last_error",
            "manifest_error"} <= set(rows[0])
    assert rows[0]["state"] == "Ready" and rows[0]["backend"] == "llama-server-cpu"
    logs = host.cli("logs", "a", "-n", "2")
    assert logs.returncode == 0 and "fake: ready on" in logs.stdout
    host.cli("down")


def test_bad_names_never_reach_the_state_dir(host):
    host.write("ok")
    bad_name_manifests(host)
    r = host.cli("apply", str(host.manifests))
    assert r.returncode == 1, r.stderr
    assert "internal error" not in r.stderr
    for stem in ("dots", "shell", "nul", "long", "newline"):
        assert f"{host.manifests / stem}.yaml:4: {NAME_RULE}" in r.stderr.splitlines()
    assert {n: s["state"] for n, s in host.status().items()} == {"ok": "Ready"}
    assert sorted(p.name for p in (host.state / "models").iterdir()) == ["ok.json"]
    assert not (host.root / "x.json").exists() and not (host.root / "p").exists()
    assert host.cli("down").returncode == 0


EMPTY = "kept: the manifests directory is empty (reconciler.prune_empty is false)"


def test_deleting_the_last_manifest_keeps_it_and_says_so(host):
    """Issue 12 item 4: the empty-directory guard keeps the last model, visibly (plan, status, log)."""
    host.write("a")
    assert host.cli("apply", str(host.manifests)).returncode == 0
    pid = host.status()["a"]["pid"]
    (host.manifests / "a.yaml").unlink()
    note = (f"note: the manifests directory {host.manifests} holds no manifest: nothing is stopped (an empty "
            "directory may be a failed mount); to stop the models, run `xgen-declare down` or set "
            "reconciler.prune_empty: true")
    r = host.cli("plan")
    assert (r.returncode, r.stdout.splitlines()) == (0, [
        f"keep     a: {EMPTY}", note, "0 to start, 0 to restart, 0 to stop, 0 blocked, 1 unchanged"])
    r = host.cli("apply")
    assert r.returncode == 0, r.stderr
    assert f"a: {EMPTY}" in r.stderr and note[len("note: "):] in r.stderr
    st = host.status()["a"]
    assert (st["state"], st["pid"], st["manifest_error"]) == ("Ready", pid, EMPTY)
    assert host.cli("down").returncode == 0  # what the note suggests
    assert host.status()["a"]["state"] == "Stopped" and not alive(pid)
    host.config(prune_empty=True)
    r = host.cli("plan")
    assert r.stdout.splitlines()[0] == "stop     a: manifest removed (not running: forget it)"
    assert host.cli("apply").returncode == 0
    assert host.status() == {}


def test_down_with_no_manifests_dir_recorded_plans_and_holds(host):
    """Issue 22 item 4: `down` with no manifests dir recorded stops through the plan and the executor (it
    stopped through the supervisor with a copy of the one-shot loop): the model is held, its process gone,
    nothing is forgotten, whatever reconciler.prune_empty says."""
    host.config(prune_empty=True)
    host.write("a")
    host.write("b")
    assert host.cli("apply", str(host.manifests)).returncode == 0
    pids = {n: r["pid"] for n, r in host.status().items()}
    info_path = host.state / "daemon.json"
    info = json.loads(info_path.read_text())
    info["manifests"] = []  # as a state dir left by an `apply` of a directory that is gone
    info_path.write_text(json.dumps(info))
    r = host.cli("down", "a")
    assert r.returncode == 0, r.stderr
    assert "stopped (no manifests dir recorded)" in r.stderr
    st = host.status()
    assert (st["a"]["state"], st["a"]["held"], st["a"]["pid"]) == ("Stopped", True, None) and not alive(pids["a"])
    assert st["b"]["state"] == "Ready" and alive(pids["b"])  # only the model named
    assert host.cli("down").returncode == 0
    assert {n: (r["state"], r["held"]) for n, r in host.status().items()} == {"a": ("Stopped", True),
                                                                             "b": ("Stopped", True)}


def test_one_shot_apply_surges_and_a_failed_surge_is_exit_3_with_the_old_process_kept(host):
    """`apply` (no daemon) under `strategy: surge`: the new process starts beside the old one and takes over;
    a new spec that exits at start leaves the old one serving, says why and exits 3 (goal not reached)."""
    surge = {"strategy": "surge"}
    host.write("a", ctx_size=4096, rollout=surge)
    assert host.cli("apply", str(host.manifests)).returncode == 0
    first = host.status()["a"]
    host.write("a", ctx_size=8192, rollout=surge)
    r = host.cli("apply")
    assert r.returncode == 0, r.stderr
    assert "surge: the new process starts on port" in r.stdout
    second = host.status()["a"]
    assert second["state"] == "Ready" and second["pid"] != first["pid"] and second["port"] != first["port"]
    assert not alive(first["pid"])
    host.write("a", ctx_size=16384, rollout=surge, env={"FAKE_MODE": "exit_now"})
    r = host.cli("apply")
    assert r.returncode == 3, r.stderr
    third = host.status()["a"]
    assert (third["state"], third["pid"], third["spec_hash"]) == ("Ready", second["pid"], second["spec_hash"])
    assert "a: the rollout of spec " in r.stderr and "(the old process kept serving): exited with code 3" in r.stderr
