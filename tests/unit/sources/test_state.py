"""sources/state.py: the pin and last-poll files written atomically and read bounded (a link, a FIFO or
a damaged file is named, never followed or hung on); the source lock between processes."""

from __future__ import annotations

import os

import pytest

from xgen_declare.sources import state
from xgen_declare.sources.state import SourceBusy, StateFileError

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_pin_round_trip_and_clear(tmp_path):
    assert state.read_pin(tmp_path) is None
    assert state.write_pin(tmp_path, SHA, None, now=5.0) == {"commit": SHA, "before": None, "at": 5.0}
    assert state.read_pin(tmp_path) == {"commit": SHA, "before": None, "at": 5.0}
    assert sorted(os.listdir(tmp_path)) == ["pin"]  # no temporary file left behind
    assert state.clear_pin(tmp_path) is True and state.clear_pin(tmp_path) is False


@pytest.mark.parametrize("text", ['{"commit": "main"}', '{"commit": "' + SHA.upper() + '"}', "{}", "[]", "{"])
def test_a_damaged_pin_is_an_error_naming_the_file(tmp_path, text):
    (tmp_path / "pin").write_text(text)
    with pytest.raises(StateFileError) as exc:
        state.read_pin(tmp_path)
    assert str(exc.value) in (
        f"{tmp_path / 'pin'} does not hold a commit id (run `xgen-declare pin COMMIT` again, or "
        "`xgen-declare unpin`)",
        f"{tmp_path / 'pin'} is not a JSON object (remove it; xgen-declare writes it)")


def test_a_link_or_a_fifo_at_a_state_file_is_refused(tmp_path):
    (tmp_path / "elsewhere").write_text('{"commit": "%s"}' % SHA)
    os.symlink(tmp_path / "elsewhere", tmp_path / "pin")
    with pytest.raises(StateFileError) as exc:
        state.read_pin(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / 'pin'}: is a symlink, and this file may not be one")
    os.mkfifo(tmp_path / "last_poll")
    with pytest.raises(StateFileError) as exc:
        state.read_json(tmp_path / "last_poll")
    assert str(exc.value).startswith(f"{tmp_path / 'last_poll'}: is a FIFO (named pipe), not a regular file")


def test_a_write_that_fails_names_the_file(tmp_path):
    (tmp_path / "pin").mkdir()  # rename(2) of a file over a directory fails
    with pytest.raises(StateFileError) as exc:
        state.write_pin(tmp_path, SHA, None)
    assert str(exc.value) == (f"cannot write {tmp_path / 'pin'}: Is a directory (check the state dir's permissions "
                              "and free space)")
    assert os.listdir(tmp_path) == ["pin"]


def test_the_lock_is_held_against_a_second_holder_until_released(tmp_path):
    now = [0.0]
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        now[0] += seconds

    with state.locked(tmp_path, wait=1):
        with pytest.raises(SourceBusy) as exc:
            with state.locked(tmp_path, wait=0.2, clock=lambda: now[0], pause=pause):
                pass  # pragma: no cover - never entered
        assert len(pauses) == 4  # polled every 0.05 s on the injected clock until the wait ran out
    assert str(exc.value) == (f"another xgen-declare is syncing this source ({tmp_path / 'lock'} is held for over "
                              "0.2 s); try again later")
    with state.locked(tmp_path, wait=0, clock=lambda: now[0], pause=pause):
        pass  # released: taken at once
