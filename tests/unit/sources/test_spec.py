"""A git source as written: the command line's git+URL[#REF][//PATH] and the config's `source:` section,
with the exact errors a user sees (field, what is wrong, an example)."""

from __future__ import annotations

import pytest

from xgen_declare.config import load_config
from xgen_declare.errors import ConfigError, ExitCode, SourceError
from xgen_declare.sources.spec import GitSpec, check_path, check_ref, parse_git_argument, parse_interval


@pytest.mark.parametrize("text, url, ref, path", [
    ("git+https://git.example.org/ops/llm.git", "https://git.example.org/ops/llm.git", "HEAD", ""),
    ("git+https://git.example.org/ops/llm.git#main", "https://git.example.org/ops/llm.git", "main", ""),
    ("git+https://git.example.org/ops/llm.git#v1.2//manifests", "https://git.example.org/ops/llm.git", "v1.2",
     "manifests"),
    ("git+https://git.example.org/ops/llm.git//hosts/gpu-a/#main", "https://git.example.org/ops/llm.git", "main",
     "hosts/gpu-a"),
    ("git+ssh://git@git.example.org:2222/ops/llm.git#refs/heads/prod", "ssh://git@git.example.org:2222/ops/llm.git",
     "refs/heads/prod", ""),
    ("git+file:///srv/git/llm.git//manifests", "file:///srv/git/llm.git", "HEAD", "manifests"),
    ("git+file:///srv/git/llm.git#" + "a" * 40, "file:///srv/git/llm.git", "a" * 40, ""),
])
def test_the_command_line_form(text, url, ref, path):
    assert parse_git_argument(text) == GitSpec(url=url, ref=ref, path=path)


def test_a_commit_id_pins():
    assert parse_git_argument("git+file:///r.git#" + "0123456789" * 4).pinned
    assert not parse_git_argument("git+file:///r.git#main").pinned


@pytest.mark.parametrize("text, message", [
    ("https://git.example.org/llm.git",
     "source: 'https://git.example.org/llm.git' does not start with git+ "
     "(e.g. git+https://git.example.org/ops/llm.git#main//manifests)"),
    ("git+/srv/git/llm.git", "source: 'git+/srv/git/llm.git' has no scheme (https://, ssh://, file://) "
     "(e.g. git+https://git.example.org/ops/llm.git#main//manifests)"),
    ("git+ext::sh -c evil", "source: 'git+ext::sh -c evil' has no scheme (https://, ssh://, file://) "
     "(e.g. git+https://git.example.org/ops/llm.git#main//manifests)"),
    ("git+ftp://host/llm.git", "source: 'ftp://host/llm.git' is not a git URL of a scheme xgen-declare fetches "
     "(https://, http://, ssh://, file://) (e.g. https://git.example.org/ops/llm.git or file:///srv/git/llm.git)"),
    ("git+https://user:pw@host/llm.git", "source: the URL holds credentials, which would reach git's command "
     "line and the logs (remove them from the URL and put the token in a file named by source.token_file)"),
    ("git+https://host/llm.git#main//../etc", "source (//PATH): '../etc' points outside the repository "
     "(remove `..`, e.g. manifests)"),
    ("git+https://host/llm.git#--upload-pack=x", "source (#REF): '--upload-pack=x' is not a git ref name (use a "
     "branch (main), a tag (v1.2), refs/heads/NAME or a full 40-character commit id)"),
    ("git+file://otherhost/srv/llm.git", "source: 'file://otherhost/srv/llm.git': a file:// URL names an "
     "absolute path on this host (e.g. file:///srv/git/llm.git)"),
])
def test_what_is_not_a_git_source_is_said_plainly(text, message):
    with pytest.raises(SourceError) as err:
        parse_git_argument(text)
    assert str(err.value) == message
    assert err.value.exit_code == ExitCode.INVALID_INPUT


@pytest.mark.parametrize("ref", ["main~1", "a..b", "-x", "x.lock", "a b", "HEAD@{1}", "a:b", "", "/x", "x/"])
def test_refs_outside_git_rules(ref):
    with pytest.raises(SourceError):
        check_ref(ref)


@pytest.mark.parametrize("path, normal", [("", ""), (".", ""), ("./a//b/", "a/b"), ("manifests", "manifests")])
def test_paths_are_normalised(path, normal):
    assert check_path(path) == normal


@pytest.mark.parametrize("value, seconds", [(30, 30.0), ("30", 30.0), ("30s", 30.0), ("5m", 300.0),
                                            ("1h30m", 5400.0), ("1.5s", 1.5)])
def test_intervals(value, seconds):
    assert parse_interval(value) == seconds


@pytest.mark.parametrize("value", ["soon", "0s", "", "5ms", True, 0.5])
def test_bad_intervals(value):
    with pytest.raises(SourceError):
        parse_interval(value)


def _config(tmp_path, text: str):
    path = tmp_path / "xgen-declare.yaml"
    path.write_text(text)
    return load_config(str(path))


def test_the_config_section_becomes_a_spec_with_absolute_paths(tmp_path):
    cfg = _config(tmp_path, "source:\n  git: git+https://git.example.org/ops/llm.git\n  ref: prod\n"
                  "  path: ./manifests/\n  interval: 5m\n  token_file: secrets/token\n"
                  "  verify: {allowed_signers: keys/allowed_signers}\n")
    assert cfg.git_spec() == GitSpec(url="https://git.example.org/ops/llm.git", ref="prod", path="manifests",
                                     interval=300.0, token_file=str(tmp_path / "secrets" / "token"),
                                     allowed_signers=str(tmp_path / "keys" / "allowed_signers"))
    assert cfg.file == str(tmp_path / "xgen-declare.yaml")
    assert _config(tmp_path, "ports: {start: 9000, end: 9010}\n").git_spec() is None
    assert cfg.git_spec().allow_force_push is True  # issue #24: a force-pushed branch is followed
    refuse = _config(tmp_path, "source: {git: https://h/x.git, allow_force_push: false}\n").git_spec()
    assert refuse is not None and refuse.allow_force_push is False


@pytest.mark.parametrize("body, line", [
    ("  git: ftp://host/x.git\n", "source.git: 'ftp://host/x.git' is not a git URL of a scheme "
     "xgen-declare fetches (https://, http://, ssh://, file://) (e.g. https://git.example.org/ops/llm.git or "
     "file:///srv/git/llm.git)"),
    ("  git: https://h/x.git\n  path: ../up\n", "source.path: '../up' points outside the repository "
     "(remove `..`, e.g. manifests)"),
    ("  git: https://h/x.git\n  interval: soon\n", "source.interval: 'soon' is not a duration "
     "(e.g. 30s, 5m or 1h)"),
    ("  git: file:///srv/x.git\n  token_file: t\n", "source: token_file is for https:// "
     "repositories, not file:// (remove token_file, or use ssh_key_file for ssh://)"),
    ("  git: https://h/x.git\n  known_hosts: k\n", "source: known_hosts is for ssh:// repositories, not https:// "
     "(remove known_hosts, or use an ssh:// URL)"),
    ("  git: https://h/x.git\n  verify: {allowed_signer: f}\n", "source.verify.allowed_signer: unknown field "
     "`allowed_signer` (did you mean `allowed_signers`?)"),
])
def test_config_errors_name_the_field(tmp_path, body, line):
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, "source:\n" + body)
    text = str(err.value)
    assert line in text, text
    assert text.startswith(str(tmp_path / "xgen-declare.yaml") + ":")
