"""`xgen-declare sync` and `source pin | unpin | status` in-process, against the real `git http-backend`
test server with SSH-signed commits: what they print, their exit codes (README "Exit codes": 8 for a
refused commit or an unreachable remote), the pin holding a rollback until `unpin`."""

from __future__ import annotations

import json

import pytest

from xgen_declare.testing.gitrepos import WorkRepo, write_allowed_signers
from xgen_declare.testing.gitserver import GitHttpServer


def manifest(name: str, ctx: int = 2048) -> str:
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata: {{name: {name}}}\nspec:\n  model_path: ./m/{name}.gguf\n" \
           f"  ctx_size: {ctx}\n"


@pytest.fixture
def host(tmp_path, alice):
    """A repo served over http, a config naming it with source.verify, and `run(verb, ...)` for the CLI."""
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    repo.commit({"manifests/a.yaml": manifest("a"), "manifests/b.yaml": manifest("b")}, "first", signer=alice)
    repo.push()
    write_allowed_signers(tmp_path / "allowed_signers", [alice])
    with GitHttpServer(tmp_path / "srv") as srv:
        config = tmp_path / "xgen-declare.yaml"
        config.write_text(f"source:\n  git: {srv.url('config.git')}\n  ref: main\n  path: manifests\n"
                          "  verify: {allowed_signers: allowed_signers}\n")
        yield repo, srv, ["--config", str(config), "--state-dir", str(tmp_path / "state")]


def test_sync_prints_the_switch_the_signer_and_the_changed_manifests(cli, host, alice):
    repo, srv, opts = host
    first = repo.head()
    r = cli("sync", *opts)
    url = f"{srv.url('config.git')}#main//manifests"
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines()[:2] == [f"source:   {url}", f"commit:   none -> {first[:12]} (switched)"]
    assert r.out.splitlines()[2].startswith("verify:   good signature by alice@example.org (SHA256:")
    assert r.out.splitlines()[3:] == ["changed:  added: a, b"]
    second = repo.commit({"manifests/a.yaml": manifest("a", 4096), "manifests/b.yaml": None,
                          "manifests/c.yaml": manifest("c")}, "second", signer=alice)
    repo.push()
    r = cli("sync", *opts, "-o", "json")
    out = json.loads(r.out)
    assert r.code == 0
    assert (out["outcome"], out["old"], out["new"], out["reason"]) == ("switched", first, second, None)
    assert out["changes"] == {"added": ["c"], "changed": ["a"], "removed": ["b"]}
    assert out["signature"].startswith("alice@example.org (SHA256:") and out["source"]["text"] == url
    r = cli("sync", *opts)
    assert (r.code, r.out.splitlines()[1]) == (0, f"commit:   {second[:12]} (unchanged)")


def test_sync_refuses_an_unsigned_commit_exit_8_and_status_shows_it(cli, host):
    repo, srv, opts = host
    good = repo.head()
    assert cli("sync", *opts).code == 0
    unsigned = repo.commit({"manifests/a.yaml": manifest("a", 1)}, "unsigned")
    repo.push()
    r = cli("sync", *opts)
    assert r.code == 8
    assert r.out.splitlines()[1:] == [f"commit:   {good[:12]} stays current; {unsigned[:12]} refused (unsigned)",
                                      "verify:   refused (unsigned)"]
    assert r.err == (f"error: commit {unsigned[:12]} is not signed; it is not applied (sign it with a key listed in "
                     "allowed_signers)\n")
    s = cli("source", "status", *opts)
    assert s.code == 0
    lines = s.out.splitlines()
    assert lines[1].startswith(f"current:    {good} (since ")
    assert lines[2].endswith(f"refused (unsigned), fetched {unsigned[:12]}")
    assert lines[3] == f"last error: commit {unsigned[:12]} is not signed; it is not applied (sign it with a key " \
                       "listed in allowed_signers)"
    j = json.loads(cli("source", "status", *opts, "-o", "json").out)
    assert (j["current"]["commit"], j["last_poll"]["outcome"], j["last_poll"]["reason"], j["pin"]) == (
        good, "refused", "unsigned", None)


def test_sync_refuses_invalid_manifests_listing_each_problem(cli, host, alice):
    repo, srv, opts = host
    assert cli("sync", *opts).code == 0
    bad = repo.commit({"manifests/a.yaml": manifest("a") + "  bogus: 1\n"}, "typo", signer=alice)
    repo.push()
    r = cli("sync", *opts)
    assert r.code == 8
    assert r.err.splitlines() == [
        f"error: commit {bad[:12]}: 1 manifest problem(s), it is not applied: manifests/a.yaml:7: spec.bogus: "
        "unknown field `bogus` (did you mean `gpus`?)",
        "  manifests/a.yaml:7: spec.bogus: unknown field `bogus` (did you mean `gpus`?)"]


