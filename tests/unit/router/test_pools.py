"""One upstream pool per model, `router.connections_per_model` requests forwarded to a model at once,
the next one answered 429 `model_busy` at once (issue #21 finding 6: one pool of 100 connections for all
models; 100 streams to one model made every other model wait 10 s for a connection, then 504)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest

from tests.unit.api.conftest import make_api, stop
from xgen_declare.router.activity import Tracker
from xgen_declare.router.errors import RouterError
from xgen_declare.router.routes import _open
from xgen_declare.router.service import Router


def new_router(connections: int = 3) -> Router:
    from prometheus_client import CollectorRegistry

    ctx = SimpleNamespace(metrics=SimpleNamespace(registry=CollectorRegistry()), bus=None, daemon=None, token=None)
    return Router(ctx, connections=connections)


def test_try_bind_caps_a_model_across_its_processes():
    t = Tracker()
    assert t.try_bind("a", 8001, 3) and t.try_bind("a", 8001, 3)
    assert t.try_bind("a", 8002, 3)  # a surge's new process counts with the old one
    assert not t.try_bind("a", 8002, 3)
    assert t.try_bind("b", 8003, 3)  # another model: its own count
    assert (t.at("a", 8001), t.at("a", 8002)) == (2, 1)
    t.unbind("a", 8001)
    assert t.try_bind("a", 8001, 3)


def test_each_model_has_its_own_pool_of_the_configured_size():
    router = new_router(5)

    async def clients():
        a, b, again = router.client("a"), router.client("b"), router.client("a")
        pool = a._transport._pool
        out = (a is again, a is not b, pool._max_connections, pool._max_keepalive_connections)
        await a.aclose()
        await b.aclose()
        return out

    assert asyncio.run(asyncio.wait_for(clients(), 5)) == (True, True, 5, 5)


def test_a_full_pool_is_429_model_busy_not_504():
    router = new_router(2)

    def full(request):
        raise httpx.PoolTimeout("no connection available")

    router.client = lambda name: httpx.AsyncClient(transport=httpx.MockTransport(full))
    request = SimpleNamespace(method="POST", query_params={}, headers={"content-type": "application/json"})
    route = SimpleNamespace(name="chat", api_key_file=None)
    with pytest.raises(RouterError) as err:
        asyncio.run(asyncio.wait_for(_open(router, request, route, "http://127.0.0.1:9/v1/x", b"{}", True), 5))
    assert (err.value.status, err.value.code, err.value.headers) == (429, "model_busy", {"Retry-After": "1"})
    assert err.value.message == ("2 requests to chat are being answered already (router.connections_per_model); "
                                 "retry later")


def test_the_limit_comes_from_the_config(tmp_path):
    api, thread = make_api(tmp_path, router={"connections_per_model": 7})
    try:
        assert api.ctx.router.connections == 7
    finally:
        stop(api, thread)
    (tmp_path / "default").mkdir()
    api, thread = make_api(tmp_path / "default")
    try:
        assert api.ctx.router.connections == 64
    finally:
        stop(api, thread)
