"""Real end-to-end on a CPU-only host: the daemon serves a generated GGUF through real llama-server and
llama-cpp-python processes; edits, crashes, daemon restarts and `down` behave as promised."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil

from tests.e2e.conftest import post_json

N_EMBD = 64  # tinygguf default


def manifest(name: str, model: Path, backend: str, *, embedding: bool = False, ctx: int = 512) -> str:
    return textwrap.dedent(f"""\
        apiVersion: xgen/v1
        kind: Model
        metadata: {{name: {name}}}
        spec:
          model_path: {json.dumps(str(model))}
          backend: {backend}
          server_type: {"embedding" if embedding else "llm"}
          ctx_size: {ctx}
          threads: 1
          ready_timeout: 60
          stop_grace: 5
        """)


def write_config(d: Path, llama_server: str, port_start: int) -> None:
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: {port_start}, end: {port_start + 19}}}
        binaries: {{llama-server-cpu: {json.dumps(llama_server)}}}
        python: {json.dumps(sys.executable)}
        reconciler: {{backoff_base: 1, backoff_max: 4, liveness_period: 1, liveness_threshold: 3}}
        """))


def chat(endpoint: str) -> dict:
    return post_json(f"{endpoint}/chat/completions",
                     {"model": "x", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4})


def complete(endpoint: str) -> dict:
    return post_json(f"{endpoint}/completions", {"model": "x", "prompt": "hello", "max_tokens": 4})


def pids(status: dict[str, dict]) -> dict[str, int]:
    return {n: m["pid"] for n, m in status.items() if m.get("pid")}


def alive(pid: int) -> bool:
    """Running, not a zombie: an adopted backend's parent is init, which may reap it late."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def group_gone(pgid: int, timeout: float = 10) -> bool:
    """No live process left in the process group (waits briefly: the stop may still be reaping)."""
    deadline = time.monotonic() + timeout
    while True:
        members = [p for p in psutil.process_iter() if _pgid(p) == pgid and alive(p.pid)]
        if not members or time.monotonic() > deadline:
            return not members
        time.sleep(0.2)


def _pgid(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except OSError:
        return None


def test_cpu_backends_lifecycle(tmp_path, tiny_models, llama_server_binary, llama_cpp_python, daemon_factory):
    d = tmp_path / "manifests"
    d.mkdir()
    write_config(d, llama_server_binary, 18400)
    (d / "chat-ls.yaml").write_text(manifest("chat-ls", tiny_models["chat"], "llama-server-cpu"))
    (d / "chat-py.yaml").write_text(manifest("chat-py", tiny_models["chat"], "llama-cpp-python"))
    (d / "embed.yaml").write_text(manifest("embed", tiny_models["embed"], "llama-server-cpu", embedding=True))
    daemon = daemon_factory(d)
    daemon.start()
    names = ["chat-ls", "chat-py", "embed"]

    # 1. all Ready, each answering on the endpoint that status reports
    st = daemon.wait_ready(names)
    assert len({st[n]["port"] for n in names}) == 3
    for n in ("chat-ls", "chat-py"):
        ep = st[n]["endpoint"]
        assert chat(ep)["usage"]["completion_tokens"] >= 1
        assert complete(ep)["usage"]["completion_tokens"] >= 1
    models = httpx.get(f"{st['chat-ls']['endpoint']}/models", timeout=10).json()
    assert models["data"][0]["owned_by"] == "llamacpp"
    emb = post_json(f"{st['embed']['endpoint']}/embeddings", {"model": "embed", "input": "hello"})
    assert len(emb["data"][0]["embedding"]) == N_EMBD
    before = pids(st)

    # 2. edit one manifest: only that model restarts
    (d / "chat-py.yaml").write_text(manifest("chat-py", tiny_models["chat"], "llama-cpp-python", ctx=1024))
    st = daemon.wait(lambda s: s["chat-py"]["state"] == "Ready" and s["chat-py"]["pid"] != before["chat-py"],
                     what="chat-py restarted after the edit")
    assert st["chat-ls"]["pid"] == before["chat-ls"] and st["embed"]["pid"] == before["embed"]
    assert chat(st["chat-py"]["endpoint"])["usage"]["completion_tokens"] >= 1
    assert alive(before["chat-ls"]) and group_gone(before["chat-py"])
    before = pids(st)

    # 3. kill -9 a backend: restarted (with backoff) and answering again
    os.killpg(before["chat-ls"], signal.SIGKILL)
    st = daemon.wait(lambda s: s["chat-ls"]["state"] == "Ready" and s["chat-ls"]["pid"] != before["chat-ls"],
                     timeout=60, what="chat-ls restarted after kill -9")
    assert st["chat-ls"]["restarts"] >= 1
    assert chat(st["chat-ls"]["endpoint"])["usage"]["completion_tokens"] >= 1
    assert st["chat-py"]["pid"] == before["chat-py"] and st["embed"]["pid"] == before["embed"]
    before = pids(st)
    restarts_before = {n: st[n]["restarts"] for n in names}

    # 4. kill -9 the daemon and start it again: everything adopted, nothing restarted
    daemon.kill9()
    assert all(alive(p) for p in before.values())
    daemon.start()
    st = daemon.wait_ready(names)
    assert pids(st) == before
    assert {n: st[n]["restarts"] for n in names} == restarts_before
    assert chat(st["chat-ls"]["endpoint"])["usage"]["completion_tokens"] >= 1
    assert len(post_json(f"{st['embed']['endpoint']}/embeddings", {"input": "x"})["data"][0]["embedding"]) == N_EMBD

    # 5. remove a manifest: its process group is gone, the others keep running
    (d / "embed.yaml").unlink()
    daemon.wait(lambda s: "embed" not in s or s["embed"]["state"] == "Stopped", what="embed stopped")
    assert group_gone(before["embed"])
    st = daemon.status()
    assert st["chat-ls"]["pid"] == before["chat-ls"] and st["chat-py"]["pid"] == before["chat-py"]

    # 6. down: no process left
    r = daemon.cli("down")
    assert r.returncode == 0, r.stderr
    daemon.wait(lambda s: all(m["state"] == "Stopped" for m in s.values()), what="all Stopped after down")
    assert daemon.leftovers() == []
    assert all(group_gone(p) for p in before.values())


def test_bad_model_fails_alone(tmp_path, tiny_models, llama_server_binary, daemon_factory):
    d = tmp_path / "manifests"
    d.mkdir()
    write_config(d, llama_server_binary, 18430)
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file\n" * 10)
    (d / "good.yaml").write_text(manifest("good", tiny_models["chat"], "llama-server-cpu"))
    (d / "bad.yaml").write_text(manifest("bad", bogus, "llama-server-cpu"))
    daemon = daemon_factory(d)
    daemon.start()
    st = daemon.wait(lambda s: s.get("good", {}).get("state") == "Ready"
                     and s.get("bad", {}).get("state") in ("Failed", "CrashLoopBackOff"),
                     what="good Ready and bad Failed/CrashLoopBackOff")
    assert st["bad"]["last_error"], st["bad"]
    assert "gguf" in st["bad"]["last_error"].lower() or "model" in st["bad"]["last_error"].lower()
    assert chat(st["good"]["endpoint"])["usage"]["completion_tokens"] >= 1
