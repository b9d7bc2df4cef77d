"""Fixtures shared by the Supervisor and daemon unit tests: fake processes, a fake clock, a failing writer."""

from __future__ import annotations

import errno

import pytest

from xgen_declare.testing.fakes import FailingWriter, FakeClock, FakeProcesses


@pytest.fixture
def world(monkeypatch):
    return FakeProcesses().install(monkeypatch)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def writer():
    return FailingWriter(errno.EROFS)
