"""http/security.py: the same-origin rule (scheme, host and port), Sec-Fetch-Site, the router's guard of
reads, and the token file read through the bounded reader (issue #21, findings 9 and 21)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from xgen_declare.config import Api, load_config
from xgen_declare.http import security
from xgen_declare.http.security import ApiSetupError, GuardMiddleware, load_token

from xgen_declare.testing.deadline import within

HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@pytest.mark.parametrize("header, port", [("localhost:8000", 8000), ("[::1]:8000", 8000), ("localhost", None),
                                          ("[::1]", None), ("::1", None), ("x:notaport", None)])
def test_host_port(header, port):
    assert security.host_port(header) == port


@pytest.mark.parametrize("origin, host, scheme, ok", [
    ("http://localhost:8000", "localhost:8000", "http", True),
    ("http://LOCALHOST:8000", "localhost:8000", "http", True),
    ("http://127.0.0.1", "127.0.0.1", "http", True),
    ("http://127.0.0.1:80", "127.0.0.1", "http", True),
    ("http://[::1]:8000", "[::1]:8000", "http", True),
    ("http://localhost:9999", "localhost:8000", "http", False),   # another local port: another site
    ("http://localhost:3000", "127.0.0.1", "http", False),
    ("http://127.0.0.1:8000", "localhost:8000", "http", False),   # another host name
    ("https://localhost:8000", "localhost:8000", "http", False),  # another scheme
    ("http://localhost", "localhost", "https", False),
    ("null", "localhost:8000", "http", False),
    ("http://localhost:99999", "localhost:8000", "http", False),  # no valid port
    ("file://", "localhost", "http", False),
])
def test_same_origin_compares_scheme_host_and_port(origin, host, scheme, ok):
    assert security.same_origin(origin, scheme, host) is ok


def test_cross_site_reads_origin_then_sec_fetch_site():
    assert security.cross_site({"host": "localhost:8000"}, "http") is None  # curl: neither header
    assert security.cross_site({"host": "localhost:8000", "sec-fetch-site": "same-origin"}, "http") is None
    assert security.cross_site({"host": "localhost:8000", "sec-fetch-site": "none"}, "http") is None
    assert security.cross_site({"host": "localhost:8000", "sec-fetch-site": "cross-site"}, "http") == \
        "Sec-Fetch-Site is 'cross-site'"
    assert security.cross_site({"host": "localhost:8000", "sec-fetch-site": "same-site"}, "http") == \
        "Sec-Fetch-Site is 'same-site'"
    assert security.cross_site({"host": "localhost:8000", "origin": "http://localhost:9999"}, "http") == \
        "Origin 'http://localhost:9999' is not this server's origin"


def call(guard, method: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict | None, bool]:
    """Drive the ASGI guard once: (status, JSON body, whether the app behind it was reached)."""
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "scheme": "http", "path": "/x",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(asyncio.wait_for(guard(app)(scope, receive, send), 5))
    return sent[0]["status"], json.loads(sent[1]["body"]), bool(reached)


def management(app):
    return GuardMiddleware(app, HOSTS)


def router_half(app):
    return GuardMiddleware(app, HOSTS, guard_reads=True)


def test_writes_from_another_local_port_are_refused():
    status, body, reached = call(management, "POST", {"host": "localhost:8000", "origin": "http://localhost:9999"})
    assert (status, reached) == (403, False)
    assert body == {"status": "error", "detail": "cross-origin write refused",
                    "reason": "Origin 'http://localhost:9999' is not this server's origin"}
    assert call(management, "POST", {"host": "localhost:8000", "origin": "http://localhost:8000"})[2]
    assert call(management, "POST", {"host": "localhost:8000"})[2]  # no Origin: no browser


def test_the_management_half_leaves_reads_alone_the_router_half_guards_them():
    img = {"host": "127.0.0.1:8000", "sec-fetch-site": "cross-site", "sec-fetch-dest": "image"}
    assert call(management, "GET", img)[2]  # a link to the dashboard from elsewhere still opens it
    status, body, reached = call(router_half, "GET", img)  # an <img> on any page: no Origin, Sec-Fetch-Site
    assert (status, reached) == (403, False)
    assert body == {"status": "error", "detail": "cross-origin request refused", "reason": "Sec-Fetch-Site is "
                    "'cross-site'"}
    assert call(router_half, "GET", {"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:9999"})[0] == 403
    assert call(router_half, "GET", {"host": "127.0.0.1:8000", "sec-fetch-site": "same-origin"})[2]
    assert call(router_half, "GET", {"host": "127.0.0.1:8000"})[2]


def test_a_token_file_that_is_a_fifo_is_refused_at_once(tmp_path):
    (tmp_path / "xgen-declare.yaml").write_text("{}")
    config = load_config(None, [str(tmp_path)])
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    with pytest.raises(ApiSetupError) as err:  # used to block in open() until a writer came
        within(5, lambda: load_token(Api(token_file=str(fifo)), config, environ={}), release=fifo)
    assert str(err.value) == f"api.token_file: {fifo}: is a FIFO (named pipe), not a regular file (point it at a " \
        "regular file)"
    big = tmp_path / "big"
    big.write_bytes(b"x" * (65 * 1024))
    with pytest.raises(ApiSetupError, match=r"api.token_file: .*big: is 65 KiB; the limit for a token file is 64 KiB"):
        load_token(Api(token_file=str(big)), config, environ={})
    ok = tmp_path / "ok"
    ok.write_text("s3cret\n")
    assert load_token(Api(token_file=str(ok)), config, environ={}) == "s3cret"
