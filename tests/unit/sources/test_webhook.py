"""sources/webhook.py: GitHub's X-Hub-Signature-256, Gitea's signatures and GitLab's token judged against
the shared secret, in constant time; a bounded body; ping; the secret file."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest

from xgen_declare.errors import SourceError
from xgen_declare.sources import webhook
from xgen_declare.sources.webhook import HookDecision, read_secret, receive, too_large

SECRET = b"s3cret-shared"
BODY = b'{"ref": "refs/heads/main", "after": "' + b"a" * 40 + b'"}'


def sign(body: bytes = BODY, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_github_push_with_a_good_signature_polls_now():
    d = receive({"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={sign()}"}, BODY, SECRET)
    assert d == HookDecision(True, 202, "github push: polling now", "github", "push")


def test_header_names_are_case_insensitive_and_hex_case_does_not_matter():
    d = receive([("x-hub-signature-256", f"sha256={sign().upper()}"), ("x-github-event", "push")], BODY, SECRET)
    assert (d.poll, d.status) == (True, 202)


@pytest.mark.parametrize("value, reason", [
    (f"sha256={sign(secret=b'other')}", "the github webhook's signature does not match the secret"),
    (f"sha256={sign(BODY + b' ')}", "the github webhook's signature does not match the secret"),
    (f"sha1={sign()}", "X-Hub-Signature-256 is not sha256=HEX"),
    (sign(), "X-Hub-Signature-256 is not sha256=HEX"),
    ("sha256=", "X-Hub-Signature-256 is not sha256=HEX"),
    ("sha256=" + sign()[:-2], "the github webhook's signature does not match the secret"),
    ("sha256=zz\udcff", "the github webhook's signature does not match the secret"),
])
def test_github_signature_that_does_not_match_is_401(value, reason):
    assert receive({"X-Hub-Signature-256": value, "X-GitHub-Event": "push"}, BODY, SECRET) == \
        HookDecision(False, 401, reason)


def test_gitea_with_either_header():
    both = receive({"X-Gitea-Event": "push", "X-Hub-Signature-256": f"sha256={sign()}",
                    "X-Gitea-Signature": sign()}, BODY, SECRET)
    assert both == HookDecision(True, 202, "gitea push: polling now", "gitea", "push")
    old = receive({"X-Gitea-Event": "push", "X-Gitea-Signature": sign()}, BODY, SECRET)
    assert (old.poll, old.provider) == (True, "gitea")
    wrong = receive({"X-Gitea-Event": "push", "X-Gitea-Signature": sign(secret=b"x")}, BODY, SECRET)
    assert wrong == HookDecision(False, 401, "the gitea webhook's signature does not match the secret")


def test_gitlab_token():
    good = receive({"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "s3cret-shared"}, BODY, SECRET)
    assert good == HookDecision(True, 202, "gitlab Push Hook: polling now", "gitlab", "Push Hook")
    for token in ("s3cret-sharee", "s3cret", "", "s3cret-shared "):
        assert receive({"X-Gitlab-Token": token}, BODY, SECRET) == \
            HookDecision(False, 401, "the gitlab webhook's token does not match the secret")


def test_no_signature_no_secret_or_a_repeated_header_is_401():
    assert receive({"X-GitHub-Event": "push"}, BODY, SECRET) == HookDecision(
        False, 401, "no signature: X-Hub-Signature-256 (GitHub, Gitea), X-Gitea-Signature or X-Gitlab-Token is "
                    "required")
    assert receive({"X-Hub-Signature-256": f"sha256={sign(secret=b'')}"}, BODY, b"") == HookDecision(
        False, 401, "no webhook secret is configured: every webhook is refused")
    twice = [("X-Hub-Signature-256", "sha256=00"), ("X-Hub-Signature-256", f"sha256={sign()}")]
    assert receive(twice, BODY, SECRET) == HookDecision(False, 401, "x-hub-signature-256 is sent more than once")


def test_ping_is_answered_without_a_poll():
    d = receive({"X-GitHub-Event": "ping", "X-Hub-Signature-256": f"sha256={sign()}"}, BODY, SECRET)
    assert d == HookDecision(False, 200, "ping: the secret matches; pushes will poll now", "github", "ping")


def test_a_body_over_the_limit_is_413_before_any_signature_check():
    big = b"x" * 101
    assert receive({"X-Hub-Signature-256": f"sha256={sign(big)}"}, big, SECRET, limit=100) == HookDecision(
        False, 413, "body of 101 bytes is over the webhook limit of 100")
    assert too_large(str(webhook.MAX_BODY + 1)) == HookDecision(
        False, 413, f"body of {webhook.MAX_BODY + 1} bytes is over the webhook limit of {webhook.MAX_BODY}")
    assert too_large(str(webhook.MAX_BODY)) is None and too_large(None) is None
    assert too_large("12; rm") == HookDecision(False, 400, "Content-Length '12; rm' is not a number")


def test_every_comparison_is_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(webhook.hmac, "compare_digest", recording)
    receive({"X-Hub-Signature-256": f"sha256={sign()}"}, BODY, SECRET)
    receive({"X-Gitea-Signature": sign()}, BODY, SECRET)
    receive({"X-Gitlab-Token": "nope"}, BODY, SECRET)
    assert calls == [(bytes, bytes)] * 3


def test_the_secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text("s3cret-shared\n")
    assert read_secret(path) == SECRET
    path.write_text(" \n")
    with pytest.raises(SourceError) as exc:
        read_secret(path)
    assert str(exc.value) == f"webhook.secret_file: {path} is empty (put the secret the git host signs webhooks " \
                             "with in it)"
    with pytest.raises(SourceError) as exc:
        read_secret(tmp_path / "nosuch")
    assert str(exc.value) == (f"webhook.secret_file: cannot read {tmp_path / 'nosuch'}: No such file or directory "
                              "(check the path and permissions)")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SourceError) as exc:
        read_secret(fifo)
    assert str(exc.value) == (f"webhook.secret_file: {fifo}: is a FIFO (named pipe), not a regular file (point it "
                              "at a regular file)")
