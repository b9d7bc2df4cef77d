"""The source's files as flags (cli/sourceview.py source_file_options) on every verb that takes a git+URL
without a config: `sync --source`, `source pin | unpin | status --source`, as `run git+URL` takes them;
against the real `git http-backend` test server (a token it asks for, SSH-signed commits)."""

from __future__ import annotations

import json

import pytest

from xgen_declare.testing.gitrepos import WorkRepo, write_allowed_signers
from xgen_declare.testing.gitserver import GitHttpServer

from .test_cli_source import manifest

VERBS = (("sync",), ("source", "status"), ("source", "unpin"), ("source", "pin", "ab" * 20), ("pin", "ab" * 20))
FLAGS = ("--verify-allowed-signers", "--token-file", "--ssh-key-file", "--known-hosts")


@pytest.fixture
def served(tmp_path, alice):
    """A repo with one signed commit, served over http behind the token `right-token`; the token's file, the
    allowed signers' file and `--source git+URL#main//manifests`."""
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    repo.commit({"manifests/a.yaml": manifest("a")}, "first", signer=alice)
    repo.push()
    token = tmp_path / "token"
    token.write_text("right-token\n")
    signers = write_allowed_signers(tmp_path / "allowed_signers", [alice])
    with GitHttpServer(tmp_path / "srv", token="right-token") as srv:
        yield repo, srv, str(token), str(signers), ["--source", f"git+{srv.url('config.git')}#main//manifests"]


def test_sync_of_a_repo_that_needs_a_token_takes_token_file(cli, served, tmp_path):
    repo, srv, token, _, source = served
    state = ["--state-dir", str(tmp_path / "state")]
    r = cli("sync", *source, *state)
    assert (r.code, r.err) == (8, f"error: cannot fetch {srv.url('config.git')}: the server asks for credentials "
                                  "(HTTP 401: set source.token_file, or --token-file FILE with a git+URL); the last "
                                  "good commit stays current\n")
    r = cli("sync", *source, "--token-file", token, *state)
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines() == [f"source:   {srv.url('config.git')}#main//manifests",
                                  f"commit:   none -> {repo.head()[:12]} (switched)",
                                  "verify:   not configured (source.verify.allowed_signers)", "changed:  added: a"]


def test_source_status_pin_and_unpin_take_the_token_file(cli, served, tmp_path, alice):
    repo, srv, token, _, source = served
    state = ["--state-dir", str(tmp_path / "state")]
    first = repo.head()
    assert cli("sync", *source, "--token-file", token, *state).code == 0
    second = repo.commit({"manifests/a.yaml": manifest("a", 4096)}, "second", signer=alice)
    repo.push()
    assert cli("sync", *source, "--token-file", token, *state).code == 0
    r = cli("source", "status", *source, "--token-file", token, *state, "-o", "json")
    assert r.code == 0
    assert (json.loads(r.out)["current"]["commit"], json.loads(r.out)["source"]["url"]) == (second,
                                                                                            srv.url("config.git"))
    r = cli("source", "pin", first, *source, "--token-file", token, *state)
    assert (r.code, r.out.splitlines()[1]) == (0, f"commit:   {second[:12]} -> {first[:12]} (pinned; syncs fetch main "
                                                  "and do not apply it: `xgen-declare unpin` to follow main again)")
    r = cli("source", "status", *source, "--token-file", token, *state)
    assert r.code == 0 and r.out.splitlines()[2].startswith(f"pinned:     {first} since ")
    r = cli("source", "unpin", *source, "--token-file", token, *state)
    assert (r.code, r.out) == (0, f"unpinned (was at {first[:12]}): the next sync follows main again\n")


def test_sync_with_verify_allowed_signers_applies_a_signed_commit_and_refuses_an_unsigned_one(cli, served, tmp_path):
    repo, srv, token, signers, source = served
    state = ["--state-dir", str(tmp_path / "state")]
    flags = [*source, "--token-file", token, "--verify-allowed-signers", signers, *state]
    good = repo.head()
    r = cli("sync", *flags)
    assert (r.code, r.err, r.out.splitlines()[1]) == (0, "", f"commit:   none -> {good[:12]} (switched)")
    assert r.out.splitlines()[2].startswith("verify:   good signature by alice@example.org (SHA256:")
    assert json.loads(cli("sync", *flags, "-o", "json").out)["verified"] is True
    unsigned = repo.commit({"manifests/a.yaml": manifest("a", 1)}, "unsigned")
    repo.push()
    r = cli("sync", *flags)
    assert r.code == 8
    assert r.out.splitlines()[1:] == [f"commit:   {good[:12]} stays current; {unsigned[:12]} refused (unsigned)",
                                      "verify:   refused (unsigned)"]
    assert r.err == (f"error: commit {unsigned[:12]} is not signed; it is not applied (sign it with a key listed in "
                     "allowed_signers)\n")
    r = cli("source", "pin", unsigned, *flags)
    assert r.code == 8 and r.err.startswith(f"error: commit {unsigned[:12]} is not signed; it is not applied")
    assert not (tmp_path / "state" / "source" / "pin").exists()


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_a_source_flag_without_source_is_a_usage_error_naming_it(cli, verb, tmp_path):
    (tmp_path / "f").write_text("x\n")
    cfg = tmp_path / "host.yaml"
    cfg.write_text("source: {git: 'file:///srv/git/llm.git'}\n")
    for flag in FLAGS:
        for config in ([], ["--config", str(cfg)]):  # the config's `source:` sets its own files
            r = cli(*verb, flag, str(tmp_path / "f"), *config, "--state-dir", str(tmp_path / "s"))
            assert (r.code, r.out) == (2, "")
            assert r.err == (f"error: {flag} is for a git+URL given as --source (`--source git+URL[#REF][//PATH] "
                             f"{flag} FILE`); without --source, the config's `source:` (or the source this state "
                             "dir's daemon follows) sets its own files\n")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_a_missing_or_misplaced_source_file_names_the_flag_before_any_fetch(cli, served, verb, tmp_path):
    _, srv, token, _, source = served
    state = ["--state-dir", str(tmp_path / "state")]
    nosuch = tmp_path / "nosuch"
    for flag in ("--token-file", "--verify-allowed-signers"):
        r = cli(*verb, *source, flag, str(nosuch), *state)
        assert (r.code, r.out, r.err) == (1, "", f"error: {flag}: cannot read {nosuch}: No such file or directory "
                                                 "(check the path and permissions)\n")
    r = cli(*verb, *source, "--ssh-key-file", token, *state)
    assert (r.code, r.err) == (1, "error: --ssh-key-file: is for ssh:// repositories, not http:// (remove "
                                  "--ssh-key-file, or use an ssh:// URL)\n")
    assert srv.requests == [] and not (tmp_path / "state").exists()
