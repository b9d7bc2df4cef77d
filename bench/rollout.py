"""Rollouts under load: what editing a serving model's manifest costs the router's clients.

A script that prints figures (no timing assertions):

    .venv/bin/python bench/rollout.py [--edits 10] [--clients 4] [--cases surge,recreate,stop-start,bad,bad-surge]
                                      [--quick] [-o table|json] [--json FILE] [--llama-server PATH] [--keep DIR]

Per case, a fresh `xgen-declare run --api` daemon (through the shared harness) serves one real
llama-server model (`chat`, the tiny generated GGUF of xgen_declare.tools.tinygguf, ctx 512, 1 thread),
and CLIENTS workers stream chat completions through the router in a loop (bench/httpload.py, one
keep-alive connection each, `max_tokens: 16`; a non-200, a broken stream or one without `[DONE]` is a
failed request). After a warm-up the manifest is edited N times (an editor's atomic save); each edit
changes `ctx_size` (512 + 64 * i), so each is a new spec hash. Cases, by the manifest's `rollout`:

  surge       `strategy: surge` (the label says what ran: the states the model went through and whether
              `plan` printed the "surge is not implemented yet" note, i.e. it ran as recreate)
  recreate    `strategy: recreate`, drain_timeout left at its default (60 s)
  stop-start  `strategy: recreate, drain_timeout: 0`: stop at once, then start (the baseline)
  bad         min(3, N) edits to a spec that cannot start (ctx_size plus an extra arg llama-server
              rejects, so it exits): the daemon must roll back to the last good spec

Measured per case: requests done and failed (goal 0); request latency (send -> end of the stream)
p50/p99 in steady state vs in the rollout windows, and the difference (the added latency); and
save -> new spec serving: from just before the save to the first status read showing the model Ready
with a new spec_hash (bad: Ready with the last good spec_hash and a new rollout_error, i.e. rolled
back), and how many edits had a status read saying Failed (the states a rollout went through are
kept). Status is the rows of `status -o json`, read in-process every 50 ms (the harness's
status_rows path; one `status -o json` subprocess takes ~0.8 s on the 2-core machine); the CLI itself
is run once at the end of each case. A request is "in a rollout" when it overlaps [save, serving] of
an edit; the steady state is every other request after a 1 s warm-up. Each case ends by checking that
the harness's cleanup left no process carrying the daemon's owner marker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from httpload import Conn  # noqa: E402
from vs_litellm import find_llama_server  # noqa: E402
from xgen_declare.testing.harness import DaemonHarness, environment, model_manifest, percentile  # noqa: E402

NAME = "chat"
CASES = {"surge": {"strategy": "surge"}, "recreate": {"strategy": "recreate"},
         "stop-start": {"strategy": "recreate", "drain_timeout": 0}, "bad": {"strategy": "recreate"},
         "bad-surge": {"strategy": "surge"}}
BODY = {"model": NAME, "stream": True, "max_tokens": 16, "messages": [{"role": "user", "content": "count to ten"}]}
WARMUP = 1.0     # seconds after the clients start that count in requests, not in latencies
POLL = 0.05      # seconds between two status reads
SURGE_NOTE = "surge is not implemented yet"


class Clients:
    """N workers streaming BODY through the router in a loop, in an asyncio thread of their own; each
    request kept as (monotonic start, monotonic end, error or "")."""

    def __init__(self, port: int, n: int):
        self.port, self.n = port, n
        self.results: list[tuple[float, float, str]] = []
        self.stopping = threading.Event()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()

    async def _main(self) -> None:
        await asyncio.gather(*(self._worker() for _ in range(self.n)))

    async def _worker(self) -> None:
        conn = Conn("127.0.0.1", self.port)
        while not self.stopping.is_set():
            t0 = time.monotonic()
            r = await conn.request("POST", "/v1/chat/completions", BODY, timeout=300)
            self.results.append((t0, time.monotonic(), r.error))
        conn.close()

    def done_after(self, t: float) -> int:
        return sum(1 for s, _, err in list(self.results) if s >= t and not err)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(330)


def manifest(gguf: Path, rollout: dict, ctx: int, bad: str | None = None) -> str:
    spec = {"server_type": "llm", "ctx_size": ctx, "threads": 1, "ready_timeout": 60, "stop_grace": 5,
            "rollout": rollout}
    if bad:
        spec["extra_args"] = [bad]
    return model_manifest(NAME, "llama-server-cpu", str(gguf), **spec)


def states_seen(seq: list[str]) -> str:
    out: list[str] = []
    for s in seq:
        if not out or out[-1] != s:
            out.append(s)
    return ">".join(out)


def plan_note(h: DaemonHarness, text: str) -> bool:
    """Does `plan` print the surge note for TEXT against the running daemon's state? (A scratch copy of
    the manifests dir, so the daemon does not see the edit.)"""
    scratch = h.root / "plan-scratch"
    shutil.copytree(h.manifests, scratch, dirs_exist_ok=True)
    (scratch / f"{NAME}.yaml").write_text(text)
    r = h.cli("plan", str(scratch))
    return SURGE_NOTE in r.stdout + r.stderr


def run_case(case: str, root: Path, llama: str, edits: int, clients_n: int, gap: float, warm: float) -> dict:
    from xgen_declare.tools.tinygguf import write_tiny_gguf

    h = DaemonHarness(root, binaries={"llama-server-cpu": llama})
    h.status_via_cli = False  # the rows `status -o json` prints, read in-process
    gguf = write_tiny_gguf(root / "tiny-chat.gguf")
    rollout = CASES[case]
    h.write(NAME, manifest(gguf, rollout, 512))
    clients: Clients | None = None
    out: dict = {"case": case, "rollout": rollout, "edits": edits}
    serve_ms: list[float] = []
    windows: list[tuple[float, float]] = []
    sequences: list[str] = []
    kept_serving = 0
    try:
        base = h.start_router()
        st = h.wait_ready(NAME, timeout=120)[NAME]
        if case == "surge":
            out["plan_note"] = plan_note(h, manifest(gguf, rollout, 512 + 64))
        clients = Clients(int(base.rsplit(":", 1)[1]), clients_n)
        h.wait(lambda: clients.done_after(clients.t0 + WARMUP) >= 2 * clients_n, 60, poll=POLL,
               what="requests before the first edit")
        time.sleep(warm)
        good, err = st["spec_hash"], st.get("rollout_error")
        for i in range(1, edits + 1):
            ctx = 512 + 64 * i
            text = manifest(gguf, rollout, ctx, f"--no-such-flag-bench-{i}" if case.startswith("bad") else None)
            seq: list[str] = []
            row: dict = {}

            def served() -> bool:
                nonlocal row
                row = h.status()[NAME]
                seq.append(row["state"])
                if row["state"] != "Ready":
                    return False
                if case.startswith("bad"):
                    return row["spec_hash"] == good and bool(row["rollout_error"]) and row["rollout_error"] != err
                return row["spec_hash"] != good and not row["rollout_error"]

            t0 = time.monotonic()
            h.write(NAME, text)
            t1 = h.wait(served, 180, poll=POLL, what=f"edit {i} of case {case} served")
            windows.append((t0, t1))
            serve_ms.append((t1 - t0) * 1000)
            sequences.append(states_seen(seq))
            h.record(NAME)  # notes the pid for the harness's cleanup
            if case.startswith("bad"):
                kept_serving += row["spec_hash"] == row["last_good_spec_hash"] == good
                err = row["rollout_error"]
            else:
                good = row["spec_hash"]
            print(f"  {case}: edit {i}/{edits}: {'rolled back' if case == 'bad' else 'serving'} after "
                  f"{serve_ms[-1]:.0f} ms ({sequences[-1]})", file=sys.stderr, flush=True)
            # steady state between edits: GAP seconds and at least one request per client after serving
            h.wait(lambda: clients.done_after(t1) >= clients_n, 120, poll=POLL, what="requests after the edit")
            time.sleep(max(0.0, gap - (time.monotonic() - t1)))
        clients.stop()
        final = {m["name"]: m for m in json.loads(h.cli("status", "-o", "json").stdout)}[NAME]
        out["final_status"] = {k: final[k] for k in ("state", "spec_hash", "last_good_spec_hash", "rollout_error")}
    finally:
        if clients is not None:
            clients.stop()
        h.cleanup()
    out["leftover_processes"] = len(h.leftovers())
    res = clients.results if clients else []
    in_window = [any(s < b and e > a for a, b in windows) for s, e, _ in res]
    lat = {"steady": [(e - s) * 1000 for (s, e, err), w in zip(res, in_window)
                      if not err and not w and s >= clients.t0 + WARMUP],
           "rollout": [(e - s) * 1000 for (s, e, err), w in zip(res, in_window) if not err and w]}
    failures = [(s, e, err) for s, e, err in res if err]

    def where(s: float, e: float) -> str:
        """A failed request's place relative to the edit windows (times since the clients started)."""
        a, b = (x - clients.t0 for x in min(windows, key=lambda w: min(abs(s - w[1]), abs(s - w[0])),
                                              default=(s, s)))
        return f"t+{s - clients.t0:.2f}..{e - clients.t0:.2f}s, nearest edit window t+{a:.2f}..{b:.2f}s"

    out.update({
        "requests": len(res), "failed": len(failures),
        "failed_in_rollout": sum(1 for (s, e, err), w in zip(res, in_window) if err and w),
        "failures": [f"{where(s, e)}: {err[:160]}" for s, e, err in failures[:100]],
        "windows": [[round(a - clients.t0, 3), round(b - clients.t0, 3)] for a, b in windows],
        "requests_steady": len(lat["steady"]), "requests_rollout": len(lat["rollout"]),
        "serve_ms": [round(x, 1) for x in serve_ms],
        "serve_ms_median": round(statistics.median(serve_ms), 1) if serve_ms else None,
        "serve_ms_max": round(max(serve_ms), 1) if serve_ms else None,
        "states_seen": max(set(sequences), key=sequences.count) if sequences else None,
        "state_sequences": {q: sequences.count(q) for q in sorted(set(sequences))},
        # a status read between the daemon's SIGTERM and its record of Stopping shows the Ready record's
        # dead pid as Failed ("process N is gone"); in `bad` the new spec's exit shows too: counted, not hidden
        "edits_with_failed_read": sum(1 for q in sequences if "Failed" in q.split(">")),
    })
    for q in (50, 99):
        for k in ("steady", "rollout"):
            out[f"p{q}_{k}_ms"] = round(percentile(lat[k], q), 1) if lat[k] else None
        a, b = out[f"p{q}_rollout_ms"], out[f"p{q}_steady_ms"]
        out[f"p{q}_added_ms"] = round(a - b, 1) if a is not None and b is not None else None
    if case.startswith("bad"):
        out["old_spec_kept_serving"] = kept_serving
    if case == "surge":
        ran_as = "recreate" if out.get("plan_note") or any("Stopping" in q for q in sequences) else "surge"
        out["label"] = f"surge (ran as {ran_as})"
    else:
        out["label"] = {"recreate": "recreate, drain 60s", "stop-start": "recreate, drain 0 (stop-start)",
                        "bad": "bad spec -> rollback (recreate)",
                        "bad-surge": "bad spec -> old kept (surge)"}[case]
    return out


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:.1f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def table(results: list[dict]) -> str:
    rows = [("manifest edits", lambda r: fmt(r["edits"])),
            ("requests done (ok)", lambda r: fmt(r["requests"] - r["failed"])),
            ("  of which in a rollout window", lambda r: fmt(r["requests_rollout"])),
            ("failed requests (goal 0)", lambda r: f"{r['failed']} ({r['failed_in_rollout']} in a rollout)"),
            ("latency p50 steady / rollout", lambda r: f"{fmt(r['p50_steady_ms'])} / {fmt(r['p50_rollout_ms'])} ms"),
            ("latency p99 steady / rollout", lambda r: f"{fmt(r['p99_steady_ms'])} / {fmt(r['p99_rollout_ms'])} ms"),
            ("added latency p50 / p99", lambda r: f"{fmt(r['p50_added_ms'])} / {fmt(r['p99_added_ms'])} ms"),
            ("save -> new spec serving, median / max",
             lambda r: "-" if r["case"].startswith("bad") else f"{fmt(r['serve_ms_median'])} / {fmt(r['serve_ms_max'])} ms"),
            ("save -> rolled back, median / max",
             lambda r: f"{fmt(r['serve_ms_median'])} / {fmt(r['serve_ms_max'])} ms" if r["case"].startswith("bad") else "-"),
            ("old spec kept serving (Ready, rollout_error)",
             lambda r: f"{r['old_spec_kept_serving']} of {r['edits']}" if r["case"].startswith("bad") else "-"),
            ("states seen in a rollout (most often)", lambda r: r["states_seen"] or "-"),
            ("edits during which a status read said Failed",
             lambda r: f"{r['edits_with_failed_read']} of {r['edits']}"),
            ("processes left after cleanup", lambda r: fmt(r["leftover_processes"]))]
    head = ["figure"] + [r["label"] for r in results]
    body = [[name] + [f(r) for r in results] for name, f in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(line, widths)) for line in [head, *body]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, help="manifest edits per case (default 10, --quick 2; bad: at most 3)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent streaming clients")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ",".join(CASES))
    ap.add_argument("--gap", type=float, default=2.0, help="seconds of steady state after each edit is served")
    ap.add_argument("--llama-server")
    ap.add_argument("--keep", help="keep each case's manifests, state dir and daemon log under this directory")
    ap.add_argument("--quick", action="store_true", help="CI smoke test: 2 edits (unless --edits), 1 s gaps")
    ap.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ap.add_argument("--json", help="also write the figures here (JSON)")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        ap.error(f"unknown case(s) {unknown}; choose from {','.join(CASES)}")
    if args.edits is None:
        args.edits = 2 if args.quick else 10
    if args.edits < 1 or args.clients < 1:
        ap.error("--edits and --clients must be at least 1")
    if args.quick:
        args.gap = 1.0
    llama = find_llama_server(args.llama_server)
    env_line = environment(llama_server=llama)
    if args.output == "table":
        print(env_line, flush=True)
    if llama is None:
        raise SystemExit("llama-server not found (pip install -e '.[cpu]' or --llama-server PATH)")
    results = []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        d = args.keep or tmp
        for case in cases:
            edits = min(3, args.edits) if case.startswith("bad") else args.edits
            print(f"case {case}: {edits} edits, {args.clients} clients", file=sys.stderr, flush=True)
            results.append(run_case(case, Path(d) / case, llama, edits, args.clients, args.gap,
                                    1.0 if args.quick else 2.0))
    doc = {"environment": env_line, "clients": args.clients, "seconds": round(time.monotonic() - t_start, 1),
           "load_at_end": [round(x, 2) for x in os.getloadavg()],
           "cases": {r["case"]: r for r in results}}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    if args.output == "json":
        print(json.dumps(doc, indent=1))
        return
    load = " ".join(f"{x:.2f}" for x in doc["load_at_end"])
    print(f"{args.clients} clients streaming through the router; latency = request sent -> end of stream; "
          f"{doc['seconds']:.0f} s; load average at the end {load}", flush=True)
    print(table(results), flush=True)
    for r in results:
        for f in r["failures"][:8]:
            print(f"  failed ({r['label']}): {f}", flush=True)
        if len(r["failures"]) > 8:
            print(f"  ... {r['failed'] - 8} more failed ({r['label']}): see -o json / --json", flush=True)
        if r["final_status"]["state"] != "Ready":
            print(f"  final status ({r['label']}): {r['final_status']}", flush=True)


if __name__ == "__main__":
    main()
