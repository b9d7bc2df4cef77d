"""llama.cpp RPC groups: the rpc_workers field, rendering (--rpc, local workers), warnings, host names."""

from __future__ import annotations

import os
import stat

import pytest
from pydantic import ValidationError

from tests.conftest import model_yaml
from tests.unit.desired.test_render import inventory, render_dir
from xgen_declare.config import Config, Rpc
from xgen_declare.manifests.request import ModelLoadRequest
from xgen_declare.desired.rpc import host_names, rpc_warnings, worker_binary

TWO_LOCAL = [{"host": "127.0.0.1", "port": 50052}, {"host": "localhost", "port": 50053, "threads": 1}]
NAMES = frozenset({"127.0.0.1", "localhost", "::1", "box-1"})


def req(**spec) -> ModelLoadRequest:
    spec.setdefault("model_path", "/models/x.gguf")
    return ModelLoadRequest(**spec)


def errors(**spec) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        req(**spec)
    return [e["msg"] for e in exc.value.errors()]


# ---- the field ---------------------------------------------------------------------------------

def test_local_workers_are_valid():
    spec = req(rpc_workers=TWO_LOCAL)
    assert [w.endpoint for w in spec.rpc_workers] == ["127.0.0.1:50052", "localhost:50053"]


@pytest.mark.parametrize("worker, text", [
    ({"host": "127.0.0.1", "port": 0}, "Input should be greater than or equal to 1"),
    ({"host": "127.0.0.1", "port": 70000}, "Input should be less than or equal to 65535"),
    ({"host": "", "port": 50052}, "String should have at least 1 character"),
    ({"host": "a\nb", "port": 50052}, "Value error, value must not contain control characters (\\n at position 1): "
                                       "remove it (newlines, NUL bytes and terminal escapes are refused, a tab is "
                                       "allowed)"),  # #21 finding 17: every argv value refuses control characters
    ({"host": "a,b", "port": 50052}, "Value error, must be one host name or address (no spaces, commas or newlines)"),
    ({"host": "127.0.0.1", "port": 50052, "user": "x"}, "Extra inputs are not permitted"),
])
def test_bad_worker(worker, text):
    assert text in errors(rpc_workers=[worker])


def test_remote_worker_needs_an_explicit_bind():
    msg = errors(rpc_workers=[{"host": "gpu-box-2", "port": 50052}])[0]
    assert "worker gpu-box-2:50052 is on another host but binds 127.0.0.1 by default" in msg
    assert "set bind: to an address of that host (or 0.0.0.0)" in msg
    spec = req(rpc_workers=[{"host": "gpu-box-2", "port": 50052, "bind": "0.0.0.0"}], rpc_server_host="gpu-box-1")
    assert spec.rpc_workers[0].bind == "0.0.0.0"


def test_remote_worker_needs_the_server_host():
    (msg,) = errors(rpc_workers=[{"host": "gpu-box-2", "port": 50052, "bind": "0.0.0.0"}])
    assert msg == ("Value error, rpc_server_host: worker(s) gpu-box-2:50052 may be on other hosts, whose daemons "
                   "read this manifest too: name the host that runs llama-server (rpc_server_host: gpu-box-1); "
                   "the others then run only their workers")


def test_server_host_rules():
    assert errors(rpc_server_host="gpu-box-1") == ["Value error, rpc_server_host: only applies with rpc_workers; "
                                                   "remove it"]
    assert "rpc_server_host: must be a host name, not a loopback address" in errors(
        rpc_workers=TWO_LOCAL, rpc_server_host="localhost")[0]
    assert req(rpc_workers=TWO_LOCAL, rpc_server_host="gpu-box-1").rpc_server_host == "gpu-box-1"


def test_duplicate_worker():
    assert "rpc_workers: lists 127.0.0.1:50052 more than once" in errors(rpc_workers=[TWO_LOCAL[0], TWO_LOCAL[0]])[0]


