"""Convergence: xgen-declare's daemon vs supervisord, side by side in one run (a script, not a test).

    .venv/bin/python bench/vs_supervisord.py [--models 20] [--reps 3] [--quick] [--json FILE]

The same stub program (xgen_declare.testing.fake_backend, a tiny HTTP server answering /health with
its pid in X-Fake-Pid) runs as M manifests under `xgen-declare run` and as M programs under a real
supervisord (PyPI `supervisor`; `supervisord` next to this interpreter or on PATH), with the very
argv our renderer produces and FAKE_MODE=load=0 in both. Both run at once, on two port blocks, and
each scenario alternates between them, so both see the same machine load.

  (a) change the command line of all M (ctx_size) -> every new process answers /health.
      ours: save the M manifests, the daemon converges; theirs: rewrite the M program files, then
      `supervisorctl reread` and `supervisorctl update` (their documented workflow, timed with them)
  (b) change 1 of M -> that process answers; collateral restarts (other pids that changed, 2 s later)
  (c) kill -9 one process -> a new pid answers /health. Default policies (ours: the first crash after a
      Ready run restarts at once, a second one within backoff_reset waits backoff_base 10 s; each rep kills
      another model; supervisord: autorestart=unexpected, at once), then tuned (ours: backoff_base 0.01 s;
      supervisord: its default already restarts at once, so unchanged)
  (d) kill -9 of the daemon / supervisord, then start it again: which original processes still answer,
      how many answering processes the restarted tool shows running with that same pid, and how many
      processes it spawned in the next 5 s (supervisord starts a copy of each program; the copy cannot
      bind the port the orphan still holds, and when it takes more than startsecs to fail it shows
      RUNNING for a while and is restarted again and again)
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xgen_declare.testing.harness import (DaemonHarness, Figures, environment, free_port_block, health_pid, kill_pids, model_manifest)

FAKE_ENV = {"FAKE_MODE": "load=0"}
TUNED = {"backoff_base": 0.01}


def supervisord_bin() -> Path:
    for cand in (Path(sys.executable).parent / "supervisord", shutil.which("supervisord")):
        if cand and Path(cand).exists():
            return Path(cand)
    raise SystemExit("supervisord not found (next to this interpreter or on PATH): pip install -e '.[bench]'")


def tool_version(binary: Path, *args: str) -> str | None:
    try:
        out = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


class Ours:
    name = "ours"

    def __init__(self, root: Path, names: list[str]):
        self.names = names
        self.h = DaemonHarness(root / "ours", ports=_block(len(names)))
        self.port = {n: self.h.ports[0] + i for i, n in enumerate(names)}
        for n in names:
            self.h.write(n, self.manifest(n, 4096))

    def manifest(self, name: str, ctx: int) -> str:
        return model_manifest(name, port=self.port[name], ctx_size=ctx, env=FAKE_ENV)

    def rendered(self) -> dict[str, list[str]]:
        import json
        out = subprocess.run([sys.executable, "-m", "xgen_declare.cli.main", "render", str(self.h.manifests),
                              "-o", "json"], env=self.h.env, capture_output=True, text=True, check=True)
        return {m["name"]: m["argv"] for m in json.loads(out.stdout)}

    def start(self) -> None:
        self.h.start()

    def settled(self) -> bool:
        return self.h.all_ready(self.names)

    def edit(self, names: list[str], ctx: int) -> None:
        for n in names:
            self.h.write(n, self.manifest(n, ctx))

    def tune(self) -> None:
        """The tuned restart policy needs the config at the daemon's start (back-off state is per process):
        SIGTERM (models keep running), new config, start again (adopts)."""
        self.h.config(reconciler=TUNED)
        d = self.h.daemon
        d.send_signal(signal.SIGTERM)
        d.wait(30)
        self.start()

    def kill9(self) -> None:
        self.h.kill_daemon()

    def supervised(self, answering: dict[str, int | None]) -> int:
        """Models shown Ready with the pid that answers on their port."""
        recs = {n: self.h.record(n) for n in self.names}
        return sum(1 for n in self.names if recs[n].get("state") == "Ready" and recs[n].get("pid") == answering[n])

    def spawn_mark(self) -> int:
        return sum(self.h.record(n).get("restarts", 0) for n in self.names)

    def spawns_since(self, mark: int) -> int:
        """Processes started since MARK (restarts counters; a replaced process counts one)."""
        return self.spawn_mark() - mark

    def cleanup(self) -> None:
        self.h.cleanup()


class Theirs:
    name = "supervisord"

    def __init__(self, root: Path, names: list[str], argv: dict[str, list[str]], ours_port: dict[str, int]):
        self.root, self.names = root / "theirs", names
        self.conf_d = self.root / "conf.d"
        self.conf_d.mkdir(parents=True)
        self.bin = supervisord_bin()
        self.ctl_bin = self.bin.parent / "supervisorctl"
        base = _block(len(names))[0]
        self.port = {n: base + i for i, n in enumerate(names)}
        self.argv = {n: [str(self.port[n]) if a == str(ours_port[n]) else a for a in argv[n]] for n in names}
        self.conf = self.root / "supervisord.conf"
        self.conf.write_text(
            f"[unix_http_server]\nfile={self.root}/sock\n\n"
            f"[supervisord]\nlogfile={self.root}/supervisord.log\npidfile={self.root}/supervisord.pid\n"
            f"childlogdir={self.root}\nnodaemon=true\n\n"
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{self.root}/sock\n\n[include]\nfiles = conf.d/*.conf\n")
        for n in names:
            self.write(n, 4096)
        self.proc: subprocess.Popen | None = None
        self.seen: set[int] = set()

    def write(self, name: str, ctx: int) -> None:
        argv = list(self.argv[name])
        argv[argv.index("--ctx-size") + 1] = str(ctx)
        env = ",".join(f'{k}="{v}"' for k, v in FAKE_ENV.items())
        text = (f"[program:{name}]\ncommand={shlex.join(argv)}\nenvironment={env}\nredirect_stderr=true\n"
                f"stdout_logfile={self.root}/{name}.log\n")
        tmp = self.conf_d / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.conf_d / f"{name}.conf")

    def start(self) -> None:
        self.proc = subprocess.Popen([str(self.bin), "-n", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def ctl(self, *args: str) -> str:
        out = subprocess.run([str(self.ctl_bin), "-c", str(self.conf), *args], capture_output=True, text=True,
                             timeout=120)
        return out.stdout

    def status(self) -> dict[str, tuple[str, int | None]]:
        out = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in self.port:
                pid = int(parts[3].rstrip(",")) if len(parts) > 3 and parts[2] == "pid" else None
                out[parts[0]] = (parts[1], pid)
        return out

    def settled(self) -> bool:
        st = self.status()
        return len(st) == len(self.names) and all(s == "RUNNING" for s, _ in st.values())

    def edit(self, names: list[str], ctx: int) -> None:
        for n in names:
            self.write(n, ctx)
        self.ctl("reread")
        self.ctl("update")

    def tune(self) -> None:
        pass  # autorestart=unexpected restarts a process that ran past startsecs at once: nothing to tune

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def supervised(self, answering: dict[str, int | None]) -> int:
        """Programs shown RUNNING with the pid that answers on their port (a child that takes longer
        than startsecs to fail shows RUNNING for a while: not counted)."""
        st = self.status()
        return sum(1 for n in self.names if st.get(n, ("", None))[0] == "RUNNING" and st[n][1] == answering[n])

    def spawn_mark(self) -> int:
        log = self.root / "supervisord.log"
        return log.read_text(errors="replace").count("INFO spawned: ") if log.exists() else 0

    def spawns_since(self, mark: int) -> int:
        return self.spawn_mark() - mark

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        kill_pids(self.seen)


def _block(n: int) -> tuple[int, int]:
    base = free_port_block(n)  # after the previous block: the two tools' ports never overlap
    return base, base + n - 1


def pids_of(tool, names: list[str]) -> dict[str, int | None]:
    out = {n: health_pid(tool.port[n]) for n in names}
    if isinstance(tool, Theirs):
        tool.seen.update(p for p in out.values() if p)
    return out


def wait_new(tool, old: dict[str, int | None], t0: float, timeout: float = 90) -> dict[str, float]:
    """Seconds from T0 until each name's port answers /health from a pid other than OLD's."""
    done: dict[str, float] = {}
    deadline = t0 + timeout
    while len(done) < len(old) and time.monotonic() < deadline:
        for n in old:
            if n not in done:
                pid = health_pid(tool.port[n], timeout=0.5)
                if pid and pid != old[n]:
                    done[n] = time.monotonic() - t0
                    if isinstance(tool, Theirs):
                        tool.seen.add(pid)
        time.sleep(0.005)
    if len(done) < len(old):
        raise SystemExit(f"{tool.name}: {sorted(set(old) - set(done))} never answered from a new process")
    return done


def settle(tool, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not tool.settled():
        if time.monotonic() > deadline:
            raise SystemExit(f"{tool.name} did not settle; see {tool.root if isinstance(tool, Theirs) else tool.h.root}")
        time.sleep(0.1)
    time.sleep(0.5)


def scenario_all(tools, names, reps: int, fig: Figures) -> None:
    res: dict[str, list[float]] = {t.name: [] for t in tools}
    for r in range(reps):
        for t in tools:
            old = pids_of(t, names)
            t0 = time.monotonic()
            t.edit(names, 8192 if r % 2 == 0 else 4096)
            res[t.name].append(max(wait_new(t, old, t0).values()) * 1000)
            settle(t)
    fig.add(f"(a) edit all {len(names)}: last new process answers /health (median of {reps})",
            *(statistics.median(res[t.name]) for t in tools))


def scenario_one(tools, names, reps: int, fig: Figures) -> None:
    lat: dict[str, list[float]] = {t.name: [] for t in tools}
    collateral = {t.name: 0 for t in tools}
    for r in range(reps):
        target = names[(len(names) // 2 + r) % len(names)]
        for t in tools:
            old = pids_of(t, names)
            t0 = time.monotonic()
            t.edit([target], 2048)
            lat[t.name].append(wait_new(t, {target: old[target]}, t0)[target] * 1000)
            time.sleep(2.0)  # anything else that was going to happen has happened
            now = pids_of(t, names)
            collateral[t.name] += sum(1 for n in names if n != target and now[n] != old[n])
            t.edit([target], 4096)
            wait_new(t, {target: now[target]}, time.monotonic())
            settle(t)
    fig.add(f"(b) edit 1 of {len(names)}: new process answers (median of {reps})",
            *(statistics.median(lat[t.name]) for t in tools))
    fig.add(f"(b) edit 1 of {len(names)}: collateral restarts (sum over {reps})",
            *(collateral[t.name] for t in tools), unit="", ratio=False)


def scenario_kill(tools, names, reps: int, fig: Figures, label: str) -> None:
    res: dict[str, list[float]] = {t.name: [] for t in tools}
    for r in range(reps):
        target = names[r % len(names)]
        for t in tools:
            old = pids_of(t, [target])
            os.kill(old[target], signal.SIGKILL)
            t0 = time.monotonic()
            res[t.name].append(wait_new(t, old, t0, timeout=60)[target] * 1000)
            settle(t)
    fig.add(f"(c) kill -9 one process -> answers again, {label} (median of {reps})",
            *(statistics.median(res[t.name]) for t in tools))


def scenario_crash(tools, names, fig: Figures, window: float) -> None:
    before = {t.name: pids_of(t, names) for t in tools}
    marks = {t.name: t.spawn_mark() for t in tools}
    for t in tools:
        t.kill9()
    time.sleep(1.0)
    for t in tools:
        t.start()
    time.sleep(window)  # ours adopts at once; supervisord starts a copy of each program
    kept, sup, spawned = [], [], []
    for t in tools:
        now = pids_of(t, names)
        kept.append(sum(1 for n in names if _alive(before[t.name][n]) and now[n] == before[t.name][n]))
        sup.append(t.supervised(now))
        spawned.append(t.spawns_since(marks[t.name]))
    fig.add(f"(d) kill -9 of the supervisor, start again: original processes still answering (of {len(names)})",
            *kept, unit="", ratio=False)
    fig.add(f"(d) ... answering processes the restarted supervisor shows running with their pid, {window:g} s later",
            *sup, unit="", ratio=False)
    fig.add(f"(d) ... processes the restarted supervisor spawned in those {window:g} s", *spawned, unit="",
            ratio=False)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kill-reps", type=int, default=5, help="kills with the tuned policy")
    ap.add_argument("--default-kill-reps", type=int, default=2, help="kills with the default policy (one per model)")
    ap.add_argument("--crash-window", type=float, default=5.0, help="seconds watched after the restart in (d)")
    ap.add_argument("--quick", action="store_true", help="CI smoke test: 4 models, 1 repetition")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.models, args.reps, args.kill_reps, args.default_kill_reps = 4, 1, 1, 1
    sup = supervisord_bin()
    print(environment(supervisord=tool_version(sup, "--version")), flush=True)
    names = [f"m{i:02d}" for i in range(args.models)]
    fig = Figures(("ours", "supervisord"))
    with tempfile.TemporaryDirectory(prefix="bench-vs-supervisord-") as d:
        ours = Ours(Path(d), names)
        theirs = Theirs(Path(d), names, ours.rendered(), ours.port)
        tools = (ours, theirs)
        try:
            t0 = time.monotonic()
            for t in tools:
                t.start()
            for t in tools:
                settle(t)
            print(f"  ({len(names)} stubs up under each in {time.monotonic() - t0:.1f} s)", flush=True)
            scenario_all(tools, names, args.reps, fig)
            scenario_one(tools, names, args.reps, fig)
            scenario_kill(tools, names, args.default_kill_reps, fig, "default policies")
            for t in tools:
                t.tune()
            settle(ours)
            scenario_kill(tools, names, args.kill_reps, fig, "tuned (ours backoff_base 0.01 s)")
            scenario_crash(tools, names, fig, args.crash_window)
        finally:
            for t in tools:
                t.cleanup()
    fig.dump(args.json)


if __name__ == "__main__":
    main()
