"""GET /plan and the daemon's pass with a hostile model file among the manifests (#21 finding 2): the
file is that model's 'placement unknown', never a 500 for every plan."""

from __future__ import annotations

from xgen_declare.testing.deadline import within
from xgen_declare.testing.hostile_gguf import nested_array, string, write_gguf
from xgen_declare.tools.tinygguf import write_tiny_gguf

P = "/api/management"


def test_get_plan_and_reconcile_answer_with_a_hostile_gguf_among_the_models(api):
    write_tiny_gguf(str(api.manifests / "tiny.gguf"))
    write_gguf(api.manifests / "nested.gguf", general__x=nested_array(5000))
    write_gguf(api.manifests / "count.gguf", llama__block_count=string("abc"))
    for name in ("tiny", "nested", "count"):
        api.hand(f"{name}.yaml", name, model_path=f"{name}.gguf", backend="llama-server-cpu")
    for _ in range(2):  # the second pass answers from the cache: the same warnings
        r = within(20, lambda: api.client.get(P + "/plan"), "GET /plan")
        assert r.status_code == 200, r.text
        ledger = r.json()["ledger"]
        explicit = "; the manifest's explicit values are used"
        assert ledger["warnings"] == {
            "nested": "placement unknown: nested.gguf: implausible GGUF header: metadata key 'general.x': arrays "
                      "nested more than 3 deep; the file is corrupt or crafted" + explicit,
            "count": "placement unknown: count.gguf: metadata llama.block_count is a string ('abc'), not an integer; "
                     "the file is corrupt or not a model llama.cpp can load (re-download or re-convert it)" + explicit}
        tiny = next(m for m in ledger["models"] if m["name"] == "tiny")
        assert tiny["source"] == "predicted" and tiny["per_device_mib"]["host"] > 0
    r = within(20, lambda: api.client.post(P + "/reconcile"), "POST /reconcile")
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