@pytest.mark.parametrize("backend", ["llama-cpp-python", "vllm-cpu"])
def test_only_llama_server(backend):
    path = "/models/x.gguf" if backend.startswith("llama") else "org/model"
    msg = errors(model_path=path, backend=backend, rpc_workers=TWO_LOCAL[:1])[0]
    assert f"rpc_workers: only applies to llama-server backends, not {backend}" in msg


# ---- rendering ---------------------------------------------------------------------------------

def render_one(write, config=None, **spec):
    write("m.yaml", model_yaml("m1", backend="llama-server-cpu", **spec))
    d = render_dir([write.root], inventory("new"), config)
    assert not d.problems, d.problems
    return d.rendered["m1"]


def test_server_gets_rpc_and_local_workers_are_rendered(write):
    cfg = Config(rpc=Rpc(worker_binary="/opt/rpc/ggml-rpc-server"))
    r = render_one(write, cfg, rpc_workers=TWO_LOCAL)
    i = r.argv.index("--rpc")
    assert r.argv[i + 1] == "127.0.0.1:50052,localhost:50053"
    assert [list(w.argv) for w in r.workers] == [
        ["/opt/rpc/ggml-rpc-server", "--host", "127.0.0.1", "--port", "50052"],
        ["/opt/rpc/ggml-rpc-server", "--host", "127.0.0.1", "--port", "50053", "--threads", "1"]]
    assert [w.connect_host for w in r.workers] == ["127.0.0.1", "127.0.0.1"]
    assert r.warnings == []


def test_remote_worker_is_only_referenced(write):
    cfg = Config(rpc=Rpc(hosts=["gpu-box-2"], this_host=["box-1"]))
    r = render_one(write, cfg, rpc_workers=[TWO_LOCAL[0], {"host": "gpu-box-2", "port": 50052, "bind": "10.0.0.2"}],
                   rpc_server_host="box-1")
    assert r.argv[r.argv.index("--rpc") + 1] == "127.0.0.1:50052,gpu-box-2:50052"
    assert [w.port for w in r.workers] == [50052]
    assert r.warnings == ["rpc_workers[1]: RPC worker gpu-box-2:50052 binds 10.0.0.2: ggml-rpc-server has no "
                          "authentication, anyone who reaches that port can use the host's devices; keep it on a "
                          "trusted network"]


def test_workers_are_part_of_the_spec_hash(write):
    plain = render_one(write)
    assert plain.workers == [] and "--rpc" not in plain.argv
    one = render_one(write, rpc_workers=TWO_LOCAL[:1])
    other_threads = render_one(write, rpc_workers=[{**TWO_LOCAL[0], "threads": 2}])
    assert one.argv == other_threads.argv  # only the worker differs ...
    assert one.spec_hash() != other_threads.spec_hash()  # ... and the group restarts


def test_template_without_rpc_is_an_error(write, tmp_path):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "llama-server.j2").write_text('{{ binary }} {{ "--port" }} {{ port }}\n')
    write("m.yaml", model_yaml("m1", backend="llama-server-cpu", rpc_workers=TWO_LOCAL[:1]))
    d = render_dir([write.root], inventory("new"), Config(templates_dir=str(tdir)))
    (p,) = d.problems["m1"]
    assert p.field == "spec.rpc_workers"
    assert p.message == "template llama-server.j2 does not pass rpc_workers on (no --rpc in its output)"


# ---- which host runs which worker ------------------------------------------------------------

def test_host_names(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "box-1.lan")
    names = host_names(Config(rpc=Rpc(this_host=["gpu-a"])), {"XGEN_DECLARE_HOST": "x, y"})
    assert {"127.0.0.1", "localhost", "::1", "box-1.lan", "box-1", "gpu-a", "x", "y"} <= names


