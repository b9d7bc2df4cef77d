from xgen_declare.processes.backoff import Backoff


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_doubling_to_cap():
    # a run that never became Ready (crash during start) waits from the first failure on
    b = Backoff(10, 300, 600, FakeClock())
    assert [b.next_delay() for _ in range(7)] == [10, 20, 40, 80, 160, 300, 300]


def test_reset_after_long_healthy_run():
    clock = FakeClock()
    b = Backoff(10, 300, 600, clock)
    b.next_delay(), b.next_delay()
    b.healthy()
    clock.t += 599
    assert b.next_delay() == 40  # not healthy long enough
    b.healthy()
    clock.t += 600
    assert b.next_delay() == 0  # a new sequence: its first crash after a Ready run restarts at once
    assert b.next_delay() == 10


def test_first_crash_after_a_ready_run_restarts_at_once_then_backs_off():
    """Finding 23 (#21): kubelet restarts at once after the first termination, then 10 s, 20 s, ..."""
    clock = FakeClock()
    b = Backoff(10, 300, 600, clock)
    b.healthy()
    clock.t += 3 * 3600  # served for hours
    assert b.next_delay() == 0
    delays = []
    for _ in range(4):  # each restart becomes Ready again and crashes a minute later: within the window
        b.healthy()
        clock.t += 60
        delays.append(b.next_delay())
    assert delays == [10, 20, 40, 80]
    b.healthy()
    clock.t += 600  # Ready for backoff_reset: the sequence starts again, at once
    assert [b.next_delay(), b.next_delay()] == [0, 10]


def test_wall_clock_is_not_used(monkeypatch):
    import time

    clock = FakeClock()
    b = Backoff(1, 8, 5, clock)
    b.healthy()
    monkeypatch.setattr(time, "time", lambda: 10**12)  # a wall-clock jump changes nothing
    assert b.next_delay() == 0
    b.healthy()
    assert b.next_delay() == 1
    assert b.next_delay() == 2


def test_a_new_key_starts_again_at_base():
    b = Backoff(10, 300, 600, FakeClock())
    assert [b.next_delay("spec1") for _ in range(3)] == [10, 20, 40]
    assert [b.next_delay("spec2") for _ in range(2)] == [10, 20]
    b.healthy()
    assert b.next_delay("spec3") == 0  # a new spec that served: its first crash restarts at once
