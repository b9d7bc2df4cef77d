"""Three hosts, one git repository (issue 24 items 3, 6, 7): three daemons on this machine, each with its own
state dir, port range, API port and token, and `host.labels`, each `run` following the same repository
served by the real `git http-backend`, commits signed with an SSH key made in the test.

A signed commit that changes one model for one label set only (a `spec.overrides` entry for site b)
restarts that model on that host alone; `fleet status` over the three APIs shows the commit everywhere; an
unsigned commit is refused by all three, and `status` and `fleet status` say so. Every wait is bounded."""

from __future__ import annotations

import json

import psutil
import pytest

from tests.integration.conftest import FAST, manifest
from xgen_declare.reconciler.fleet_status import ask_hosts, load_hosts
from xgen_declare.testing.gitrepos import SshSigner, WorkRepo, write_allowed_signers
from xgen_declare.testing.gitserver import GitHttpServer
from xgen_declare.testing.harness import Daemon, free_port, free_port_block, poll_until

LABELS = {"h1": {"role": "chat", "site": "a"}, "h2": {"role": "chat", "site": "b"}, "h3": {"role": "embed", "site": "a"}}


def for_role(name: str, role: str | None, extra: str = "") -> str:
    text = manifest(name)
    return (text if role is None else text + f"  hosts: {{matchLabels: {{role: {role}}}}}\n") + extra


SITE_B = "  overrides:\n    - hosts: {matchLabels: {site: b}}\n      set: {ctx_size: 4096}\n"


@pytest.fixture
def fleet(host, tmp_path):
    """(repo, signer, {name: Daemon}, hosts.yaml): three daemons following the served repository."""
    alice = SshSigner.generate(tmp_path / "keys", "alice@example.org")
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    write_allowed_signers(tmp_path / "allowed_signers", [alice])
    base = free_port_block(15)
    daemons: dict[str, Daemon] = {}
    entries = []
    with GitHttpServer(tmp_path / "srv") as srv:
        try:
            for i, (name, labels) in enumerate(LABELS.items()):
                root = tmp_path / name
                root.mkdir()
                (root / "token").write_text(f"token-of-{name}\n")
                api = free_port()
                cfg = {"binaries": {"llama-server-cpu": str(host.fake)},
                       "ports": {"start": base + 5 * i, "end": base + 5 * i + 4}, "reconciler": FAST,
                       "host": {"labels": labels}, "api": {"port": api, "token_file": str(root / "token")},
                       "source": {"git": srv.url("config.git"), "ref": "main", "path": "manifests", "interval": "1s",
                                  "verify": {"allowed_signers": str(tmp_path / "allowed_signers")}}}
                (root / "host.yaml").write_text(json.dumps(cfg))
                d = Daemon(root / "unused", root / "state", log=root / "daemon.log",
                           env={"FAKE_PIDDIR": host.env["FAKE_PIDDIR"], "XDG_CACHE_HOME": str(root / "cache")})
                d.status_via_cli, d.poll, d.timeout = False, 0.1, 30.0
                d.config = str(root / "host.yaml")
                daemons[name] = d
                entries.append({"name": name, "url": f"http://127.0.0.1:{api}", "token_file": str(root / "token")})
            hosts_file = tmp_path / "hosts.yaml"
            hosts_file.write_text(json.dumps({"timeout": "5s", "hosts": entries}))
            yield repo, alice, daemons, str(hosts_file)
        finally:
            for d in daemons.values():
                d.cli("--config", d.config, "down", timeout=60)
                d.cleanup()


def ask(hosts_file: str):
    hosts, timeout = load_hosts(hosts_file)
    return {h.name: h for h in ask_hosts(hosts, timeout).hosts}


def wait_fleet(hosts_file: str, pred, what: str, timeout: float = 40):
    last: dict = {}

    def holds() -> bool:
        nonlocal last
        last = ask(hosts_file)
        return bool(pred(last))

    assert poll_until(holds, timeout, 0.3) is not None, \
        f"timed out waiting for {what}; last: {json.dumps({n: h.to_json() for n, h in last.items()}, indent=1)}"
    return last


