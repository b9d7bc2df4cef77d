"""The router's upstream send (router/routes.py `_open`): a pooled connection the backend closed fails
before any answer ("Server disconnected without sending a response", what llama-server's closed
keep-alive connections give): sent once more, on a new connection; streamed requests ask for
`Connection: close`. Other failures are not retried. httpx.MockTransport, no network."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from xgen_declare.router.errors import RouterError
from xgen_declare.router.routes import _open


class Route:
    name, api_key_file = "chat", None


class FakeRouter:
    def __init__(self, handler):
        self._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        self.nudged = 0

    def client(self, name):
        return self._client

    async def api_key(self, route):
        return None

    def nudge(self):
        self.nudged += 1


class FakeRequest:
    method, query_params = "POST", {}
    headers = {"content-type": "application/json"}


def send(handler, stream=True):
    router = FakeRouter(handler)
    return asyncio.run(_open(router, FakeRequest(), Route(), "http://127.0.0.1:9/v1/chat/completions", b"{}",
                             stream)), router


def test_a_stale_connection_is_retried_once_on_a_new_one():
    seen = []

    def handler(request):
        seen.append(request.headers.get("connection"))
        if len(seen) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json={"ok": True})

    answer, router = send(handler, stream=False)
    assert answer.status_code == 200 and router.nudged == 0
    assert seen == ["keep-alive", "close"]


def test_streamed_requests_ask_for_connection_close():
    seen = []

    def handler(request):
        seen.append(request.headers.get("connection"))
        return httpx.Response(200, text="data: [DONE]\n\n")

    send(handler, stream=True)
    assert seen == ["close"]


@pytest.mark.parametrize("error, tries", [
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), 2),  # retried once
    (httpx.ConnectError("connection refused"), 1),                                      # never retried
])
def test_a_second_failure_and_other_errors_are_502(error, tries):
    calls = []

    def failing(request):
        calls.append(1)
        raise error

    with pytest.raises(RouterError) as exc:
        send(failing)
    assert (exc.value.status, len(calls)) == (502, tries)
