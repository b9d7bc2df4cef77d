"""The API's request guard (Host allow-list, cross-origin writes, body limit) for both halves of the
app: `/v1/*` gets a larger body limit (prompts, embeddings input) and OpenAI-shaped error bodies; every
other path goes through `GuardMiddleware` unchanged."""

from __future__ import annotations

import json

from xgen_declare.http.security import GuardMiddleware
from xgen_declare.router.errors import error_body

__all__ = ["PathGuard", "ROUTER_MAX_BODY"]

ROUTER_MAX_BODY = 32 * 1024 * 1024
PREFIX = "/v1/"
_PASSED = "xgen.guard_passed"


class PathGuard:
    def __init__(self, app, hosts: frozenset[str], max_body: int, router_max_body: int = ROUTER_MAX_BODY):
        self.app = app
        self.management = GuardMiddleware(app, hosts, max_body)
        # reads too: a GET on /v1 may start an on-demand model (Origin / Sec-Fetch-Site of another site: 403)
        self.router = GuardMiddleware(self._passed, hosts, router_max_body, guard_reads=True)

    async def _passed(self, scope, receive, send):
        scope[_PASSED] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not (scope.get("path", "") + "/").startswith(PREFIX):
            return await self.management(scope, receive, send)
        start: dict | None = None

        async def openai_errors(message):
            """Errors of the guard itself (the app was never reached) in the OpenAI shape."""
            nonlocal start
            if scope.get(_PASSED):
                return await send(message)
            if message["type"] == "http.response.start":
                start = message
                return None
            status = start["status"] if start else 400
            try:
                answer = json.loads(message.get("body") or b"{}")
                detail = answer.get("detail", "refused") + (f" ({answer['reason']})" if answer.get("reason") else "")
            except (ValueError, AttributeError, TypeError):
                detail = "refused"
            code = {413: "body_too_large", 403: "cross_origin", 400: "bad_request"}.get(status)
            data = json.dumps(error_body(status, detail, code)).encode()
            headers = [(k, v) for k, v in (start or {}).get("headers", []) if k.lower() != b"content-length"]
            await send({"type": "http.response.start", "status": status,
                        "headers": headers + [(b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})

        await self.router(scope, receive, openai_errors)