def test_unclaimed_host_warns():
    spec = req(rpc_workers=[{"host": "gpu-box-3", "port": 50052, "bind": "0.0.0.0"},
                            {"host": "box-1", "port": 50053, "bind": "127.0.0.2"}], rpc_server_host="box-1")
    found = rpc_warnings(spec, Config(), NAMES)
    assert [i for i, _ in found] == [0, 0]
    assert found[1][1] == ("no xgen-declare claims RPC worker host gpu-box-3 (not this host's name, not in "
                           "rpc.hosts of xgen-declare.yaml): nothing will start that worker; run xgen-declare "
                           "there and list the host in rpc.hosts, or start ggml-rpc-server there yourself")
    assert len(rpc_warnings(spec, Config(rpc=Rpc(hosts=["gpu-box-3"])), NAMES)) == 1  # only "binds 0.0.0.0"


def test_worker_binary_next_to_llama_server(tmp_path):
    for name in ("llama-server", "rpc-server"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        os.chmod(tmp_path / name, stat.S_IRWXU)
    assert worker_binary(Config(), str(tmp_path / "llama-server")) == str(tmp_path / "rpc-server")
    (tmp_path / "ggml-rpc-server").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "ggml-rpc-server", stat.S_IRWXU)
    assert worker_binary(Config(), str(tmp_path / "llama-server")) == str(tmp_path / "ggml-rpc-server")
    assert worker_binary(Config(rpc=Rpc(worker_binary="/x/w")), "llama-server") == "/x/w"


def test_validate_warns_but_passes(cli, write):
    write("m.yaml", model_yaml("m1", rpc_workers=[{"host": "gpu-box-9", "port": 50052, "bind": "0.0.0.0"}],
                               rpc_server_host="gpu-box-1"))
    r = cli("validate", str(write.root))
    assert r.code == 0
    assert "spec.rpc_workers[0]: RPC worker gpu-box-9:50052 binds 0.0.0.0" in r.err
    assert "no xgen-declare claims RPC worker host gpu-box-9" in r.err
    assert "ok: 1 model(s) in 1 file(s)" in r.out


