"""The daemon under bad input (issue: "Bad input"): a template that raises, a manifest deleted while its
model is starting, a corrupt state record, a broken config — it never crashes, never loses a process,
never leaves an orphan; the problem shows in `status` or the log."""

from __future__ import annotations

import json
import os
import time

from tests.integration.conftest import NAME_RULE, alive, bad_name_manifests


def test_template_that_raises_keeps_the_running_process(host):
    tdir = host.root / "templates"
    tdir.mkdir()
    host.config()
    cfg = json.loads((host.manifests / "xgen-declare.yaml").read_text())
    cfg["templates_dir"] = str(tdir)
    (host.manifests / "xgen-declare.yaml").write_text(json.dumps(cfg))
    host.write("a")
    host.write("b", model_path="/models/b-hf", backend="vllm-cpu")
    d = host.start_daemon()
    st = host.wait_ready("a", "b")
    pid_a, pid_b = st["a"]["pid"], st["b"]["pid"]
    # a user template for llama-server that raises: "a" cannot be rendered any more
    (tdir / "llama-server.j2").write_text("{{ binary }} {{ 1 / 0 }}\n")
    st = host.wait(lambda s: s["a"]["manifest_error"], what="render problem reported")
    assert "ZeroDivisionError" in st["a"]["manifest_error"] or "division" in st["a"]["manifest_error"]
    assert (st["a"]["state"], st["a"]["pid"]) == ("Ready", pid_a) and alive(pid_a)
    assert st["b"]["pid"] == pid_b  # the vLLM model does not use that template
    assert d.poll() is None
    (tdir / "llama-server.j2").unlink()  # back to the shipped template: same argv, nothing restarts
    st = host.wait(lambda s: s["a"]["manifest_error"] is None, what="problem cleared")
    assert (st["a"]["pid"], st["a"]["restarts"]) == (pid_a, 0)


def test_manifest_deleted_while_starting_leaves_no_process(host):
    host.write("slow", env={"FAKE_MODE": "load=30"}, ready_timeout=60)
    host.write("b")
    d = host.start_daemon()
    st = host.wait(lambda s: s["slow"]["state"] == "Starting" and s["slow"]["pid"], what="slow Starting")
    pid = st["slow"]["pid"]
    (host.manifests / "slow.yaml").unlink()
    host.wait(lambda s: "slow" not in s, timeout=15, what="slow forgotten")
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert host.wait_ready("b")["b"]["state"] == "Ready" and d.poll() is None


def test_corrupt_state_record_and_broken_config_do_not_crash_the_daemon(host):
    host.write("a")
    d = host.start_daemon()
    pid = host.wait_ready("a")["a"]["pid"]
    (host.state / "models" / "ghost.json").write_text("{not json")
    good_cfg = (host.manifests / "xgen-declare.yaml").read_text()
    (host.manifests / "xgen-declare.yaml").write_text("ports: {start: 1, end: [}\n")
    host.write("b")  # an event: the daemon re-reads everything with a broken config
    time.sleep(1.5)
    assert d.poll() is None
    st = host.status()
    assert st["a"]["pid"] == pid and alive(pid)
    r = host.cli("status")
    assert "daemon: config invalid, running on its last good config until it is fixed" in r.stderr
    assert "xgen-declare.yaml:1" in r.stderr
    (host.manifests / "xgen-declare.yaml").write_text(good_cfg)
    st = host.wait_ready("a", "b")
    assert st["a"]["pid"] == pid and d.poll() is None
    assert "config invalid" not in host.cli("status").stderr
    r = host.cli("status", "-o", "json")
    assert r.returncode == 0 and {m["name"] for m in json.loads(r.stdout)} >= {"a", "b"}


def test_bad_names_never_stop_the_daemon_converging(host):
    """Issue 12 item 3: a NUL or 250 characters in metadata.name raised out of every pass (edits of other
    models were never applied, `down` timed out); '../../x' wrote outside the state dir."""
    host.write("a", ctx_size=4096)
    d = host.start_daemon()
    pid = host.wait_ready("a")["a"]["pid"]
    bad_name_manifests(host)
    problem = f"{host.manifests / 'nul'}.yaml:4: {NAME_RULE}"
    deadline = time.monotonic() + 10
    while problem not in host.daemon_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)  # past resync_interval (2 s): full passes ran with the bad names
    host.write("a", ctx_size=8192)
    st = host.wait(lambda s: s["a"]["state"] == "Ready" and s["a"]["pid"] != pid, what="the edit of a applied")
    assert st["a"]["restarts"] == 1 and list(st) == ["a"]
    assert sorted(p.name for p in (host.state / "models").iterdir()) == ["a.json"]
    assert not (host.root / "x.json").exists() and not (host.root / "p").exists()
    log = host.daemon_log()
    assert problem in log and "Traceback" not in log
    for stem in ("dots", "shell", "nul", "long", "newline"):
        (host.manifests / f"{stem}.yaml").unlink()
    r = host.cli("down", "a", timeout=30)
    assert r.returncode == 0, r.stderr
    assert host.status()["a"]["state"] == "Stopped" and d.poll() is None


def test_hostile_model_files_never_stop_the_daemon_converging(host):
    """Issue #21 finding 2: one crafted GGUF (nested arrays, a string block_count, a FIFO named .gguf)
    failed every pass for every model. Now each is its own model's 'placement unknown': all models
    converge, an edit is applied, `plan` answers (exit 1: invalid input), the log holds no traceback."""
    from xgen_declare.testing.hostile_gguf import nested_array, string, write_gguf

    os.mkfifo(host.root / "fifo.gguf")
    files = {"nested": write_gguf(host.root / "nested.gguf", general__x=nested_array(5000)),
             "count": write_gguf(host.root / "count.gguf", llama__block_count=string("abc")),
             "fifo": str(host.root / "fifo.gguf")}
    for name, path in files.items():
        host.write(name, model_path=path)
    host.write("a", ctx_size=4096)
    d = host.start_daemon()
    st = host.wait_ready("a", *files)
    pid = st["a"]["pid"]
    host.write("a", ctx_size=8192)
    st = host.wait(lambda s: s["a"]["state"] == "Ready" and s["a"]["pid"] != pid, what="the edit of a applied")
    assert all(st[n]["state"] == "Ready" for n in files)
    r = host.cli("plan", timeout=30)
    assert r.returncode == 1, r.stderr  # a model file there but no usable GGUF is invalid input; plan answers
    assert "a" in r.stdout and "nested" in r.stdout  # the whole plan, the bad files' models kept
    for name, path in files.items():
        assert f"warning: {name}: placement unknown: {path}: " in r.stderr
    log = host.daemon_log()
    assert "Traceback" not in log and "reconcile pass failed" not in log and d.poll() is None