def test_three_hosts_follow_one_repo_each_its_part(fleet):
    repo, alice, daemons, hosts_file = fleet
    first = repo.commit({"manifests/chat.yaml": for_role("chat", "chat"),
                         "manifests/embed.yaml": for_role("embed", "embed"),
                         "manifests/all.yaml": for_role("all", None)}, "three models", signer=alice)
    repo.push()
    for d in daemons.values():
        d.start("--config", d.config, "--api", target=())
    before = {n: d.wait_ready(*(["all", "chat"] if n != "h3" else ["all", "embed"])) for n, d in daemons.items()}
    assert {n: sorted(s) for n, s in before.items()} == {"h1": ["all", "chat"], "h2": ["all", "chat"],
                                                         "h3": ["all", "embed"]}
    wait_fleet(hosts_file, lambda f: all(h.serving == first and not h.pending for h in f.values()), "first served")

    # one model, one label set: chat gets ctx_size 4096 on site b (h2) only
    second = repo.commit({"manifests/chat.yaml": for_role("chat", "chat", SITE_B)}, "chat: 4096 on site b",
                         signer=alice)
    repo.push()
    after = daemons["h2"].wait_status(lambda s: s["chat"]["pid"] != before["h2"]["chat"]["pid"]
                                      and s["chat"]["state"] == "Ready", what="chat restarted on h2")
    wait_fleet(hosts_file, lambda f: all(h.serving == second and not h.pending for h in f.values()),
               "second served everywhere")
    now = {n: d.status() for n, d in daemons.items()}
    assert now["h1"]["chat"]["pid"] == before["h1"]["chat"]["pid"]  # site a: same spec, same process
    assert now["h3"]["embed"]["pid"] == before["h3"]["embed"]["pid"]
    assert all(now[n]["all"]["pid"] == before[n]["all"]["pid"] for n in daemons)
    argv = psutil.Process(after["chat"]["pid"]).cmdline()
    assert argv[argv.index("--ctx-size") + 1] == "4096"
    assert "--ctx-size" not in psutil.Process(now["h1"]["chat"]["pid"]).cmdline()

    d1 = daemons["h1"]
    r = d1.cli("fleet", "status", "--hosts", hosts_file, "--commit", second[:7])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["HOST", "SERVES", "MODEL", "STATE", "FROM", "NOTE"]
    rows = sorted(tuple(line.split()) for line in lines[1:-1])
    assert rows == [("h1", second[:12], "all", "Ready", first[:12]), ("h1", second[:12], "chat", "Ready", first[:12]),
                    ("h2", second[:12], "all", "Ready", first[:12]), ("h2", second[:12], "chat", "Ready", second[:12]),
                    ("h3", second[:12], "all", "Ready", first[:12]), ("h3", second[:12], "embed", "Ready", first[:12])]
    assert lines[-1] == f"commit {second[:7]} serves on all 3 host(s)"
    print(f"\n$ xgen-declare fleet status --hosts hosts.yaml --commit {second[:7]}\n{r.stdout}")  # pytest -s shows it
    assert "token-of" not in r.stdout + r.stderr

    # an unsigned commit: refused by all three, the signed one keeps serving, and both views say so
    unsigned = repo.commit({"manifests/embed.yaml": for_role("embed", "embed", "  ctx_size: 2048\n")}, "unsigned")
    repo.push()
    refused = wait_fleet(hosts_file, lambda f: all((h.refusal or "").startswith(f"refused {unsigned[:12]}")
                                                   for h in f.values()), "the unsigned commit refused by all three")
    assert {n: h.serving for n, h in refused.items()} == {n: second for n in daemons}
    r = d1.cli("fleet", "status", "--hosts", hosts_file, "--commit", unsigned[:7])
    assert r.returncode == 3
    for n in daemons:
        assert f"{n}: refused {unsigned[:12]}: commit {unsigned[:12]} is not signed" in r.stdout
        assert f"not serving {unsigned[:7]}: {n}: serves {second[:12]} (refused {unsigned[:12]}: " in r.stderr
        text = daemons[n].cli("--config", daemons[n].config, "status").stderr
        if n == "h1":
            print(f"\n$ xgen-declare fleet status --hosts hosts.yaml --commit {unsigned[:7]}  (exit 3)\n{r.stdout}{r.stderr}"
                  f"\n$ xgen-declare status   (h1, stderr)\n{text}")
        assert f"refused (unsigned), fetched {unsigned[:12]}: commit {unsigned[:12]} is not signed" in text
    assert {n: {m: s["pid"] for m, s in d.status().items()} for n, d in daemons.items()} == \
        {n: {m: s["pid"] for m, s in st.items()} for n, st in now.items()}
