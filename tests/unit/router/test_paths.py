"""The forwarded path stays under /v1/ (issue #21 finding 10) and a client's long `model` is not echoed
whole (finding 18)."""

from __future__ import annotations

import pytest

from tests.unit.api.conftest import make_api, stop
from xgen_declare.router.errors import RouterError, clip


@pytest.fixture
def api(tmp_path):
    a, t = make_api(tmp_path)
    a.hand("a.yaml", "a", backend="llama-server-cpu")
    a.daemon.file_changed()
    yield a
    stop(a, t)


@pytest.mark.parametrize("path, sent", [
    ("chat/completions", "/v1/chat/completions"),
    ("models/org/m", "/v1/models/org/m"),
    ("", "/v1/"),
    ("a?b#c d", "/v1/a%3Fb%23c%20d"),      # decoded '?', '#' stay in the path, encoded again
    ("x%2e%2ey", "/v1/x%252e%252ey"),        # not a segment of its own: allowed, encoded again
    ("..a/b..", "/v1/..a/b.."),
])
def test_paths_under_v1_are_forwarded_encoded_again(path, sent):
    from xgen_declare.router.paths import upstream_path

    assert upstream_path(path) == sent


@pytest.mark.parametrize("path", ["../../props", "../props", "chat/../../props", ".", "./x", "x/..",
                                  "%2e%2e/%2e%2e/props", "%2E%2E/props", "..%2fprops", "%252e%252e/props",
                                  "..\\props", "%2525252e%2525252e/x"])
def test_dot_segments_are_refused_plain_or_encoded(path):
    from xgen_declare.router.paths import upstream_path

    with pytest.raises(RouterError) as err:
        upstream_path(path)
    assert err.value.status == 400 and err.value.code == "invalid_path"
    assert err.value.message == (f"the path /v1/{path} has `.` or `..` segments (plain or percent-encoded); the "
                                 "router forwards only paths under /v1/")


def test_escaping_paths_get_400_through_the_app(api):
    # the server decodes %2e%2e and %2f once: the route saw '../../props' and forwarded it as /v1/../../props
    for raw in ("/v1/%2e%2e/%2e%2e/props?model=a", "/v1/..%2f..%2fprops?model=a", "/v1/%2e%2e/slots?model=a"):
        r = api.client.get(raw)
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["error"]["code"] == "invalid_path"
        assert r.json()["error"]["type"] == "invalid_request_error"
    r = api.client.post("/v1/..%2f..%2fslots", json={"model": "a"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("the path /v1/../../slots has ")


def test_clip():
    assert clip("abc") == "abc"
    assert clip("x" * 200) == "x" * 200
    assert clip("x" * 201) == "x" * 200 + "…"


def test_a_huge_model_name_is_not_echoed_whole(api):
    model = "m" * (4 << 20)
    r = api.client.post("/v1/chat/completions", json={"model": model})
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert message == f"the model '{'m' * 200}…' does not exist; known models: a"
    assert len(r.content) < 1000
