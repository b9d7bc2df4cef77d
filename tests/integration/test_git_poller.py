"""Poller (xgen_declare/sources/poller.py) against the real `git http-backend` test server: a new signed
commit switches; unsigned and stranger-signed commits are refused while the old tree stays current; a
server that drops the connection mid-fetch, one too slow for the timeout, a force push back to an older
commit, manifests that fail validation (the real loader, as `sync` wires it); back-off on an injected
clock; the pin. Every poll is bounded by `within`."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from xgen_declare.cli.sourceview import manifest_check
from xgen_declare.sources.git import GitSource
from xgen_declare.sources.poller import Outcome, Poller, PollResult, last_recorded
from xgen_declare.sources.results import Refusal
from xgen_declare.sources.spec import GitSpec
from xgen_declare.testing.deadline import within
from xgen_declare.testing.gitrepos import SshSigner, WorkRepo, write_allowed_signers
from xgen_declare.testing.gitserver import GitHttpServer

T = 60


def manifest(name: str, ctx: int = 2048) -> str:
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata: {{name: {name}}}\nspec:\n  model_path: ./m/{name}.gguf\n" \
           f"  ctx_size: {ctx}\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(tmp_path):
    alice = SshSigner.generate(tmp_path / "keys", "alice@example.org")
    mallory = SshSigner.generate(tmp_path / "keys", "mallory@example.org")
    return alice, mallory, write_allowed_signers(tmp_path / "allowed_signers", [alice])


@pytest.fixture
def origin(tmp_path, keys):
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    repo.commit({"manifests/a.yaml": manifest("a"), "manifests/b.yaml": manifest("b")}, "first", signer=keys[0])
    repo.push()
    return repo


@pytest.fixture
def server(tmp_path, origin):
    with GitHttpServer(tmp_path / "srv") as srv:
        yield srv


def poller(server, tmp_path, clock=None, **spec) -> Poller:
    fields = {"url": server.url("config.git"), "ref": "main", "path": "manifests", "interval": 10.0, **spec}
    source = GitSource(GitSpec(**fields), tmp_path / "state", check=manifest_check)
    return Poller(source, clock=clock or Clock(), wall=lambda: 1_800_000_000.0)


def poll(p: Poller) -> PollResult:
    return within(T, p.poll_once, "Poller.poll_once")


def current_files(p: Poller) -> dict[str, str]:
    tree = p.source.current().manifests
    assert tree is not None
    return {f.name: f.read_text() for f in sorted(tree.iterdir())}


def test_a_new_signed_commit_switches_and_a_repeat_is_unchanged(server, origin, keys, tmp_path):
    alice, _, allowed = keys
    p = poller(server, tmp_path, allowed_signers=str(allowed))
    first = poll(p)
    assert (first.outcome, first.old, first.new, first.reason) == (Outcome.SWITCHED, None, origin.head(), None)
    assert first.signature.startswith("alice@example.org (SHA256:")
    old = origin.head()
    new = origin.commit({"manifests/a.yaml": manifest("a", 4096)}, "a: bigger context", signer=alice)
    origin.push()
    res = poll(p)
    assert (res.outcome, res.old, res.new, res.fetched, res.error) == (Outcome.SWITCHED, old, new, new, None)
    assert current_files(p)["a.yaml"] == manifest("a", 4096)
    again = poll(p)
    assert (again.outcome, again.old, again.new) == (Outcome.UNCHANGED, new, new)
    assert last_recorded(p.source) == again.to_json() | {"outcome": "unchanged"}
    assert last_recorded(p.source)["at"] == 1_800_000_000.0


def test_unsigned_and_wrongly_signed_commits_are_refused_and_the_old_tree_stays(server, origin, keys, tmp_path):
    alice, mallory, allowed = keys
    p = poller(server, tmp_path, allowed_signers=str(allowed))
    good = poll(p).new
    unsigned = origin.commit({"manifests/a.yaml": manifest("a", 1)}, "unsigned")
    origin.push()
    res = poll(p)
    assert (res.outcome, res.reason, res.old, res.new, res.fetched) == (
        Outcome.REFUSED, Refusal.UNSIGNED, good, good, unsigned)
    assert res.error == (f"commit {unsigned[:12]} is not signed; it is not applied (sign it with a key listed in "
                         "allowed_signers)")
    assert current_files(p)["a.yaml"] == manifest("a")
    assert (res.failures, res.next_in) == (0, 10.0)  # the commit, not the remote: no back-off

    stranger = origin.commit({"manifests/a.yaml": manifest("a", 2)}, "mallory's", signer=mallory)
    origin.push()
    res = poll(p)
    assert (res.outcome, res.reason, res.new, res.fetched) == (Outcome.REFUSED, Refusal.BAD_SIGNATURE, good, stranger)
    assert res.error.startswith(f"commit {stranger[:12]} is signed by a key that is not in allowed_signers (SHA256:")
    assert current_files(p)["a.yaml"] == manifest("a")
    record = last_recorded(p.source)
    assert (record["outcome"], record["reason"], record["new"], record["fetched"]) == (
        "refused", "bad_signature", good, stranger)


def test_a_server_that_drops_mid_fetch_then_recovers_backs_off(server, origin, tmp_path):
    clock = Clock()
    p = poller(server, tmp_path, clock=clock)
    good = poll(p).new
    assert not p.due() and p.seconds_until_due() == 10.0
    noise = random.Random(7).randbytes(60_000).hex()  # incompressible: the pack is far over the cut
    new = origin.commit({"manifests/a.yaml": manifest("a", 4096), "blob.txt": noise}, "big")
    origin.push()
    server.cut(2000)
    delays = []
    for _ in range(5):
        res = poll(p)
        assert (res.outcome, res.reason, res.new, res.fetched) == (Outcome.REFUSED, Refusal.FETCH_FAILED, good, None)
        assert res.error.startswith(f"cannot fetch {server.url('config.git')}: ")
        assert res.error.endswith("; the last good commit stays current")
        delays.append(res.next_in)
        assert not p.due()
        clock.now += res.next_in - 0.5
        assert not p.due()
        clock.now += 0.5
        assert p.due()
    assert delays == [20.0, 40.0, 80.0, 160.0, 300.0]  # doubling per failure, capped at max_backoff
    assert current_files(p)["a.yaml"] == manifest("a")
    server.cut(None)
    res = poll(p)
    assert (res.outcome, res.old, res.new, res.failures, res.next_in) == (Outcome.SWITCHED, good, new, 0, 10.0)


def test_a_slow_server_beyond_the_timeout_is_cut_off(server, origin, tmp_path):
    p = poller(server, tmp_path, timeout=2)
    good = poll(p).new
    origin.commit({"manifests/a.yaml": manifest("a", 4096)}, "second")
    origin.push()
    server.drip(0.5)  # never idle, each answer takes far longer than 2 s
    res = poll(p)
    server.drip(None)
    assert (res.outcome, res.reason, res.new, res.failures, res.next_in) == (
        Outcome.REFUSED, Refusal.TIMEOUT, good, 1, 20.0)
    assert res.error == (f"cannot fetch {server.url('config.git')}: git ls-remote did not finish in 2 s (is the remote "
                         "slow or huge? source.timeout)")


def test_a_force_push_to_an_older_commit_is_followed_and_refused_only_when_not_allowed(server, origin, tmp_path):
    p = poller(server, tmp_path, allow_force_push=False)
    first = poll(p).new
    second = origin.commit({"manifests/a.yaml": manifest("a", 4096)}, "second")
    origin.push()
    assert poll(p).new == second
    origin.reset_hard(first)
    origin.push(force=True)
    res = poll(p)
    assert (res.outcome, res.reason, res.new, res.fetched) == (Outcome.REFUSED, Refusal.NOT_FAST_FORWARD, second, first)
    assert current_files(p)["a.yaml"] == manifest("a", 4096)
    follow = Poller(GitSource(replace(p.source.spec, allow_force_push=True), tmp_path / "state", check=manifest_check))
    res = poll(follow)
    assert (res.outcome, res.old, res.new) == (Outcome.SWITCHED, second, first)


def test_a_changed_source_ref_is_followed_not_taken_for_a_force_push(server, origin, tmp_path):
    p = poller(server, tmp_path)
    main = poll(p).new
    origin.reset_hard(main)
    origin.branch = "prod"
    prod = origin.commit({"manifests/a.yaml": manifest("a", 1024)}, "prod only")
    origin.push()
    origin.branch = "main"
    origin.reset_hard(main)
    unrelated = origin.commit({"manifests/a.yaml": manifest("a", 4096)}, "main moves on")
    origin.push()
    prod_poller = Poller(GitSource(replace(p.source.spec, ref="prod"), tmp_path / "state", check=manifest_check))
    res = poll(prod_poller)
    assert (res.outcome, res.old, res.new) == (Outcome.SWITCHED, main, prod)  # the config changed: no rewind
    res = poll(p)  # back to main: main's commit does not descend from prod's, and main was followed before
    assert (res.outcome, res.old, res.new) == (Outcome.SWITCHED, prod, unrelated)
    assert unrelated != prod


def test_a_commit_with_invalid_manifests_is_refused_with_file_line_field(server, origin, tmp_path):
    p = poller(server, tmp_path)
    good = poll(p).new
    broken = origin.commit({"manifests/a.yaml": manifest("a") + "  bogus: 1\n",
                            "manifests/c.yaml": manifest("c").replace("ctx_size: 2048", "ctx_size: lots")}, "typos")
    origin.push()
    res = poll(p)
    assert (res.outcome, res.reason, res.new, res.fetched) == (Outcome.REFUSED, Refusal.MANIFESTS_INVALID, good, broken)
    assert [p_.format() for p_ in res.problems] == [
        "manifests/a.yaml:7: spec.bogus: unknown field `bogus` (did you mean `gpus`?)",
        "manifests/c.yaml:6: spec.ctx_size: Input should be a valid integer, unable to parse string as an integer "
        "(write a whole number)"]
    assert res.error.startswith(f"commit {broken[:12]}: 2 manifest problem(s), it is not applied: manifests/a.yaml:7:")
    assert sorted(current_files(p)) == ["a.yaml", "b.yaml"]
    assert not (tmp_path / "state" / "source" / "trees" / broken).exists()
    fixed = origin.commit({"manifests/a.yaml": manifest("a"), "manifests/c.yaml": None}, "fixed")
    origin.push()
    res = poll(p)
    assert (res.outcome, res.new) == (Outcome.SWITCHED, fixed)
    removed_all = origin.commit({"manifests/a.yaml": None, "manifests/b.yaml": None, "manifests/.keep": ""}, "none")
    origin.push()
    res = poll(p)  # a commit that deletes every manifest is an empty directory, not an error
    assert (res.outcome, res.new, current_files(p)) == (Outcome.SWITCHED, removed_all, {".keep": ""})


def test_a_pin_holds_the_tree_and_polls_report_pinned(server, origin, tmp_path):
    p = poller(server, tmp_path)
    first = poll(p).new
    second = origin.commit({"manifests/a.yaml": manifest("a", 4096)}, "second")
    origin.push()
    assert poll(p).new == second
    pinned = within(T, lambda: p.source.pin(first), "GitSource.pin")
    assert (pinned.commit, pinned.before, pinned.pinned, pinned.error) == (first, second, first, None)
    third = origin.commit({"manifests/a.yaml": manifest("a", 8192)}, "third")
    origin.push()
    res = poll(p)
    assert (res.outcome, res.old, res.new, res.fetched, res.pinned) == (Outcome.PINNED, first, first, third, first)
    assert current_files(p)["a.yaml"] == manifest("a")
    assert p.source.pinned()["commit"] == first
    assert p.source.unpin() is True and p.source.unpin() is False
    res = poll(p)
    assert (res.outcome, res.old, res.new, res.pinned) == (Outcome.SWITCHED, first, third, None)
