"""Issue 21 finding 1 through the API: `load` reads api/NAME.yaml before writing it (unchanged text: no
write). A FIFO there blocked that read for ever (the request never answered); now it is a 503 naming the
file and what it is. (A link there, /dev/zero included, was already a 409: the API writes plain files.)"""

from __future__ import annotations

import os
import threading

P = "/api/management"
OFF = {"model_path": "/models/Qwen3-8B.Q4_K_M.gguf", "backend": "llama-server-cpu", "enabled": False, "name": "m"}


def post_within(api, deadline: float = 20.0):
    out: list = []
    t = threading.Thread(target=lambda: out.append(api.client.post(P + "/load?wait=1", json=OFF)), daemon=True)
    t.start()
    t.join(deadline)
    assert out, f"POST /load did not answer within {deadline}s"
    return out[0]


def test_a_fifo_at_the_api_manifest_is_503_not_a_hang(api):
    target = api.manifests / "api" / "m.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(target)
    r = post_within(api)
    assert r.status_code == 503, r.text
    assert r.json() == {"status": "error", "detail": "cannot read api/m.yaml: it is a FIFO (named pipe), not a "
                        "regular file", "model": "m", "manifest": "api/m.yaml"}
    assert not target.is_file()  # nothing written over it
