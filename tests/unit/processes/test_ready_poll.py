"""A starting model is probed for readiness every 50 ms (bench/cold_start.py: at 200 ms the wait for the
next probe was ~100 ms of an on-demand cold start, on average). Liveness keeps its own period."""

from __future__ import annotations

from xgen_declare.config import Reconciler
from xgen_declare.processes.probes import ProbeResult
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.states import State
from xgen_declare.processes.supervisor import Supervisor


class OneResult:
    """A prober whose one probe has finished with RESULT."""

    def __init__(self, result: ProbeResult):
        self.pending: ProbeResult | None = result

    def result(self, name: str) -> ProbeResult | None:
        out, self.pending = self.pending, None
        return out

    def busy(self, name: str) -> bool:
        return False

    def start(self, name: str, url: str) -> None:
        pass

    def forget(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass


def supervisor(tmp_path, result: ProbeResult) -> Supervisor:
    return Supervisor(StateStore(tmp_path), Reconciler(liveness_period=10), clock=lambda: 100.0,
                      prober=OneResult(result))


def test_starting_model_is_probed_again_after_50_ms(tmp_path):
    sup = supervisor(tmp_path, ProbeResult(False, "GET http://127.0.0.1:9/health: HTTP 503"))
    p = sup.new_proc(Record(name="m", state=State.STARTING.value, port=9, host="127.0.0.1", readiness_path="/health"))
    p.ready_deadline = 700.0
    sup.health.tick_probe(p, 100.0)
    assert p.state == State.STARTING
    assert p.next_probe_at == 100.05


def test_ready_model_keeps_the_liveness_period(tmp_path):
    sup = supervisor(tmp_path, ProbeResult(True, "GET http://127.0.0.1:9/health: 200"))
    p = sup.new_proc(Record(name="m", state=State.READY.value, port=9, host="127.0.0.1", readiness_path="/health"))
    sup.health.tick_probe(p, 100.0)
    assert p.state == State.READY and p.next_probe_at == 110.0