def test_sync_without_a_source_and_with_an_unreadable_token(cli, host, tmp_path):
    _, srv, opts = host
    r = cli("sync", "--state-dir", str(tmp_path / "s2"))
    assert (r.code, r.out) == (2, "")
    assert r.err == ("error: no git source: no config file; give a config with `source: {git: URL}` (--config "
                     "FILE), or --source git+URL[#REF][//PATH]\n")
    cfg = tmp_path / "token.yaml"
    cfg.write_text(f"source: {{git: {srv.url('config.git')}, token_file: nosuch}}\n")
    r = cli("sync", "--config", str(cfg), "--state-dir", str(tmp_path / "s3"))
    assert r.code == 1
    assert r.err == (f"error: source.token_file: {tmp_path / 'nosuch'}: cannot be read: No such file or directory "
                     "(check the path and its permissions)\n")
    r = cli("sync", "--source", f"git+{srv.url('config.git')}#main//manifests", "--state-dir", str(tmp_path / "s4"))
    assert (r.code, r.out.splitlines()[2:]) == (0, ["verify:   not configured (source.verify.allowed_signers)",
                                                    "changed:  added: a, b"])
    srv.go_away()
    r = cli("sync", *opts)
    assert r.code == 8 and r.err.startswith(f"error: cannot fetch {srv.url('config.git')}: ")


def test_pin_holds_a_rollback_until_unpin(cli, host, alice, tmp_path):
    repo, srv, opts = host
    first = repo.head()
    assert cli("sync", *opts).code == 0
    second = repo.commit({"manifests/a.yaml": manifest("a", 4096)}, "second", signer=alice)
    repo.push()
    assert cli("sync", *opts).code == 0
    r = cli("pin", first[:10], *opts)  # the verb; `source pin` is the same command
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines()[1] == (f"commit:   {second[:12]} -> {first[:12]} (pinned; syncs fetch main and do not "
                                     "apply it: `xgen-declare unpin` to follow main again)")
    assert r.out.splitlines()[3] == "changed:  changed: a"
    third = repo.commit({"manifests/a.yaml": manifest("a", 8192)}, "third", signer=alice)
    repo.push()
    r = cli("sync", *opts)
    assert (r.code, r.out.splitlines()[1]) == (0, f"commit:   {first[:12]} (pinned; main is at {third[:12]}, not "
                                               "applied: `xgen-declare unpin` to follow main again)")
    status = cli("source", "status", *opts).out.splitlines()
    assert status[2].startswith(f"pinned:     {first} since ") and status[2].endswith(
        f"(was {second[:12]}; `xgen-declare unpin` to follow the ref)")
    r = cli("unpin", *opts)
    assert (r.code, r.out) == (0, f"unpinned (was at {first[:12]}): the next sync follows main again\n")
    assert cli("source", "unpin", *opts).out == "no pin was set: syncs follow main\n"
    r = cli("sync", *opts)
    assert (r.code, r.out.splitlines()[1]) == (0, f"commit:   {first[:12]} -> {third[:12]} (switched)")


def test_pin_refuses_an_unsigned_or_unknown_commit_and_pins_nothing(cli, host, tmp_path):
    repo, srv, opts = host
    assert cli("sync", *opts).code == 0
    unsigned = repo.commit({"manifests/a.yaml": manifest("a", 1)}, "unsigned")
    repo.push()
    r = cli("source", "pin", unsigned, *opts)
    assert r.code == 8 and r.err.startswith(f"error: commit {unsigned[:12]} is not signed; it is not applied")
    assert not (tmp_path / "state" / "source" / "pin").exists()
    r = cli("source", "pin", "abcdef1", *opts)
    assert (r.code, r.err) == (1, f"error: commit 'abcdef1' is not among the commits fetched from "
                                  f"{srv.url('config.git')}; give its full 40-character id to fetch it\n")
    r = cli("source", "pin", *opts, "--", "--upload-pack=touch")  # never reaches git's argv as an option
    assert (r.code, r.err) == (1, "error: '--upload-pack=touch' is not a commit id (give its hex id, at least 7 "
                                  "characters, as `git log` shows it)\n")
    r = cli("source", "pin", "HEAD~1", *opts)
    assert (r.code, r.err) == (1, "error: 'HEAD~1' is not a commit id (give its hex id, at least 7 characters, as "
                                  "`git log` shows it)\n")
    r = cli("source", "pin", "ab" * 20, *opts)
    assert (r.code, r.err) == (1, f"error: commit {'ab' * 20} is not on {srv.url('config.git')} (check the id: "
                                  "`git log` in a clone shows it)\n")


def test_a_damaged_pin_file_stops_syncs_until_unpin(cli, host, tmp_path):
    repo, srv, opts = host
    assert cli("sync", *opts).code == 0
    pin = tmp_path / "state" / "source" / "pin"
    pin.write_text("{\"commit\": \"HEAD\"}")
    r = cli("sync", *opts)
    assert r.code == 1
    assert r.err == (f"error: {pin} does not hold a commit id (run `xgen-declare pin COMMIT` again, or "
                     "`xgen-declare unpin`)\n")
    assert cli("source", "status", *opts).code == 1
    assert cli("source", "unpin", *opts).out == "unpinned (was a damaged pin): the next sync follows main again\n"
    assert cli("sync", *opts).code == 0
