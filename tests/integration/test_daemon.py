"""`run` with real (fake) backends: edits, crashes, stops, adoption. Each test owns its processes."""

from __future__ import annotations

import os
import signal
import time

from .conftest import alive, manifest


def test_edit_one_of_several_restarts_only_that_one(host):
    for n in ("a", "b", "c"):
        host.write(n, ctx_size=4096)
    host.start_daemon()
    st = host.wait_ready("a", "b", "c")
    before = {n: st[n]["pid"] for n in st}
    assert len(set(before.values())) == 3

    host.write("b", ctx_size=8192)
    st = host.wait(lambda s: s["b"]["state"] == "Ready" and s["b"]["pid"] != before["b"], what="b restarted")
    assert {n: st[n]["pid"] for n in ("a", "c")} == {"a": before["a"], "c": before["c"]}
    assert {n: st[n]["restarts"] for n in st} == {"a": 0, "b": 1, "c": 0}
    assert not alive(before["b"])
    assert "apply: restart  b: argv changed: --ctx-size 4096 → 8192" in host.daemon_log()

    # removing a manifest stops that model only and forgets it
    (host.manifests / "c.yaml").unlink()
    st = host.wait(lambda s: "c" not in s, what="c forgotten")
    assert not alive(before["c"])
    assert st["a"]["pid"] == before["a"]

    # down holds, up releases; the port stays the model's
    r = host.cli("down", "a")
    assert r.returncode == 0, r.stderr
    st = host.status()
    assert (st["a"]["state"], st["a"]["held"], st["a"]["pid"]) == ("Stopped", True, None)
    time.sleep(0.3)  # a reconcile pass must not start it again
    assert host.status()["a"]["state"] == "Stopped"
    r = host.cli("up", "a")
    assert r.returncode == 0, r.stderr + r.stdout
    st = host.wait_ready("a")
    assert st["a"]["port"] == host.base and st["a"]["endpoint"] == f"http://127.0.0.1:{host.base}/v1"


def test_crash_backoff_recovery(host):
    host.write("flaky", env={"FAKE_MODE": "crash_times=2", "FAKE_COUNTER": str(host.root / "counter")})
    host.start_daemon()
    st = host.wait(lambda s: s["flaky"]["state"] == "CrashLoopBackOff", what="back-off")
    assert "exited with code 1 during start" in st["flaky"]["last_error"]
    assert "fake: crash 1 of 2" in st["flaky"]["last_error"]  # the last log lines
    st = host.wait_ready("flaky")
    assert st["flaky"]["restarts"] == 2 and st["flaky"]["last_error"] is None
    log = host.daemon_log()
    assert "retry in 0.3s" in log and "retry in 0.6s" in log  # doubling


def test_sigterm_ignored_then_sigkill_after_grace_and_grandchild_dies(host):
    host.write("stubborn", stop_grace=0.5, env={"FAKE_MODE": "ignore_term,grandchild"})
    host.write("other")
    host.start_daemon()
    st = host.wait_ready("stubborn", "other")
    main, grandchild = host.fake_pid("stubborn", "main"), host.fake_pid("stubborn", "grandchild")
    assert alive(grandchild)
    t0 = time.monotonic()
    (host.manifests / "stubborn.yaml").unlink()
    host.wait(lambda s: "stubborn" not in s, what="stubborn stopped")
    assert time.monotonic() - t0 >= 0.5
    assert not alive(main) and not alive(grandchild)
    assert "SIGKILL to the group" in host.daemon_log()
    assert host.status()["other"]["pid"] == st["other"]["pid"]


def test_setsid_escapee_is_swept(host):
    host.write("escaper", env={"FAKE_MODE": "setsid"}, stop_grace=0.5)
    host.start_daemon()
    host.wait_ready("escaper")
    escapee = host.fake_pid("escaper", "escapee")
    assert os.getpgid(escapee) != host.status()["escaper"]["pid"]  # really left the group
    assert host.cli("down", "escaper").returncode == 0
    deadline = time.monotonic() + 5
    while alive(escapee) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(escapee)


