"""store/stream.py: the store's GET (huggingface_hub's http_get in 1 MiB pieces) against the fake hub's plain
files: the pieces, a resume with Range, a dropped connection resumed within the call, the size check."""

from __future__ import annotations

import io
import os

import pytest

pytest.importorskip("huggingface_hub")

from xgen_declare.store import stream  # noqa: E402
from xgen_declare.store.stream import CHUNK, get_into  # noqa: E402
from xgen_declare.testing.deadline import within  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402

DATA = os.urandom(CHUNK) * 3 + b"tail"


class Bar:
    """The tqdm-like class get_into creates once per call: records what it is told."""
    made: list["Bar"] = []

    def __init__(self, *, total, initial):
        self.total, self.initial, self.updates = total, initial, []
        Bar.made.append(self)

    def update(self, n):
        self.updates.append(n)


@pytest.fixture
def hub():
    with FakeHub() as h:
        yield h
    Bar.made.clear()


def gets(hub: FakeHub) -> list:
    return [r["range"] for r in hub.requests if r["path"] == "/files/m.gguf" and r["method"] == "GET"]


def test_the_body_arrives_in_pieces_of_at_most_one_mib(hub):
    url = hub.add_file("m.gguf", DATA)
    out = io.BytesIO()
    within(30, lambda: get_into(url, out, resume=0, headers={}, expected_size=len(DATA), bar=Bar))
    assert out.getvalue() == DATA and gets(hub) == [None]
    (bar,) = Bar.made
    assert (bar.total, bar.initial, sum(bar.updates)) == (len(DATA), 0, len(DATA))
    assert max(bar.updates) == CHUNK and len(bar.updates) == 4  # three whole pieces and the tail


def test_a_resume_asks_for_the_rest_and_a_dropped_connection_resumes_from_the_last_whole_piece(hub, monkeypatch):
    monkeypatch.setattr(stream, "RETRY_WAIT", 0.01)
    url = hub.add_file("m.gguf", DATA)
    hub.faults.drop_after = {"m.gguf": CHUNK // 2}  # the first answer is cut half a piece after its start
    hub.faults.drop_times = 1
    out = io.BytesIO(DATA[:CHUNK])
    out.seek(0, io.SEEK_END)
    within(30, lambda: get_into(url, out, resume=CHUNK, headers={}, expected_size=len(DATA), bar=Bar))
    assert out.getvalue() == DATA
    assert gets(hub) == [f"bytes={CHUNK}-", f"bytes={CHUNK}-"]  # nothing of the cut piece had been written
    assert Bar.made[0].initial == CHUNK and len(Bar.made) == 1  # one bar across the retry


def test_a_file_of_another_size_than_expected_is_an_error(hub):
    url = hub.add_file("m.gguf", DATA)
    with pytest.raises(OSError) as err:
        within(30, lambda: get_into(url, io.BytesIO(), resume=0, headers={}, expected_size=len(DATA) + 1, bar=Bar))
    assert str(err.value) == (f"Consistency check failed: file should be of size {len(DATA) + 1} but has size "
                              f"{len(DATA)} ({url}); a network error while downloading it: retry")


def test_nothing_is_asked_when_the_partial_file_is_whole(hub):
    url = hub.add_file("m.gguf", DATA)
    get_into(url, io.BytesIO(DATA), resume=len(DATA), headers={}, expected_size=len(DATA), bar=Bar)
    assert gets(hub) == [] and Bar.made == []
