"""`run` with a git source: which source it follows and the errors of a bad command line, before any work
(no daemon starts in these tests)."""

from __future__ import annotations

import os

from xgen_declare.cli.common import Globals
from xgen_declare.cli.run import open_run_env
from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.gitpoll import spec_json
from xgen_declare.sources.spec import GitSpec


def test_a_git_source_beside_a_dir_is_a_usage_error(cli, tmp_path):
    r = cli("run", "git+file:///srv/git/llm.git", str(tmp_path))
    assert (r.code, r.err) == (2, "error: git+file:///srv/git/llm.git is a git source: give it alone (no DIR beside "
                                  "it, one source per daemon)\n")


def test_a_bad_git_url_names_the_argument(cli):
    r = cli("run", "git+ftp://example.org/llm.git")
    assert (r.code, r.err) == (1, "error: source: 'ftp://example.org/llm.git' is not a git URL of a scheme "
                                  "xgen-declare fetches (https://, http://, ssh://, file://) (e.g. "
                                  "https://git.example.org/ops/llm.git or file:///srv/git/llm.git)\n")


def test_a_config_with_a_source_and_a_dir_is_a_usage_error(cli, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "xgen-declare.yaml").write_text("source: {git: 'file:///srv/git/llm.git'}\n")
    r = cli("run", str(tmp_path / "m"), "--state-dir", str(tmp_path / "s"))
    assert (r.code, r.err) == (2, f"error: {tmp_path / 'm' / 'xgen-declare.yaml'} has a `source:` section and DIR "
                                  "was given: run without DIR to follow the git source, or remove `source:` to "
                                  "serve DIR\n")


def test_the_source_comes_from_the_argument_the_config_or_the_state_dir(tmp_path):
    state = tmp_path / "state"
    env, source = open_run_env(Globals(state_dir=str(state)), ("git+file:///srv/git/llm.git#v2//hosts/a",))
    assert (source.spec.url, source.spec.ref, source.spec.path) == ("file:///srv/git/llm.git", "v2", "hosts/a")
    assert env.paths == [str(state / "source" / "serving" / "hosts" / "a")]
    assert env.config_in_paths is False and env.config.file is None
    cfg = tmp_path / "host.yaml"
    cfg.write_text("source: {git: 'file:///srv/git/other.git', path: m, interval: 5s, "
                   "webhook_secret_file: hook}\n")
    _, source = open_run_env(Globals(config=str(cfg), state_dir=str(state)), ())
    assert (source.spec.url, source.spec.interval, source.spec.webhook_secret_file) == (
        "file:///srv/git/other.git", 5.0, str(tmp_path / "hook"))
    store = StateStore(state)
    recorded = GitSpec(url="file:///srv/git/rec.git", path="m")
    store.write_daemon_info({"source": spec_json(recorded)})
    env, source = open_run_env(Globals(state_dir=str(state)), ())
    assert source.spec == recorded and env.paths == [str(state / "source" / "serving" / "m")]


def test_the_source_files_from_the_command_line_are_checked_and_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("signers", "token", "hook", "key", "hosts"):
        (tmp_path / name).write_text("x\n")
    files = {"allowed_signers": "signers", "token_file": "token", "webhook_secret_file": "hook",
             "ssh_key_file": None, "known_hosts": None}
    _, source = open_run_env(Globals(state_dir=str(tmp_path / "s")), ("git+https://git.example.org/llm.git",), files)
    assert (source.spec.allowed_signers, source.spec.token_file, source.spec.webhook_secret_file) == (
        str(tmp_path / "signers"), str(tmp_path / "token"), str(tmp_path / "hook"))
    files = {"ssh_key_file": "key", "known_hosts": "hosts"}
    _, source = open_run_env(Globals(state_dir=str(tmp_path / "s")), ("git+ssh://git@git.example.org/llm.git",), files)
    assert (source.spec.ssh_key_file, source.spec.known_hosts) == (str(tmp_path / "key"), str(tmp_path / "hosts"))
    assert source.spec.allowed_signers is None  # not given: not verified, as a config without verify


def test_a_bad_source_file_on_the_command_line_names_the_flag(cli, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    state = ["--state-dir", str(tmp_path / "s")]
    r = cli("run", "git+ssh://git@git.example.org/llm.git", "--ssh-key-file", str(tmp_path / "nosuch"), *state)
    assert (r.code, r.out, r.err) == (1, "", f"error: --ssh-key-file: cannot read {tmp_path / 'nosuch'}: No such "
                                             "file or directory (check the path and permissions)\n")
    r = cli("run", "git+https://git.example.org/llm.git", "--verify-allowed-signers", str(fifo), *state)
    assert r.code == 1 and r.err.startswith(f"error: --verify-allowed-signers: {fifo}: ") and \
        r.err.count("\n") == 1
    r = cli("run", "git+ssh://git@git.example.org/llm.git", "--token-file", str(tmp_path / "nosuch"), *state)
    assert (r.code, r.err) == (1, "error: --token-file: is for https:// repositories, not ssh:// (remove "
                                  "--token-file, or use --ssh-key-file for ssh://)\n")
    r = cli("run", "git+https://git.example.org/llm.git", "--known-hosts", str(tmp_path / "nosuch"), *state)
    assert (r.code, r.err) == (1, "error: --known-hosts: is for ssh:// repositories, not https:// (remove "
                                  "--known-hosts, or use an ssh:// URL)\n")
    (tmp_path / "m").mkdir()
    r = cli("run", str(tmp_path / "m"), "--token-file", str(tmp_path / "nosuch"), *state)
    assert (r.code, r.err) == (2, "error: --token-file is for a git+URL argument (`run git+URL[#REF][//PATH] "
                                  "--token-file FILE`); for a DIR it means nothing, and the config's `source:` "
                                  "sets its own files\n")
