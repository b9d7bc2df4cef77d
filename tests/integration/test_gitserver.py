"""The test git HTTP server (xgen_declare/testing/gitserver.py) runs the real smart-HTTP protocol: clone,
fetch and push over http work against it, a force push is fetched, a wrong token is refused, its fault
knobs fail a fetch; and the repo helpers sign commits with a key made in the test."""

from __future__ import annotations

import os

import pytest

from xgen_declare.testing.deadline import within
from xgen_declare.testing.gitrepos import SshSigner, WorkRepo, git, signature_status, write_allowed_signers
from xgen_declare.testing.gitserver import GitHttpServer

T = 60  # a deadline, far above the time a loopback clone takes


@pytest.fixture
def served(tmp_path):
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    first = repo.commit({"manifests/a.yaml": "a: 1\n"}, "first")
    repo.push()
    with GitHttpServer(tmp_path / "srv") as srv:
        yield srv, repo, first


def _clone(url: str, dest, **kw):
    return within(T, lambda: git("clone", "-q", url, str(dest), **kw), "git clone over http")


def test_clone_fetch_and_push_over_http(served, tmp_path):
    srv, repo, first = served
    _clone(srv.url("config.git"), tmp_path / "clone")
    assert git("rev-parse", "HEAD", cwd=tmp_path / "clone").stdout.strip() == first
    assert (tmp_path / "clone" / "manifests" / "a.yaml").read_text() == "a: 1\n"

    second = repo.commit({"manifests/b.yaml": "b: 2\n"}, "second")
    repo.push()
    within(T, lambda: git("fetch", "-q", "origin", cwd=tmp_path / "clone"), "git fetch over http")
    assert git("rev-parse", "origin/main", cwd=tmp_path / "clone").stdout.strip() == second

    git("merge", "-q", "--ff-only", "origin/main", cwd=tmp_path / "clone")
    (tmp_path / "clone" / "c.yaml").write_text("c: 3\n")
    git("add", "c.yaml", cwd=tmp_path / "clone")
    git("commit", "-q", "-m", "from the clone", cwd=tmp_path / "clone")
    within(T, lambda: git("push", "-q", "origin", "HEAD:main", cwd=tmp_path / "clone"), "git push over http")
    pushed = git("rev-parse", "HEAD", cwd=tmp_path / "clone").stdout.strip()
    assert git("rev-parse", "main", cwd=repo.bare).stdout.strip() == pushed
    assert any(r.startswith("POST /config.git/git-receive-pack") for r in srv.requests)


def test_a_large_push_streams_a_chunked_body(served, tmp_path):
    srv, repo, _ = served
    _clone(srv.url("config.git"), tmp_path / "clone")
    (tmp_path / "clone" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # over http.postBuffer (1 MiB)
    git("add", "blob.bin", cwd=tmp_path / "clone")
    git("commit", "-q", "-m", "3 MiB", cwd=tmp_path / "clone")
    within(T, lambda: git("push", "-q", "origin", "HEAD:main", cwd=tmp_path / "clone"), "a chunked push")
    assert "POST /config.git/git-receive-pack (chunked)" in srv.requests
    assert git("rev-parse", "main", cwd=repo.bare).stdout.strip() == \
        git("rev-parse", "HEAD", cwd=tmp_path / "clone").stdout.strip()


def test_a_force_push_is_fetched(served, tmp_path):
    srv, repo, first = served
    _clone(srv.url("config.git"), tmp_path / "clone")
    repo.commit({"manifests/a.yaml": "a: 2\n"}, "to be rewritten")
    repo.push()
    repo.reset_hard(first)
    rewritten = repo.commit({"manifests/a.yaml": "a: 3\n"}, "rewritten")
    repo.push(force=True)
    within(T, lambda: git("fetch", "-q", "origin", "+main:refs/remotes/origin/main", cwd=tmp_path / "clone"))
    assert git("rev-parse", "origin/main", cwd=tmp_path / "clone").stdout.strip() == rewritten


def test_a_token_is_needed_and_a_wrong_one_is_refused(served, tmp_path):
    srv, _, first = served
    srv.token = "right-token"
    url = srv.url("config.git")
    for name, config in (("none", {}), ("wrong", {"http.extraHeader": "Authorization: Bearer wrong-token"})):
        proc = within(T, lambda: git("clone", "-q", url, str(tmp_path / name), config=config, check=False))
        assert proc.returncode != 0 and "terminal prompts disabled" in proc.stderr, proc.stderr  # 401, no prompt
    wrong_basic = url.replace("http://", "http://x-access-token:wrong-token@")
    proc = within(T, lambda: git("clone", "-q", wrong_basic, str(tmp_path / "wrong-basic"), check=False))
    assert proc.returncode != 0 and "Authentication failed" in proc.stderr, proc.stderr
    _clone(url, tmp_path / "bearer", config={"http.extraHeader": "Authorization: Bearer right-token"})
    basic = url.replace("http://", "http://x-access-token:right-token@")
    _clone(basic, tmp_path / "basic")
    assert git("rev-parse", "HEAD", cwd=tmp_path / "basic").stdout.strip() == first


def test_refuse_and_go_away_fail_a_fetch_until_it_comes_back(served, tmp_path):
    srv, _, _ = served
    _clone(srv.url("config.git"), tmp_path / "clone")
    srv.refuse(503)
    proc = within(T, lambda: git("fetch", "-q", "origin", cwd=tmp_path / "clone", check=False))
    assert proc.returncode != 0 and "503" in proc.stderr, proc.stderr
    srv.refuse(None)
    srv.go_away()
    proc = within(T, lambda: git("fetch", "-q", "origin", cwd=tmp_path / "clone", check=False))
    assert proc.returncode != 0 and ("Connection refused" in proc.stderr or "connect" in proc.stderr), proc.stderr
    srv.come_back()
    within(T, lambda: git("fetch", "-q", "origin", cwd=tmp_path / "clone"))


def test_commits_signed_with_a_generated_ssh_key(tmp_path):
    alice = SshSigner.generate(tmp_path / "keys", "alice@example.org")
    mallory = SshSigner.generate(tmp_path / "keys", "mallory@example.org")
    allowed = write_allowed_signers(tmp_path / "allowed_signers", [alice])
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    good = repo.commit({"a.yaml": "a: 1\n"}, "by alice", signer=alice)
    stranger = repo.commit({"a.yaml": "a: 2\n"}, "by mallory", signer=mallory)
    unsigned = repo.commit({"a.yaml": "a: 3\n"}, "unsigned")
    assert [signature_status(repo.path, c, allowed) for c in (good, stranger, unsigned)] == ["G", "U", "N"]
    ok = git("verify-commit", good, cwd=repo.path, config={"gpg.ssh.allowedSignersFile": str(allowed)}, check=False)
    bad = git("verify-commit", stranger, cwd=repo.path, config={"gpg.ssh.allowedSignersFile": str(allowed)},
              check=False)
    assert ok.returncode == 0 and bad.returncode != 0