def test_render_shell_shows_the_workers_first(cli, write, tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("gpus: []\nbackends:\n  - {name: llama-server-cpu, available: true, dialect: new}\n")
    (write.root / "xgen-declare.yaml").write_text("rpc: {worker_binary: /opt/rpc/ggml-rpc-server}\n")
    write("m.yaml", model_yaml("m1", backend="llama-server-cpu", rpc_workers=TWO_LOCAL[:1]))
    r = cli("render", str(write.root), "-o", "shell", "--inventory", str(inv))
    assert r.code == 0, r.err
    assert "# RPC worker 127.0.0.1:50052\n/opt/rpc/ggml-rpc-server --host 127.0.0.1 --port 50052\n" in r.out
    assert r.out.index("# RPC worker") < r.out.index("--rpc 127.0.0.1:50052")


# ---- worker-only hosts -------------------------------------------------------------------------

REMOTE = [{"host": "127.0.0.1", "port": 50052}, {"host": "box-2", "port": 50053, "bind": "10.0.0.2"},
          {"host": "box-2", "port": 50054, "bind": "10.0.0.2"}]


def render_as(write, me: str):
    write("m.yaml", model_yaml("m1", backend="llama-server-cpu", rpc_workers=REMOTE, rpc_server_host="box-1"))
    cfg = Config(rpc=Rpc(this_host=[me], hosts=["box-1", "box-2"], worker_binary="/w/ggml-rpc-server"))
    d = render_dir([write.root], inventory("new"), cfg)
    assert not d.problems, d.problems
    return d.rendered


def test_server_host_runs_the_group(write):
    r = render_as(write, "box-1")
    assert sorted(r) == ["m1"]
    assert r["m1"].argv[r["m1"].argv.index("--rpc") + 1] == "127.0.0.1:50052,box-2:50053,box-2:50054"
    assert [w.port for w in r["m1"].workers] == [50052]  # loopback = the server's host


def test_worker_host_runs_only_its_workers(write):
    from xgen_declare.processes.probes import TCP_PROBE

    r = render_as(write, "box-2")
    assert sorted(r) == ["m1-rpc-50053", "m1-rpc-50054"]
    e = r["m1-rpc-50053"]
    assert e.argv == ["/w/ggml-rpc-server", "--host", "10.0.0.2", "--port", "50053"]
    assert (e.backend, e.port, e.host, e.readiness_path, e.endpoint) == (
        "rpc-worker", 50053, "10.0.0.2", TCP_PROBE, "10.0.0.2:50053")
    assert e.backend_reason == "RPC worker of m1, whose llama-server runs on box-1"
    assert e.warnings == ["rpc_workers[1]: RPC worker box-2:50053 binds 10.0.0.2: ggml-rpc-server has no "
                          "authentication, anyone who reaches that port can use the host's devices; keep it on a "
                          "trusted network"]


def test_worker_entry_name_too_long_for_a_model_name(write):
    long = "m" * 55
    write("m.yaml", model_yaml(long, backend="llama-server-cpu", rpc_workers=REMOTE, rpc_server_host="box-1"))
    cfg = Config(rpc=Rpc(this_host=["box-2"], hosts=["box-1", "box-2"], worker_binary="/w/ggml-rpc-server"))
    d = render_dir([write.root], inventory("new"), cfg)
    assert d.rendered == {}
    assert [(n, p.field, p.message, p.hint) for n, ps in d.problems.items() for p in ps] == [
        (long, "metadata.name", f"its RPC worker entry would be named {long}-rpc-{port}, which is not a model "
                                "name (at most 63 characters)", "shorten metadata.name to at most 53 characters")
        for port in (50053, 50054)]


def test_other_host_runs_nothing(write):
    assert render_as(write, "box-3") == {}


@pytest.mark.parametrize("server_host", [None, "box-1"])
def test_export_kubernetes_reports_an_rpc_model(write, server_host):
    from xgen_declare.export.kubernetes import export_kubernetes

    extra = {"rpc_server_host": server_host} if server_host else {}
    write("m.yaml", model_yaml("m", backend="llama-server-cpu", rpc_workers=TWO_LOCAL, **extra))
    cfg = Config.model_validate({"kubernetes": {"images": {"llama-server": "ghcr.io/ggml-org/llama.cpp:server"}}})
    result = export_kubernetes([str(write.root)], cfg)
    assert not result.complete and result.models == {}
    assert [p.message for p in result.problems["m"]] == [
        "a model with llama.cpp RPC workers is not exported: its workers need pods of their own and "
        "llama-server their addresses, which the export does not express (docs/kubernetes.md)"]


def test_missing_worker_binary_blocks_with_the_right_hint(write):
    from xgen_declare.reconciler.observe import want_for

    entry = render_as(write, "box-2")["m1-rpc-50053"]
    assert want_for(entry, set()).blocked == ("binary '/w/ggml-rpc-server' not found (install it, or set "
                                              "rpc: worker_binary: PATH in xgen-declare.yaml)")


@pytest.mark.parametrize("text, message", [
    ("{{ binary }} {{ 1 / 0 }}\n", "template rpc-worker.j2: ZeroDivisionError: division by zero"),
    ("{{ binary }} --raw\n", "template rpc-worker.j2: output line 1: text outside {{ }} ('--raw\\n'); write literal "
                             "flags as {{ \"--flag\" }}"),
    ("{# nothing #}\n", "template rpc-worker.j2 rendered an empty command"),
])
def test_a_broken_worker_template_is_a_problem_of_the_field(write, tmp_path, text, message):
    """The worker template goes through the one template-to-argv path the model's own template takes:
    any error names the template once and the field, never escapes as an exception."""
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "rpc-worker.j2").write_text(text)
    write("m.yaml", model_yaml("m1", backend="llama-server-cpu", rpc_workers=TWO_LOCAL[:1]))
    d = render_dir([write.root], inventory("new"), Config(templates_dir=str(tdir)))
    (p,) = d.problems["m1"]
    assert (p.field, p.message) == ("spec.rpc_workers", message)
