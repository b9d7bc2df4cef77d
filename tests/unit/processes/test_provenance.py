"""Provenance of a manifest (file, sha256, git commit, dirty) with a fake git runner."""

import hashlib

from xgen_declare.processes.provenance import Provenance, of_file


class FakeGit:
    def __init__(self, head: str | None, status: str | None = ""):
        self.head, self.status, self.calls = head, status, []

    def __call__(self, args, cwd):
        self.calls.append((args, cwd))
        if args[0] == "rev-parse":
            return None if self.head is None else self.head + "\n"
        return self.status


def test_a_clean_file_in_git(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_bytes(b"kind: Model\n")
    git = FakeGit("a" * 40, "")
    prov = of_file(str(f), git)
    assert prov == Provenance(str(f), hashlib.sha256(b"kind: Model\n").hexdigest(), "a" * 40, False)
    assert git.calls[0] == (["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], str(tmp_path))
    assert git.calls[1][0][-2:] == ["--", "m.yaml"]


def test_a_modified_file_is_dirty(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("x: 1\n")
    assert of_file(str(f), FakeGit("b" * 40, " M m.yaml\x00")).dirty is True


def test_outside_git_only_file_and_hash(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("x: 1\n")
    git = FakeGit(None)
    prov = of_file(str(f), git)
    assert (prov.commit, prov.dirty) == (None, None)
    assert prov.sha256 == hashlib.sha256(b"x: 1\n").hexdigest()
    assert len(git.calls) == 1  # no status without a commit


def test_git_status_failing_leaves_dirty_unknown(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("x: 1\n")
    prov = of_file(str(f), FakeGit("c" * 40, None))
    assert (prov.commit, prov.dirty) == ("c" * 40, None)


def test_no_file_no_git_call():
    git = FakeGit("a" * 40)
    assert of_file(None, git) == Provenance()
    assert git.calls == []


def test_an_unreadable_file_has_no_hash(tmp_path):
    prov = of_file(str(tmp_path / "gone.yaml"), FakeGit(None))
    assert prov.sha256 is None and prov.file == str(tmp_path / "gone.yaml")


def test_a_fifo_named_as_the_manifest_is_refused_at_once(tmp_path):
    """#21: provenance is taken at spawn, on the control loop; a FIFO must not block it (nor a device be
    hashed forever). Bounded in time: the call runs in a thread that must finish within 5 s."""
    import os
    import threading

    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    got = []
    t = threading.Thread(target=lambda: got.append(of_file(str(fifo), FakeGit(None))), daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():  # old code: blocked in open(); release it before failing
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(5)
    assert got and got[0].sha256 is None
    assert not t.is_alive()


def test_a_manifest_served_from_the_git_source_has_that_commit_and_git_is_not_asked(tmp_path):
    """A state dir inside someone's git repository (a dotfiles home): the served manifest's commit is the
    source's, never that repository's HEAD (git was run in the served directory and walked up to it)."""
    commit = "c" * 40
    root = tmp_path / "state" / "source"
    (root / "repo.git").mkdir(parents=True)
    tree = root / "trees" / commit / "manifests"
    tree.mkdir(parents=True)
    (tree / "a.yaml").write_text("kind: Model\n")
    (root / "serving").symlink_to(root / "trees" / commit)
    git = FakeGit("d" * 40, "")  # the repository around the state dir
    path = str(root / "serving" / "manifests" / "a.yaml")
    prov = of_file(path, git)
    assert (prov.file, prov.commit, prov.dirty) == (path, commit, False) and git.calls == []
    plain = tmp_path / "trees" / commit / "b.yaml"  # a trees/<hex> dir that is no source's: git decides
    plain.parent.mkdir(parents=True)
    plain.write_text("x: 1\n")
    assert of_file(str(plain), git).commit == "d" * 40


def test_provenance_reads_back_what_a_record_holds_tolerantly():
    p = Provenance("/m/a.yaml", "0" * 64, "c" * 40, False)
    assert Provenance.from_json(p.to_json()) == p
    assert Provenance.from_json({"file": "/m/a.yaml", "sha256": 1, "commit": None, "dirty": "no"}) == Provenance("/m/a.yaml")
    assert Provenance.from_json(None) is None and Provenance.from_json({}) is None and Provenance.from_json([]) is None
