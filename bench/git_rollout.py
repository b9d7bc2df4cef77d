"""A commit is the deployment: commit pushed -> new spec serving on all three simulated hosts.

A script that prints figures (no timing assertions):

    .venv/bin/python bench/git_rollout.py [--pushes 5] [--cases webhook,poll,cron] [--quick] [--json FILE]

Three simulated hosts on this machine (three `xgen-declare run` daemons through the shared harness, each
with its own state dir, port range and host.labels, over the fake backend), one model `chat` for all of
them, one repository served by the real `git http-backend` (xgen_declare/testing/gitserver.py), commits
signed with an SSH key made for the run. Each push changes chat's ctx_size (a new spec hash). Cases, one
after the other in the same run:

  webhook  the daemons follow the repo (`source:`, verify: allowed_signers, interval 1h) and the bench
           sends each host the push's GitHub webhook (X-Hub-Signature-256) right after the push
  poll     the same with interval 5s and no webhook
  cron     no git source: each host's daemon watches a plain clone (`run CLONE/manifests`) and a cron-like
           loop runs `git pull --ff-only` in every clone every 5 s (no signature check)

Measured per push: from the push's return to the first status read (every 50 ms, in-process, the rows of
`status -o json`) showing chat Ready with a new spec hash on every host; p50 and max over the pushes, and
the slowest host's p50. Before each push the bench waits a random 0-5 s (seeded): a push made right after
the previous one was served would land at the same phase of the 5 s poll / cron cycle every time (just
after it), and the poll and cron figures would all be ~5 s instead of spreading over the interval as a
person's pushes do.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xgen_declare.processes.state_store import StateStore  # noqa: E402
from xgen_declare.reconciler.client import status_rows  # noqa: E402
from xgen_declare.testing import write_wrapper  # noqa: E402
from xgen_declare.testing.gitrepos import SshSigner, WorkRepo, git, write_allowed_signers  # noqa: E402
from xgen_declare.testing.gitserver import GitHttpServer  # noqa: E402
from xgen_declare.testing.harness import (Daemon, environment, free_port, free_port_block,  # noqa: E402
                                          model_manifest, percentile, poll_until)

CASES = ("webhook", "poll", "cron")
HOSTS = {"h1": {"site": "a"}, "h2": {"site": "b"}, "h3": {"site": "c"}}
FAST = {"backoff_base": 0.3, "backoff_max": 2, "backoff_reset": 5, "liveness_period": 0.3,
        "liveness_threshold": 3, "probe_timeout": 0.5, "resync_interval": 2, "debounce": 0.05}
SECRET = b"bench-hook-secret"
CRON_EVERY = 5.0
POLL = 0.05


def chat(ctx: int) -> str:
    return model_manifest("chat", "llama-server-cpu", "/models/chat.gguf", ctx_size=ctx, ready_timeout=10,
                          stop_grace=2)


class Sim:
    """One simulated host: its config, state dir, daemon and (cron case) its clone."""

    def __init__(self, root: Path, name: str, labels: dict, fake: Path, base: int):
        self.root, self.name, self.api = root, name, free_port()
        root.mkdir(parents=True)
        self.cfg = {"binaries": {"llama-server-cpu": str(fake)}, "ports": {"start": base, "end": base + 4},
                    "reconciler": FAST, "host": {"labels": labels}, "api": {"port": self.api}}
        self.daemon: Daemon | None = None

    def start(self, source: dict | None, manifests: Path | None) -> None:
        cfg = {**self.cfg, **({"source": source} if source else {})}
        (self.root / "host.yaml").write_text(json.dumps(cfg))
        self.daemon = Daemon(manifests or self.root / "unused", self.root / "state", log=self.root / "daemon.log",
                             env={"XDG_CACHE_HOME": str(self.root / "cache")})
        self.daemon.start("--config", str(self.root / "host.yaml"), "--api", target=None if manifests else ())

    def chat(self) -> tuple[str | None, str | None]:
        rows = {r.name: r for r in status_rows(StateStore(self.root / "state"))}
        r = rows.get("chat")
        return (r.state.value, r.spec_hash) if r else (None, None)

    def hook(self, body: bytes) -> int:
        sig = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        conn = http.client.HTTPConnection("127.0.0.1", self.api, timeout=10)
        try:
            conn.request("POST", "/api/management/hooks/git", body=body, headers={
                "X-Hub-Signature-256": sig, "X-GitHub-Event": "push", "Content-Type": "application/json"})
            return conn.getresponse().status
        finally:
            conn.close()

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.cli("--config", str(self.root / "host.yaml"), "down", timeout=60)
            self.daemon.cleanup()


def wait_all(sims: list[Sim], old: dict[str, str | None], timeout: float, t0: float) -> dict[str, float]:
    """Seconds from t0 until each host shows chat Ready with a spec hash other than `old`."""
    done: dict[str, float] = {}

    def every() -> bool:
        for s in sims:
            if s.name not in done:
                state, spec = s.chat()
                if state == "Ready" and spec is not None and spec != old[s.name]:
                    done[s.name] = time.monotonic() - t0
        return len(done) == len(sims)

    if poll_until(every, timeout, POLL) is None:
        raise SystemExit(f"not served on every host within {timeout:.0f}s: {done}; "
                         + "; ".join(f"{s.name}: {s.chat()}" for s in sims))
    return done


class Cron(threading.Thread):
    """`git pull --ff-only` in every clone every CRON_EVERY seconds, as a cron job on each host would."""

    def __init__(self, clones: list[Path]):
        super().__init__(daemon=True)
        self.clones, self.stopping = clones, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(CRON_EVERY):
            for c in self.clones:
                subprocess.run(["git", "-C", str(c), "pull", "-q", "--ff-only"], capture_output=True, timeout=60)


def run_case(case: str, root: Path, pushes: int) -> dict:
    signer = SshSigner.generate(root / "keys", "bench@example.org")
    allowed = write_allowed_signers(root / "allowed_signers", [signer])
    (root / "secret").write_bytes(SECRET + b"\n")
    repo = WorkRepo.create(root / "work", bare=root / "srv" / "config.git")
    fake = write_wrapper(root / "fake-backend")
    base = free_port_block(15)
    sims = [Sim(root / n, n, labels, fake, base + 5 * i) for i, (n, labels) in enumerate(HOSTS.items())]
    ctx = 512
    repo.commit({"manifests/chat.yaml": chat(ctx)}, "chat", signer=signer)
    repo.push()
    cron = None
    with GitHttpServer(root / "srv") as srv:
        try:
            if case == "cron":
                clones = []
                for s in sims:
                    clone = s.root / "clone"
                    git("clone", "-q", "--branch", "main", srv.url("config.git"), str(clone))
                    clones.append(clone)
                    s.start(None, clone / "manifests")
                cron = Cron(clones)
                cron.start()
            else:
                source = {"git": srv.url("config.git"), "ref": "main", "path": "manifests",
                          "interval": "1h" if case == "webhook" else "5s", "verify": {"allowed_signers": str(allowed)},
                          "webhook_secret_file": str(root / "secret")}
                for s in sims:
                    s.start(source, None)
            wait_all(sims, {s.name: None for s in sims}, 60, time.monotonic())
            served, per_host = [], {s.name: [] for s in sims}
            phase = random.Random(24)
            for i in range(pushes):
                time.sleep(phase.uniform(0, CRON_EVERY))
                ctx += 64
                old = {s.name: s.chat()[1] for s in sims}
                commit = repo.commit({"manifests/chat.yaml": chat(ctx)}, f"chat ctx {ctx}", signer=signer)
                repo.push()
                t0 = time.monotonic()
                if case == "webhook":
                    body = json.dumps({"ref": "refs/heads/main", "after": commit}).encode()
                    codes = [s.hook(body) for s in sims]
                    if any(c != 202 for c in codes):
                        raise SystemExit(f"webhook answered {codes}")
                done = wait_all(sims, old, 60, t0)
                took = max(done.values())
                served.append(took)
                for name, t in done.items():
                    per_host[name].append(t)
                print(f"  {case} push {i + 1}/{pushes}: all three serving after {took * 1000:.0f} ms",
                      file=sys.stderr, flush=True)
        finally:
            if cron is not None:
                cron.stopping.set()
                cron.join(90)
            for s in sims:
                s.stop()
    return {"case": case, "pushes": pushes, "p50_ms": round(percentile(served, 50) * 1000),
            "max_ms": round(max(served) * 1000), "min_ms": round(min(served) * 1000),
            "slowest_host_p50_ms": round(max(percentile(v, 50) for v in per_host.values()) * 1000),
            "all_ms": [round(t * 1000) for t in served]}


LABELS = {"webhook": "git source + webhook (interval 1h)", "poll": "git source, poll every 5 s",
          "cron": "cron `git pull` every 5 s into a watched dir"}


def table(results: list[dict]) -> str:
    lines = ["| case | pushes | p50 | max | min | slowest host p50 |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {LABELS[r['case']]} | {r['pushes']} | {r['p50_ms']} ms | {r['max_ms']} ms | "
                     f"{r['min_ms']} ms | {r['slowest_host_p50_ms']} ms |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pushes", type=int, help="pushes per case (default 5, --quick 1)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ",".join(CASES))
    ap.add_argument("--quick", action="store_true", help="CI smoke test: 1 push per case")
    ap.add_argument("--keep", help="keep each case's repo, state dirs and daemon logs under this directory")
    ap.add_argument("--json", help="also write the figures here (JSON)")
    args = ap.parse_args()
    pushes = args.pushes or (1 if args.quick else 5)
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}; use {', '.join(CASES)}")
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    env_line = environment(git=git_version.removeprefix("git version "))
    print(env_line, flush=True)
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-git-") as tmp:
        d = Path(args.keep or tmp)
        results = []
        for case in cases:
            print(f"case {case}: {pushes} pushes, 3 hosts", file=sys.stderr, flush=True)
            results.append(run_case(case, d / case, pushes))
    doc = {"environment": env_line, "seconds": round(time.monotonic() - t_start, 1),
           "load_at_end": [round(x, 2) for x in os.getloadavg()], "cases": {r["case"]: r for r in results}}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    print(f"commit pushed -> new spec Ready on all 3 hosts; {doc['seconds']:.0f} s; load average at the end "
          + " ".join(f"{x:.2f}" for x in doc["load_at_end"]), flush=True)
    print(table(results), flush=True)


if __name__ == "__main__":
    main()
