"""A git host's webhook, judged: `receive(headers, body, secret)` says "poll now" or why not. Pure: the
API route (later) reads the body (at most MAX_BODY bytes: refuse a larger Content-Length first with
`too_large`), calls this and answers `decision.status`.

    GitHub, Gitea, Gogs, Forgejo   X-Hub-Signature-256: sha256=HEX, HMAC-SHA256 of the body with the secret
    Gitea (older)                  X-Gitea-Signature: HEX, the same HMAC without the prefix
    GitLab                         X-Gitlab-Token: the secret itself

Every comparison is constant-time (hmac.compare_digest). No secret, no signature, a malformed one, a
header sent twice, or one that does not match: 401, nothing polled. A GitHub/Gitea `ping` is answered
200 without a poll; any other authenticated event (push, tag, ...) polls now: a poll of an unchanged
ref costs one fetch, and the poll itself verifies whatever commit it finds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xgen_declare.errors import FileRefused, SourceError
from xgen_declare.readers.bounded import KIB, MIB, read_bytes

__all__ = ["MAX_BODY", "HookDecision", "read_secret", "receive", "too_large"]

MAX_BODY = 5 * MIB  # a push event for a config repo is a few KiB; GitHub caps payloads at 25 MB
_HEADERS = ("x-hub-signature-256", "x-gitea-signature", "x-gitlab-token")


@dataclass(frozen=True)
class HookDecision:
    poll: bool               # fetch now
    status: int              # the HTTP status to answer: 202 poll, 200 ping, 401, 400, 413
    reason: str              # one line, for the answer and the log (never the secret)
    provider: str | None = None  # github | gitea | gitlab, once authenticated
    event: str | None = None


def too_large(content_length: str | None, limit: int = MAX_BODY) -> HookDecision | None:
    """413 when the declared body is over `limit` (check before reading); 400 for a length that is no number."""
    if content_length is None:
        return None
    if not content_length.strip().isdigit():
        return HookDecision(False, 400, f"Content-Length {content_length[:40]!r} is not a number")
    if int(content_length) > limit:
        return HookDecision(False, 413, f"body of {int(content_length)} bytes is over the webhook limit of {limit}")
    return None


def receive(headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes, secret: bytes,
            limit: int = MAX_BODY) -> HookDecision:
    """Poll now, or a refusal; `headers` as a mapping or (name, value) pairs (repeated names are seen)."""
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    seen: dict[str, list[str]] = {}
    for name, value in pairs:
        seen.setdefault(name.lower(), []).append(value)
    if len(body) > limit:
        return HookDecision(False, 413, f"body of {len(body)} bytes is over the webhook limit of {limit}")
    if not secret:
        return HookDecision(False, 401, "no webhook secret is configured: every webhook is refused")
    for name in _HEADERS:
        if len(seen.get(name, [])) > 1:
            return HookDecision(False, 401, f"{name} is sent more than once")
    if "x-hub-signature-256" in seen:
        value = seen["x-hub-signature-256"][0].strip()
        scheme, _, given = value.partition("=")
        if scheme != "sha256" or not given:
            return HookDecision(False, 401, "X-Hub-Signature-256 is not sha256=HEX")
        provider = "gitea" if "x-gitea-event" in seen else "github"
        return _judged(_hmac_ok(body, secret, given), provider, seen)
    if "x-gitea-signature" in seen:
        return _judged(_hmac_ok(body, secret, seen["x-gitea-signature"][0].strip()), "gitea", seen)
    if "x-gitlab-token" in seen:
        given = seen["x-gitlab-token"][0].encode("utf-8", "surrogateescape")
        return _judged(hmac.compare_digest(given, secret), "gitlab", seen)
    return HookDecision(False, 401, "no signature: X-Hub-Signature-256 (GitHub, Gitea), X-Gitea-Signature or "
                        "X-Gitlab-Token is required")


def _hmac_ok(body: bytes, secret: bytes, given: str) -> bool:
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, given.lower().encode("utf-8", "surrogateescape"))


def _judged(ok: bool, provider: str, seen: dict[str, list[str]]) -> HookDecision:
    if not ok:
        what = "token" if provider == "gitlab" else "signature"
        return HookDecision(False, 401, f"the {provider} webhook's {what} does not match the secret")
    event = next((seen[h][0] for h in ("x-github-event", "x-gitea-event", "x-gogs-event", "x-gitlab-event")
                  if h in seen), None)
    if event == "ping":
        return HookDecision(False, 200, "ping: the secret matches; pushes will poll now", provider, event)
    return HookDecision(True, 202, f"{provider} {event or 'event'}: polling now", provider, event)


def read_secret(path: str | os.PathLike, field: str = "webhook.secret_file") -> bytes:
    """The shared secret from a file (bounded read, surrounding whitespace dropped); SourceError naming
    `field` when it is unreadable or empty."""
    try:
        data = read_bytes(path, 4 * KIB, what="a webhook secret file").strip()
    except FileRefused as exc:
        raise SourceError(field, str(exc)) from None
    except OSError as exc:
        raise SourceError(field, f"cannot read {path}: {exc.strerror}", "check the path and permissions") from None
    if not data:
        raise SourceError(field, f"{path} is empty", "put the secret the git host signs webhooks with in it")
    return data
