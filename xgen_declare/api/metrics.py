"""`/metrics` in the Prometheus text format (prometheus-client, one registry per app).

    xgen_model_state{model,state}             1 for the model's current state, 0 for the others
    xgen_model_restarts_total{model}          counted restarts (crashes, liveness, spec changes, `restart`)
    xgen_model_ready_seconds{model}           seconds since the model became Ready (0 when not Ready)
    xgen_model_info{model,spec_hash,file,sha256,commit,dirty}  1: the running spec and its provenance
                                              (file relative to the manifests dir; "" when unknown)
    xgen_store_bytes_downloaded_total{model}  bytes fetched into the model store for its source (resumes: only
                                              what is fetched again)
    xgen_model_download_progress{model}       0..1 while its source is fetched (absent otherwise)
    xgen_model_start_latency_seconds{model}   histogram: Starting -> Ready, as seen by this daemon
    xgen_reconcile_duration_seconds           histogram: one converge pass (observe + plan + apply)
    xgen_manifest_errors                      problems (errors) in the manifests at the last pass
    xgen_gpu_memory_total_bytes{gpu,name}     per GPU, from the inventory of the last full resync
    xgen_gpu_memory_free_bytes{gpu,name}
    xgen_gpu_memory_predicted_bytes{gpu,name}  what the memory ledger of the last pass puts on each GPU
    xgen_model_memory_bytes{model,device,source}  per model and device (GPU0, host): predicted / measured
    xgen_state_write_failures                 files of the state dir the daemon cannot write now (0: healthy)
    xgen_state_write_failed{path,errno,code}  1 per such file (state_write_failed: read-only, full, ...)
    xgen_source_commit_info{commit}           1: the git source's commit the daemon serves (with a source)
    xgen_source_poll_failures_total           polls of the git source that ended with an error (refused
                                              commit, unreachable remote, ...)
    xgen_source_last_success_timestamp        Unix time of the last poll without an error (0: none yet)
    xgen_source_gc_runs_total{outcome}        collections (`git gc`) of the source's repo.git by this daemon,
                                              outcome ok | failed
    xgen_source_last_gc_timestamp             Unix time of the last collection recorded (STATE/source/last_gc;
                                              0: none)
    xgen_source_repo_bytes                    bytes of repo.git (loose + packs) after the last collection
                                              (absent before the first, or when git could not count them)
Model gauges are read from the state records at scrape time, so they match `xgen-declare status`.
"""

from __future__ import annotations

import time
from typing import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from xgen_declare.reconciler.client import StatusRow, status_rows
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.state_store import StateStore
from xgen_declare.states import State
from xgen_declare.api.declare import relative

MIB = 1024 * 1024
START_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _info_labels(row: StatusRow, root: str | None) -> list[str]:
    prov = row.provenance or Provenance()
    file = prov.file or row.file
    if file and root:
        file = relative(root, file)
    return [row.name, row.spec_hash or "", file or "", prov.sha256 or "", prov.commit or "",
            "" if prov.dirty is None else str(prov.dirty).lower()]


class _Live:
    """Collector reading the state records (and the cached inventory) at each scrape."""

    def __init__(self, store: StateStore, proc_root: str, inventory: Callable[[], object],
                 ledger: Callable[[], object]):
        self.store, self.proc_root, self.inventory, self.ledger = store, proc_root, inventory, ledger

    def collect(self):
        rows = status_rows(self.store, self.proc_root)
        records = self.store.load_all()
        state = GaugeMetricFamily("xgen_model_state", "1 for the model's current state", labels=["model", "state"])
        restarts = CounterMetricFamily("xgen_model_restarts", "Counted restarts of the model", labels=["model"])
        ready = GaugeMetricFamily("xgen_model_ready_seconds", "Seconds since the model became Ready (0 when not)",
                                  labels=["model"])
        info = GaugeMetricFamily("xgen_model_info", "The model's spec hash and the manifest it was started from",
                                 labels=["model", "spec_hash", "file", "sha256", "commit", "dirty"])
        fetched = CounterMetricFamily("xgen_store_bytes_downloaded", "Bytes the daemon fetched into the model store "
                                      "for the model's source (a resumed file counts only what is fetched again)",
                                      labels=["model"])
        progress = GaugeMetricFamily("xgen_model_download_progress", "Fraction (0..1) of the model's source in the "
                                     "store while it is fetched (absent when nothing is fetched)", labels=["model"])
        roots = self.store.manifest_paths()
        now = time.time()
        for r in rows:
            info.add_metric(_info_labels(r, roots[0] if roots else None), 1.0)
            for s in State:
                state.add_metric([r.name, s.value], 1.0 if r.state == s else 0.0)
            restarts.add_metric([r.name], float(r.restarts))
            rec = records.get(r.name)
            up = now - rec.ready_at if rec and rec.ready_at and r.state == State.READY else 0.0
            ready.add_metric([r.name], max(0.0, up))
            fetched.add_metric([r.name], float(r.downloaded_bytes))
            if r.download and r.download.get("total"):
                progress.add_metric([r.name], min(1.0, (r.download.get("done") or 0) / r.download["total"]))
        yield from (state, restarts, ready, info, fetched, progress)
        yield from self._write_failures()
        inv = self.inventory()
        total = GaugeMetricFamily("xgen_gpu_memory_total_bytes", "GPU memory", labels=["gpu", "name"])
        free = GaugeMetricFamily("xgen_gpu_memory_free_bytes", "Free GPU memory at the last inventory",
                                 labels=["gpu", "name"])
        for g in getattr(inv, "gpus", None) or []:
            labels = [str(g.index), g.name or ""]
            if g.memory_total_mib is not None:
                total.add_metric(labels, g.memory_total_mib * MIB)
            if g.memory_free_mib is not None:
                free.add_metric(labels, g.memory_free_mib * MIB)
        yield from (total, free)
        yield from self._ledger()

    def _write_failures(self):
        failures = self.store.write_failures  # this process's store: the daemon's own writes
        count = GaugeMetricFamily("xgen_state_write_failures", "Files of the state dir the daemon cannot write now")
        count.add_metric([], float(len(failures)))
        each = GaugeMetricFamily("xgen_state_write_failed", "1 per state-dir file whose last write failed",
                                 labels=["path", "errno", "code"])
        for path, err in sorted(failures.items()):
            each.add_metric([path, str(err.errno), err.code], 1.0)
        yield from (count, each)

    def _ledger(self):
        ledger = self.ledger()
        predicted = GaugeMetricFamily("xgen_gpu_memory_predicted_bytes", "Memory the ledger of the last pass "
                                      "puts on the GPU (all our models)", labels=["gpu", "name"])
        per_model = GaugeMetricFamily("xgen_model_memory_bytes", "A model's memory per device (ledger of the last "
                                      "pass)", labels=["model", "device", "source"])
        if ledger is not None:
            for d in getattr(ledger, "devices", []):
                if d.gpu is not None:
                    predicted.add_metric([str(d.gpu), d.name or ""], float(ledger.used(d.key)))
            for e in getattr(ledger, "entries", []):
                for key, value in sorted(e.use.items()):
                    per_model.add_metric([e.name, key, e.source], float(value))
        yield from (predicted, per_model)


