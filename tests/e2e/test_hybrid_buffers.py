"""The hybrid designs against the installed CPU llama-server, live: each sparse GGUF (header and tensor table
real, data a hole) is loaded with `-ngl 0 --no-warmup`, its buffer lines read through placement/buffers.py,
and our prediction must give the same KV and RS figures (to the log's 0.01 MiB) and a compute buffer within
10 %. Smaller variants of the bench's shapes (fewer experts) keep each load to seconds; the full shapes are
in bench/placement.py and tests/unit/placement/test_hybrids.py."""

from __future__ import annotations

import subprocess
import threading

import pytest

from xgen_declare.placement.buffers import parse_buffers
from xgen_declare.placement.gguf_facts import read_gguf_facts
from xgen_declare.placement.memory import ContextSettings
from xgen_declare.placement.predict import MIB, predict
from xgen_declare.testing.harness import free_port
from xgen_declare.testing.synthetic import SHAPES, write_sparse_gguf

CASES = [  # (shape, weight type, shape changes, recurrent layers)
    ("nemotron-h-9b", "F16", {}, 27),
    ("qwen3-next-80b-a3b", "Q8_0", {"n_expert": 16}, 36),
    ("lfm2-1.2b", "F16", {}, 10),
    ("jamba-mini", "Q8_0", {"n_expert": 2}, 28),
]


def _buffer_lines(binary: str, model: str, args: list[str], timeout: float = 120) -> dict[str, float]:
    cmd = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(free_port()), "--no-warmup", "-t", "1",
           "-lv", "4", "-ngl", "0", *args]
    lines: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(timeout, proc.kill)  # a server that stops printing cannot hang the test
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the server listens (stopped below) or exits
            lines.append(line)
            if "listening on" in line or "exiting due to" in line:
                break
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait(10)
    found = parse_buffers(lines)
    assert "CPU" in found, "".join(lines[-20:])
    return found["CPU"]


@pytest.mark.parametrize("name,wtype,changes,n_rec", CASES, ids=[c[0] for c in CASES])
def test_hybrid_prediction_matches_the_cpu_llama_server(tmp_path, llama_server_binary, name, wtype, changes, n_rec):
    path = write_sparse_gguf(tmp_path / f"{name}.gguf", SHAPES[name].with_(**changes), wtype)
    got = _buffer_lines(llama_server_binary, str(path), ["-c", "4096", "-np", "2"])
    facts = read_gguf_facts(str(path))
    p = predict(facts, ContextSettings(ctx_size=4096, parallel=2), [])
    assert p.cpu.kv_cache / MIB == pytest.approx(got["kv_cache"], abs=0.006)
    assert p.cpu.recurrent / MIB == pytest.approx(got["recurrent"], abs=0.006)
    assert p.cpu.compute / MIB == pytest.approx(got["compute"], rel=0.10)
    assert f" + {n_rec} recurrent layers x 2 sequence states" in p.notes[0]
