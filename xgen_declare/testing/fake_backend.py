"""A fake LLM backend for integration tests and benchmarks (stdlib only; started through the rendered
templates: the config's `binaries:` / `python:` point at a wrapper that runs this module).

It takes whatever argv the template renders, reads `--host`/`--port` (and a served name from
`--alias`, `--model_alias` or `--served-model-name`; as vLLM, the vllm protocol answers to every name of
--served-model-name and 404 to any other `model`), and speaks the readiness protocol of the backend
family it was started as (from argv: `serve ...` = vLLM, `-m llama_cpp.server ...` =
llama-cpp-python, else llama-server), or of FAKE_PROTOCOL when set:

    llama-server       /health 503 while loading, then 200; /v1/models 200 once loaded
    vllm               connection refused while loading, then /health 200
    llama-cpp-python   connection refused while loading, then /v1/models 200; /health is 404

FAKE_MODE (comma-separated) changes its behaviour:
    load=S           loading takes S seconds (default 0.2)
    never_ready      stays loading forever
    exit_now         prints a line and exits with code 3 at once
    crash_after=S    exits with code 1 S seconds after becoming ready
    crash_times=N    exits with code 1 at start the first N runs (counts in FAKE_COUNTER file)
    hang_after=S     S seconds after becoming ready, stops answering requests (accepts, never replies)
    ignore_term      ignores SIGTERM (needs SIGKILL)
    grandchild       forks a grandchild in the same process group (sleeps forever)
    setsid           forks a descendant that calls setsid() (leaves the group), ignores SIGTERM
    untagged_child   forks a helper in the same process group that runs without XGEN_DECLARE_OWNER in
                     its environment (as a helper that scrubs it): only a kill of the group reaches it
    chunks=N         a streamed answer has N content chunks (default 5)
    chunk_delay=S    sleep S seconds before each streamed chunk (default 0)
    die_mid_stream   the process exits (code 1) after the second chunk of a streamed answer
Every non-streamed answer carries `X-Fake-Pid: PID`.
FAKE_PIDDIR: write NAME.main.pid / NAME.grandchild.pid / NAME.escapee.pid / NAME.untagged.pid there, append one line per
OpenAI request to NAME.requests ("PATH stream=0|1") and "cancelled" to NAME.cancelled when a client
goes away mid-stream.

Once ready it answers the OpenAI routes (all protocols): POST /v1/chat/completions, /v1/completions
(`"stream": true` = Server-Sent Events `data: {...}` chunks, then `data: [DONE]`) and /v1/embeddings.
The content says who answered: "fake NAME: chunk I". With an API key (`--api-key-file F` on argv or
VLLM_API_KEY in the environment), a request without `Authorization: Bearer KEY` gets 401.
`--help`, `--version`, `--list-devices` and `-c CODE` (the inventory's probes) answer and exit.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HELP = """usage: llama-server [options]
  -m, --model FNAME           model path
  --port PORT                 port to listen
  --fit [on|off]              fit unset arguments to device memory
  --load-mode MODE            auto, none, mmap, mlock, mmap+mlock, dio
