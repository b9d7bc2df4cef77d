"""The git source's endpoints (issue #24), when `run` follows one (reconciler/gitpoll.py, through the door):

    GET  /api/management/source            the same JSON as `source status -o json` (sources/report.py)
    POST /api/management/source/webhook    a git host's push webhook: GitHub / Gitea / Forgejo
         /api/management/hooks/git         (X-Hub-Signature-256), older Gitea (X-Gitea-Signature), GitLab
                                           (X-Gitlab-Token), judged by sources/webhook.py's `receive` with
                                           the secret of source.webhook_secret_file (read at each request)

A webhook is authenticated by its signature, not by the API token. An accepted one (202) only wakes the
poller thread: the poll fetches and verifies whatever commit it finds, as a timed poll does; a ping is
200; a missing or wrong signature 401 and nothing is polled; a body over the limit 413 before it is read.
Without a git source both answer 404.
"""

from __future__ import annotations

import logging

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from xgen_declare.api.context import ApiContext
from xgen_declare.errors import SourceError
from xgen_declare.http.security import ApiProblem
from xgen_declare.reconciler.gitpoll import GitPoll
from xgen_declare.sources.webhook import MAX_BODY, read_secret, receive, too_large

router = APIRouter()
P = "/api/management"
log = logging.getLogger("xgen_declare.api")


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def _source(ctx: ApiContext) -> GitPoll:
    source = ctx.daemon.source
    if source is None:
        raise ApiProblem(404, "this daemon follows no git source (it serves a local manifests dir); run it with a "
                         "config that has `source:` or with git+URL to use this endpoint")
    return source


@router.get(P + "/source")
async def source_status(request: Request):
    """The git source: URL, ref, the current and served commits and since when, the pin, the last poll."""
    ctx = _ctx(request)
    return ctx.scrub.json(await to_thread.run_sync(_source(ctx).report))


@router.post(P + "/source/webhook")
@router.post(P + "/hooks/git")
async def webhook(request: Request):
    """Poll the git source now, for a webhook signed with source.webhook_secret_file's secret."""
    ctx = _ctx(request)
    source = _source(ctx)
    limit = min(MAX_BODY, ctx.max_body)
    early = too_large(request.headers.get("content-length"), limit)
    if early is not None:
        raise ApiProblem(early.status, early.reason)
    body = await request.body()
    secret = b""
    if source.spec.webhook_secret_file:
        try:
            secret = await to_thread.run_sync(read_secret, source.spec.webhook_secret_file,
                                              "source.webhook_secret_file")
        except SourceError as exc:
            log.warning("webhook refused: %s", exc)
            raise ApiProblem(503, f"{exc}; the webhook cannot be checked, nothing is polled") from None
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    decision = receive(headers, body, secret, limit)
    if decision.status >= 400:
        log.info("webhook refused (%d): %s", decision.status, decision.reason)
        raise ApiProblem(decision.status, decision.reason)
    if decision.poll:
        source.poll_now()
    return JSONResponse({"status": "accepted" if decision.poll else "ok", "detail": decision.reason},
                        status_code=decision.status)
