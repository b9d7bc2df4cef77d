"""Provenance with a real git work tree: `status -o json` carries file, sha256, commit and dirty;
`history NAME` lists the rollouts (one-shot `apply`, fake backends)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(cwd, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_status_and_history_show_the_commit_and_dirty_file(host):
    path = host.write("a", ctx_size=4096)
    git(host.manifests, "init", "-q")
    git(host.manifests, "add", "-A")
    git(host.manifests, "commit", "-q", "-m", "first")
    head = git(host.manifests, "rev-parse", "HEAD").strip()
    assert host.cli("apply", str(host.manifests)).returncode == 0
    [row] = json.loads(host.cli("status", "-o", "json").stdout)
    first_hash = row["spec_hash"]
    assert row["provenance"] == {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                 "commit": head, "dirty": False}
    host.write("a", ctx_size=8192)  # edited, not committed
    assert host.cli("apply", str(host.manifests)).returncode == 0
    [row] = json.loads(host.cli("status", "-o", "json").stdout)
    assert (row["provenance"]["commit"], row["provenance"]["dirty"]) == (head, True)
    assert row["spec_hash"] != first_hash
    entries = json.loads(host.cli("history", "a", "-o", "json").stdout)
    assert [(e["from"], e["to"], e["result"], e["commit"], e["dirty"]) for e in entries] == [
        (None, first_hash, "succeeded", head, False), (first_hash, row["spec_hash"], "succeeded", head, True)]
    table = host.cli("history", "a").stdout.splitlines()
    assert table[0].split() == ["TIME", "FROM", "TO", "COMMIT", "RESULT", "DETAIL"]
    assert table[1].split()[2:6] == [first_hash, row["spec_hash"], head[:12], "(dirty)"]
    host.cli("down")


def test_outside_git_and_unknown_model(host):
    host.write("a")
    assert host.cli("apply", str(host.manifests)).returncode == 0
    [row] = json.loads(host.cli("status", "-o", "json").stdout)
    assert (row["provenance"]["commit"], row["provenance"]["dirty"]) == (None, None)
    r = host.cli("history", "nope")
    assert r.returncode == 5
    assert r.stderr == f"error: no model 'nope' in the state dir {host.state} (known: a)\n"
    host.cli("down")
