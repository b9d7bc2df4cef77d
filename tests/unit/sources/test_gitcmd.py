"""How git is run: the token only in the environment and scrubbed from messages, only four transports,
no user config, no prompt, a timeout that kills the whole process group, ssh paths quoted as data."""

from __future__ import annotations

import base64
import os
import shlex
import sys
import time

from xgen_declare.sources.gitcmd import GitRunner
from xgen_declare.testing.deadline import within


def _settings(env: dict[str, str]) -> dict[str, str]:
    return {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}


def test_the_token_travels_in_the_environment_and_never_in_a_message():
    runner = GitRunner(sys.executable, token="s3cret-token", token_user="ci")
    env = runner.env()
    basic = base64.b64encode(b"ci:s3cret-token").decode()
    assert _settings(env)["http.extraHeader"] == f"Authorization: Basic {basic}"
    # a git that prints what it was given (as a verbose curl would print the header)
    code = ("import base64, os, sys; n = int(os.environ['GIT_CONFIG_COUNT']); "
            "vals = [os.environ[f'GIT_CONFIG_VALUE_{i}'] for i in range(n)]; "
            "h = [v for v in vals if 'Basic' in v][0]; "
            "tok = base64.b64decode(h.split()[-1]).decode().split(':')[1]; "
            "sys.stderr.write(f'fatal: sent {h} for {tok}\\n'); sys.exit(128)")
    res = runner.run("-c", code)
    assert "s3cret-token" not in " ".join(res.argv) and basic not in " ".join(res.argv)
    assert res.returncode == 128 and res.text() == "sent Authorization: Basic *** for ***", res.stderr


def test_no_prompt_no_user_config_and_four_transports(monkeypatch):
    monkeypatch.setenv("GIT_SSH_COMMAND", "evil")
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    env = GitRunner().env()
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull and env["GIT_ALLOW_PROTOCOL"] == "https:http:ssh:file"
    assert "GIT_SSH_COMMAND" not in env and "GIT_DIR" not in env  # the caller's git variables stay out


def test_ssh_paths_are_quoted_as_data():
    runner = GitRunner(ssh_key_file="/keys/my key;rm -rf ~", known_hosts="/etc/$(known) hosts")
    argv = shlex.split(runner.env()["GIT_SSH_COMMAND"])
    assert argv == ["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", "/keys/my key;rm -rf ~",
                    "-o", "UserKnownHostsFile=/etc/$(known) hosts", "-o", "StrictHostKeyChecking=yes"]


def test_a_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            f"open({str(pidfile)!r}, 'w').write(str(c.pid)); time.sleep(120)")
    res = within(30, lambda: GitRunner(sys.executable, timeout=1.0).run("-c", code), "a git that hangs")
    assert res.timed_out and not res.ok and res.text() == "git -c did not finish in 1 s"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the grandchild (a remote helper, ssh) outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_missing_git_is_a_result_not_an_exception(tmp_path):
    res = GitRunner(str(tmp_path / "no-git")).run("fetch")
    assert res.returncode == 127 and res.text() == f"cannot run {tmp_path / 'no-git'}: No such file or directory"


def test_max_stdout_stops_a_command_that_prints_without_end():
    """A hostile remote's endless ls-remote: killed once its output passes the bound, nothing held in memory."""
    code = "import sys\nwhile True: sys.stdout.write('x' * 65536); sys.stdout.flush()"
    res = within(30, lambda: GitRunner(sys.executable, timeout=20).run("-c", code, max_stdout=100_000),
                 "a command that prints for ever")
    assert (res.over_limit, res.ok, res.stdout) == (True, False, "")
    assert res.text() == "git -c printed over 100000 bytes and was stopped"


def test_max_stdout_also_catches_a_command_that_ends_before_a_look():
    res = GitRunner(sys.executable, timeout=20).run("-c", "print('y' * 5000)", max_stdout=1000)
    assert (res.over_limit, res.stdout) == (True, "")
    ok = GitRunner(sys.executable, timeout=20).run("-c", "print('y' * 500)", max_stdout=1000)
    assert (ok.ok, ok.over_limit, ok.stdout) == (True, False, "y" * 500 + "\n")
