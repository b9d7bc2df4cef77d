"""The inventory tests' fake hosts (sysfs/proc trees, fake executables on PATH) serve the selection tests too."""

from tests.unit.inventory.conftest import fake_bin, host_fixture, isolated_host, sysfs  # noqa: F401