def test_daemon_sigkill_then_adoption_with_zero_restarts(host):
    for n in ("a", "b"):
        host.write(n)
    d = host.start_daemon()
    st = host.wait_ready("a", "b")
    before = {n: (st[n]["pid"], st[n]["restarts"]) for n in st}
    # a second daemon on the same state dir is refused: busy (4), not a usage error
    second = host.cli("run", str(host.manifests), timeout=20)
    assert second.returncode == 4 and "one daemon per state dir" in second.stderr
    os.killpg(d.pid, signal.SIGKILL)
    d.wait(5)
    assert all(alive(pid) for pid, _ in before.values())
    host.start_daemon()
    deadline = time.monotonic() + 20  # the records say Ready already: wait for the new daemon itself
    while "b: adopted pid" not in host.daemon_log() and time.monotonic() < deadline:
        time.sleep(0.1)
    st = host.wait_ready("a", "b")
    assert {n: (st[n]["pid"], st[n]["restarts"]) for n in st} == before
    assert "a: adopted pid" in host.daemon_log()


def test_invalid_or_half_written_edit_keeps_old_process(host):
    host.write("a")
    host.write("b")
    host.start_daemon()
    st = host.wait_ready("a", "b")
    pid = st["a"]["pid"]
    host.write("a", manifest("a").replace("ready_timeout", "ready_timeuot"))
    st = host.wait(lambda s: s["a"]["manifest_error"], what="manifest_error")
    assert (st["a"]["state"], st["a"]["pid"]) == ("Ready", pid)
    assert "ready_timeuot" in st["a"]["manifest_error"]
    (host.manifests / "a.yaml").write_text("apiVersion: xgen/v1\nkind: Model\nmetadata: {name: a\nspec:")
    st = host.wait(lambda s: "cannot" in (s["a"]["manifest_error"] or "") or "expected" in
                   (s["a"]["manifest_error"] or "") or s["a"]["manifest_error"] != st["a"]["manifest_error"],
                   what="parse error")
    assert (st["a"]["state"], st["a"]["pid"]) == ("Ready", pid)
    host.write("a")  # fixed, same spec as before: no restart
    st = host.wait(lambda s: s["a"]["manifest_error"] is None, what="error cleared")
    assert (st["a"]["state"], st["a"]["pid"], st["a"]["restarts"]) == ("Ready", pid, 0)
    # an emptied directory prunes nothing (no opt-in)
    for f in host.manifests.glob("*.yaml"):
        if f.name != "xgen-declare.yaml":
            f.unlink()
    time.sleep(0.8)
    st = host.status()
    assert st["a"]["pid"] == pid and st["b"]["state"] == "Ready"
    empty = "kept: the manifests directory is empty (reconciler.prune_empty is false)"
    assert st["a"]["manifest_error"] == st["b"]["manifest_error"] == empty
    assert f"WARNING a: {empty}\n" in host.daemon_log()


def test_liveness_failure_restarts_after_threshold(host):
    host.write("hangs", env={"FAKE_MODE": "hang_after=0.5"})
    host.start_daemon()
    st = host.wait_ready("hangs")
    pid = st["hangs"]["pid"]
    st = host.wait(lambda s: s["hangs"]["pid"] not in (None, pid) or s["hangs"]["restarts"] >= 1, timeout=20,
                   what="liveness restart")
    log = host.daemon_log()
    assert "hangs: Ready -> Unhealthy" in log
    assert "liveness probe failed 3 times" in log


def test_edit_storm_never_two_processes_and_stop_on_exit(host):
    host.write("storm", ctx_size=1000)
    host.write("calm")
    d = host.start_daemon("--stop-on-exit")
    st = host.wait_ready("storm", "calm")
    calm = st["calm"]["pid"]
    owner = (host.state / "owner_id").read_text().strip()
    from xgen_declare.processes.pids import find_marked

    for i in range(100):  # 100 saves in about a second
        host.write("storm", ctx_size=1001 + i)
        time.sleep(0.01)
        assert len([p for p in find_marked(f"{owner}/storm/") if alive(p.pid)]) <= 1
    st = host.wait(lambda s: s["storm"]["state"] == "Ready" and "--ctx-size" in open(
        f"/proc/{s['storm']['pid']}/cmdline").read().replace("\0", " ") and "1100" in open(
        f"/proc/{s['storm']['pid']}/cmdline").read(), what="last edit running")
    assert len([p for p in find_marked(f"{owner}/storm/") if alive(p.pid)]) == 1
    assert st["calm"]["pid"] == calm and st["calm"]["restarts"] == 0
    os.kill(d.pid, signal.SIGHUP)  # reconcile now: nothing to change
    time.sleep(0.3)
    assert host.status()["calm"]["pid"] == calm
    d.send_signal(signal.SIGTERM)
    assert d.wait(15) == 0
    assert not find_marked(f"{owner}/")
    assert {m["state"] for m in host.status().values()} == {"Stopped"}