class _Source:
    """The git source's gauges, from its owner (reconciler/gitpoll.py) at each scrape; none without one."""

    def __init__(self, source: Callable[[], object]):
        self.source = source

    def collect(self):
        src = self.source()
        if src is None:
            return
        info = GaugeMetricFamily("xgen_source_commit_info", "The git source's commit the daemon serves",
                                 labels=["commit"])
        commit = src.serving_commit()
        if commit:
            info.add_metric([commit], 1.0)
        failures = CounterMetricFamily("xgen_source_poll_failures", "Polls of the git source that ended with an "
                                       "error (refused commit, unreachable remote)")
        failures.add_metric([], float(src.failures_total))
        success = GaugeMetricFamily("xgen_source_last_success_timestamp", "Unix time of the last poll of the git "
                                    "source without an error (0: none yet)")
        success.add_metric([], float(src.last_success or 0.0))
        yield from (info, failures, success)
        yield from self._gc(src)

    @staticmethod
    def _gc(src):
        runs = CounterMetricFamily("xgen_source_gc_runs", "Collections (git gc) of the git source's repository by "
                                   "this daemon, by outcome", labels=["outcome"])
        for outcome, n in sorted(src.gc_runs.items()):
            runs.add_metric([outcome], float(n))
        rec = src.gc_record()
        last = GaugeMetricFamily("xgen_source_last_gc_timestamp", "Unix time of the last collection of the git "
                                 "source's repository (0: none recorded)")
        last.add_metric([], float(rec["at"]) if rec else 0.0)
        size = GaugeMetricFamily("xgen_source_repo_bytes", "Bytes of the git source's repository (loose objects "
                                 "and packs) after the last collection")
        if rec and rec["after"]:
            size.add_metric([], float(rec["after"]["bytes"]))
        yield from (runs, last, size)


class Metrics:
    def __init__(self, store: StateStore, proc_root: str = "/proc", inventory: Callable[[], object] = lambda: None,
                 source: Callable[[], object] = lambda: None):
        self.registry = CollectorRegistry()
        self.start_latency = Histogram("xgen_model_start_latency_seconds", "Starting -> Ready", ["model"],
                                       buckets=START_BUCKETS, registry=self.registry)
        self.reconcile_duration = Histogram("xgen_reconcile_duration_seconds", "One converge pass",
                                            buckets=PASS_BUCKETS, registry=self.registry)
        self.manifest_errors = Gauge("xgen_manifest_errors", "Manifest problems (errors) at the last pass",
                                     registry=self.registry)
        self.ledger = None  # placement.ledger.Ledger of the last pass (None: placement not computed)
        self.registry.register(_Live(store, proc_root, inventory, lambda: self.ledger))
        self.registry.register(_Source(source))
        self._starting: dict[str, float] = {}

    def on_transition(self, name: str, old: State, new: State, reason: str, detail: dict) -> None:
        if new == State.STARTING:
            self._starting[name] = time.monotonic()
        elif new == State.READY and old == State.STARTING and name in self._starting:
            self.start_latency.labels(model=name).observe(time.monotonic() - self._starting.pop(name))
        elif old == State.STARTING:  # did not become ready this time
            self._starting.pop(name, None)

    def on_pass(self, result, seconds: float) -> None:
        self.reconcile_duration.observe(seconds)
        self.manifest_errors.set(len(result.problems))
        self.ledger = getattr(result.desired, "ledger", None)

    def render(self) -> bytes:
        return generate_latest(self.registry)