"""


def parse(argv: list[str]) -> dict:
    opts: dict = {"protocol": "llama-server", "host": "127.0.0.1", "port": 8080, "name": "fake"}
    if argv[:1] == ["serve"]:
        opts["protocol"] = "vllm"
    elif argv[:2] == ["-m", "llama_cpp.server"]:
        opts["protocol"] = "llama-cpp-python"
    for i, arg in enumerate(argv[:-1]):
        nxt = argv[i + 1]
        if arg == "--port":
            opts["port"] = int(nxt)
        elif arg == "--host":
            opts["host"] = nxt
        elif arg in ("--alias", "--model_alias"):
            opts["name"] = nxt.split(",")[0]
        elif arg == "--served-model-name":  # vLLM: nargs="+", answers to each, reports the first
            names = _until_flag(argv[i + 1:])
            opts["name"], opts["served"] = names[0], names
    opts["protocol"] = os.environ.get("FAKE_PROTOCOL") or opts["protocol"]
    return opts


def _until_flag(args: list[str]) -> list[str]:
    out = []
    for a in args:
        if a.startswith("-"):
            break
        out.append(a)
    return out or ["fake"]


def modes() -> dict[str, str]:
    out = {}
    for item in filter(None, (os.environ.get("FAKE_MODE") or "").split(",")):
        key, _, value = item.strip().partition("=")
        out[key] = value
    return out


def write_pid(name: str, role: str, pid: int) -> None:
    d = os.environ.get("FAKE_PIDDIR")
    if d:
        with open(os.path.join(d, f"{name}.{role}.pid"), "w") as f:
            f.write(str(pid))


def sleeper(detach: bool) -> None:
    """A forked descendant: optionally leaves the group, then sleeps until killed."""
    if detach:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(3600)


def spawn_descendant(name: str, role: str, detach: bool) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            if detach:  # double fork so the escapee is not our child either
                if os.fork() != 0:
                    os._exit(0)
                write_pid(name, role, os.getpid())
            sleeper(detach)
        finally:
            os._exit(0)
    if detach:
        os.waitpid(pid, 0)
    else:
        write_pid(name, role, pid)


def spawn_untagged(name: str) -> None:
    """A helper in our group whose environment lacks the owner tag (/proc/PID/environ is what exec got)."""
    pid = os.fork()
    if pid == 0:
        try:
            env = {k: v for k, v in os.environ.items() if k != "XGEN_DECLARE_OWNER"}  # state_store.OWNER_ENV
            os.execve(sys.executable, [sys.executable, "-c", "import time\nwhile True: time.sleep(3600)"], env)
        finally:
            os._exit(0)
    write_pid(name, "untagged", pid)


class State:
    ready = False
    hung = False
    api_key: str | None = None


def api_key(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg == "--api-key-file":
            with open(argv[i + 1]) as f:
                return f.read().strip()
    return os.environ.get("VLLM_API_KEY") or None


def note(name: str, what: str, line: str) -> None:
    d = os.environ.get("FAKE_PIDDIR")
    if d:
        with open(os.path.join(d, f"{name}.{what}"), "a") as f:
            f.write(line + "\n")


def chunk_json(path: str, name: str, i: int, text: str, final: bool = False) -> dict:
    if path.endswith("/chat/completions"):
        delta = {} if final else ({"role": "assistant", "content": text} if i == 0 else {"content": text})
        choice = {"index": 0, "delta": delta, "finish_reason": "stop" if final else None}
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": name,
                "choices": [choice]}
    return {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": name,
            "choices": [{"index": 0, "text": "" if final else text, "finish_reason": "stop" if final else None}]}


def answer(path: str, name: str, body: dict, n: int) -> dict:
    text = "".join(f"fake {name}: chunk {i}. " for i in range(n))
    usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
    if path.endswith("/embeddings"):
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        return {"object": "list", "model": name, "usage": usage,
                "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))]}
    if path.endswith("/chat/completions"):
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": name, "usage": usage,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    return {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": name, "usage": usage,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}


def make_handler(protocol: str, name: str, served: list[str] | None = None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # streamed answers are chunked, so a death mid-stream is visible
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

        def log_message(self, fmt: str, *args: object) -> None:  # quiet
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Fake-Pid", str(os.getpid()))  # benches tell an old process from its successor
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if State.hung:
                time.sleep(3600)
                return
            path = self.path.split("?")[0]
            models = {"object": "list", "data": [{"id": n, "object": "model"} for n in served or [name]]}
            if protocol == "llama-server":
                if path == "/health":
                    if State.ready:
                        self._send(200, {"status": "ok"})
                    else:
                        self._send(503, {"error": {"code": 503, "message": "Loading model"}})
                elif path == "/v1/models":
                    self._send(200 if State.ready else 503, models)
                else:
                    self._send(404, {"error": "not found"})
            elif protocol == "vllm":
                if path == "/health":
                    self._send(200, {})
                elif path == "/v1/models":
                    self._send(200, models)
                else:
                    self._send(404, {"detail": "Not Found"})
            else:  # llama-cpp-python: no /health
                if path == "/v1/models":
                    self._send(200, models)
                else:
                    self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if State.hung:
                time.sleep(3600)
                return
            if not State.ready:
                self._send(503, {"error": {"code": 503, "message": "Loading model"}})
                return
            if path not in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
                self._send(404, {"error": {"code": 404, "message": f"no route {path}"}})
                return
            if State.api_key and self.headers.get("Authorization") != f"Bearer {State.api_key}":
                self._send(401, {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"error": {"code": 400, "message": "bad JSON"}})
                return
            model = body.get("model")
            if protocol == "vllm" and model is not None and model not in (served or [name]):  # vLLM's _check_model
                self._send(404, {"error": {"message": f"The model `{model}` does not exist.", "type": "NotFoundError",
                                           "param": "model", "code": 404}})
                return
            m = modes()
            n = int(m.get("chunks") or 5)
            stream = bool(body.get("stream")) and not path.endswith("/embeddings")
            note(name, "requests", f"{path} stream={int(stream)}")
            if not stream:
                self._send(200, answer(path, name, body, n))
                return
            self._stream(path, n, float(m.get("chunk_delay") or 0), "die_mid_stream" in m)

        def _stream(self, path: str, n: int, delay: float, die: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            try:
                for i in range(n + 1):
                    if i < n:
                        time.sleep(delay)
                    data = chunk_json(path, name, i, f"fake {name}: chunk {i}. ", final=i == n)
                    chunk(f"data: {json.dumps(data)}\n\n".encode())
                    if die and i == 1:
                        print("fake: dying mid-stream (die_mid_stream)", flush=True)
                        os._exit(1)
                chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                note(name, "cancelled", "cancelled")

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default listen backlog (5) drops connections under benchmark load


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        print(HELP)
        return
    if argv[:1] == ["--version"]:  # inventory probes: answer and exit, never start a server
        print("version: 9999 (fake)\nbuilt with fake for x86_64")
        return
    if argv[:1] == ["--list-devices"]:
        print("Available devices:")
        return
    if argv[:1] == ["-c"]:  # `python -c 'import llama_cpp.server'`
        return
    opts, m = parse(argv), modes()
    name, protocol = opts["name"], opts["protocol"]
    print(f"fake {protocol} {name}: pid {os.getpid()} argv {argv}", flush=True)
    write_pid(name, "main", os.getpid())
    State.api_key = api_key(argv)
    if "ignore_term" in m:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "exit_now" in m:
        print("fake: failed to load model (exit_now)", flush=True)
        sys.exit(3)
    if "crash_times" in m:
        counter = os.environ["FAKE_COUNTER"]
        n = int(open(counter).read()) if os.path.exists(counter) else 0
        with open(counter, "w") as f:
            f.write(str(n + 1))
        if n < int(m["crash_times"]):
            print(f"fake: crash {n + 1} of {m['crash_times']}", flush=True)
            sys.exit(1)
    if "grandchild" in m:
        spawn_descendant(name, "grandchild", detach=False)
    if "setsid" in m:
        spawn_descendant(name, "escapee", detach=True)
    if "untagged_child" in m:
        spawn_untagged(name)
    load = float(m.get("load") or 0.2)
    server = None
    if protocol == "llama-server":  # listens at once, answers 503 while loading
        server = Server((opts["host"], opts["port"]), make_handler(protocol, name, opts.get("served")))
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if "never_ready" in m:
        while True:
            time.sleep(3600)
    time.sleep(load)
    if server is None:  # vLLM / llama-cpp-python: refuse connections until loaded
        server = Server((opts["host"], opts["port"]), make_handler(protocol, name, opts.get("served")))
        threading.Thread(target=server.serve_forever, daemon=True).start()
    State.ready = True
    print(f"fake: ready on {opts['host']}:{opts['port']}", flush=True)
    if "hang_after" in m:
        time.sleep(float(m["hang_after"]))
        print("fake: hanging (hang_after)", flush=True)
        State.hung = True
    if "crash_after" in m:
        time.sleep(float(m["crash_after"]))
        print("fake: crashing (crash_after)", flush=True)
        os._exit(1)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
