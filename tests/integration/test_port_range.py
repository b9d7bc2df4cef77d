"""Finding 8 (#21): a port range with room for 2 of 3 enabled models: 2 start, the third is Blocked (status
shows why, naming the range), `plan` exits 1 naming it, and an unrelated edit is still applied."""

from __future__ import annotations


def test_full_range_blocks_the_model_that_does_not_fit_and_the_rest_converges(host):
    host.write_config({"binaries": {"llama-server-cpu": str(host.fake)},
                       "ports": {"start": host.base, "end": host.base + 1},
                       "reconciler": {"resync_interval": 2, "debounce": 0.05, "backoff_base": 0.3}})
    for n in ("a", "b", "c"):
        host.write(n, ctx_size=4096)
    host.write("off", enabled=False)  # sorts after a, b: it would have taken a port of its own before
    host.start_daemon()
    st = host.wait(lambda s: s["a"]["state"] == s["b"]["state"] == "Ready" and s["c"]["state"] == "Blocked",
                   what="a, b Ready and c Blocked")
    assert {st["a"]["port"], st["b"]["port"]} == {host.base, host.base + 1}
    assert st["c"]["pid"] is None
    rng = f"{host.base}-{host.base + 1}"
    assert st["c"]["last_error"] == (
        f"{host.manifests / 'c.yaml'}:1: spec.port: no free port in {rng} (ports: in xgen-declare.yaml): every port "
        "of the range is taken by other models (widen ports: in xgen-declare.yaml, or give c an explicit spec.port)")

    r = host.cli("plan", "-o", "json")
    assert r.returncode == 1, r.stderr
    assert (f"xgen-declare.yaml: ports: no free port in {rng} for: c (Blocked; the other models start) (widen "
            "ports: in xgen-declare.yaml, or give c an explicit spec.port)") in r.stderr.splitlines()

    before = st["a"]["pid"]
    host.write("a", ctx_size=8192)  # unrelated to the full range: applied all the same
    st = host.wait(lambda s: s["a"]["state"] == "Ready" and s["a"]["pid"] != before, what="a restarted")
    assert st["a"]["restarts"] == 1 and st["c"]["state"] == "Blocked"
    assert "apply: restart  a: argv changed: --ctx-size 4096 → 8192" in host.daemon_log()
