"""What a client sent is never echoed whole in an error body (issue 21 finding 18): every string of an
error answer of the management API is cut to MAX_ECHO characters, saying how much was cut."""

from __future__ import annotations

from xgen_declare.api.app import MAX_ECHO, clip_json

P = "/api/management"


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)


def test_clip_json_cuts_every_string_and_says_how_much():
    long = "x" * (MAX_ECHO + 10)
    assert clip_json({"detail": long, "errors": [{long: 1}], "n": 3}) == {
        "detail": "x" * MAX_ECHO + "… (10 more characters)", "errors": [{"x" * MAX_ECHO + "… (10 more characters)": 1}],
        "n": 3}
    assert clip_json("short") == "short"


def test_a_long_action_name_is_not_echoed_whole(api):
    r = api.client.post(P + "/models/m/" + "v" * 20000)
    assert r.status_code == 404
    assert r.json() == {"status": "error", "detail": f"no action {'v' * 64!r}… (20000 characters); use one of: "
                        "restart, down, up"}


def test_a_long_unknown_field_of_a_load_is_not_echoed_whole(api):
    key = "k" * 60000  # under the 64 KiB body limit
    r = api.client.post(P + "/load", json={"model_path": "/models/x.gguf", key: 1})
    assert r.status_code == 422, r.text[:300]
    assert len(r.content) < 4 * (MAX_ECHO + 100)
    assert all(len(s) <= MAX_ECHO + 40 for s in _strings(r.json()))
    assert any(s.startswith("spec.kkk") and s.endswith(" more characters)") for s in _strings(r.json()))
