"""The dashboard's views of issues #24 and #23 in a real browser (headless chromium): the git source panel
(the commit applied and when, then an unsigned commit fetched and refused: "not applied" with the reason
and the last error), the Fleet view (every model on every host with its commit, an unreachable host a row
with the reason, "commit X serves on all N hosts"), and a Downloading model's progress bar fed by a slow
fake hub. Real daemons over fake backends; the repository served by the real `git http-backend`, commits
signed with an SSH key made in the test. Every wait is bounded."""

from __future__ import annotations

import json
import os
import re
import time

import httpx
import pytest

from xgen_declare.testing.gitrepos import SshSigner, WorkRepo, write_allowed_signers
from xgen_declare.testing.gitserver import GitHttpServer
from xgen_declare.testing.harness import free_port

from .browser import P, cell, go, open_page, shot, until
from .conftest import Host, manifest

MIB = 1024 * 1024


def wait_api(host, base: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/metrics", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("API did not come up:\n" + host.daemon_log()[-3000:])


def fact(page, key: str) -> str:
    return page.find_element("css selector", f'#source-panel dd[data-fact="{key}"]').text


def fleet_rows(page) -> list[list[str]]:
    return [[td.text for td in tr.find_elements("css selector", "td")]
            for tr in page.find_elements("css selector", "#fleet-table tbody tr")]


@pytest.fixture(scope="module")
def gitdash(tmp_path_factory):
    """A daemon following a served repository (signed commits only), with an API and `fleet.hosts` naming
    itself and a host that is not there."""
    root = tmp_path_factory.mktemp("gitdash")
    (root / "host").mkdir()
    host = Host(root / "host")
    alice = SshSigner.generate(root / "keys", "alice@example.org")
    repo = WorkRepo.create(root / "work", bare=root / "srv" / "config.git")
    write_allowed_signers(root / "allowed_signers", [alice])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (root / "hosts.yaml").write_text(json.dumps({"timeout": "2s", "hosts": [
        {"name": "self", "url": base}, {"name": "gone", "url": f"http://127.0.0.1:{free_port()}"}]}))
    with GitHttpServer(root / "srv") as srv:
        try:
            first = repo.commit({"manifests/a.yaml": manifest("a")}, "a", signer=alice)
            repo.push()
            cfg = json.loads((host.manifests / "xgen-declare.yaml").read_text())
            cfg.update({"api": {"port": port}, "fleet": {"hosts": str(root / "hosts.yaml")},
                        "source": {"git": srv.url("config.git"), "ref": "main", "path": "manifests",
                                   "interval": "1s", "verify": {"allowed_signers": str(root / "allowed_signers")}}})
            (root / "host.yaml").write_text(json.dumps(cfg))
            host.start("--config", str(root / "host.yaml"), "--api", target=())
            wait_api(host, base)
            host.wait_ready("a", timeout=30)
            host.base_url, host.first, host.repo, host.alice, host.srv = base, first, repo, alice, srv
            host.hosts_file = root / "hosts.yaml"
            yield host
        finally:
            host.cleanup()


@pytest.fixture(scope="module")
def page(gitdash):
    driver = open_page(gitdash.base_url + "/ui/")
    yield driver
    driver.quit()


def test_the_source_panel_shows_the_commit_applied(gitdash, page):
    first = gitdash.first
    until(lambda: page.find_element("id", "source-panel").is_displayed() and first[:12] in fact(page, "applied"),
          what="the source panel with the first commit", driver=page, host=gitdash)
    src = httpx.get(gitdash.base_url + P + "/source", timeout=10).json()
    applied = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(src["serving"]["at"]))
    assert fact(page, "source") == f"{gitdash.srv.url('config.git')}#main//manifests"
    assert fact(page, "applied") == f"{first[:12]} since {applied}"
    assert fact(page, "verify") == "signed commits only (source.verify.allowed_signers)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: (unchanged|switched)", fact(page, "last poll"))
    assert page.find_elements("css selector", '#source-panel dd[data-fact="not applied"]') == []
    assert page.find_elements("css selector", '#source-panel dd[data-fact="last error"]') == []
    assert page.find_elements("css selector", '#source-panel dd[data-fact="pinned"]') == []


def test_the_fleet_view_lists_every_host_and_answers_for_the_commit(gitdash, page):
    first = gitdash.first
    tab = page.find_element("css selector", 'nav a[data-view="fleet"]')
    until(tab.is_displayed, what="the Fleet tab", driver=page, host=gitdash)
    go(page, "fleet")
    rows = until(lambda: len(fleet_rows(page)) == 2 and fleet_rows(page), what="two fleet rows", driver=page,
                 host=gitdash)
    # the daemon answered its own API while GET fleet was in flight: the collection is off its event loop
    assert rows[0] == ["self", first[:12], "a", "Ready", first[:12], ""]
    assert rows[1][:5] == ["gone", "-", "-", "unreachable", "-"] and rows[1][5].startswith("unreachable: ConnectError")
    assert page.find_element("id", "fleet-answer").text == f"commit {first[:12]} is not serving everywhere:"
    assert page.find_element("id", "fleet-missing").text == f"gone: {rows[1][5]}"
    shot(page, "dashboard-fleet")
    hosts = json.loads(gitdash.hosts_file.read_text())
    hosts["hosts"] = hosts["hosts"][:1]
    gitdash.hosts_file.write_text(json.dumps(hosts))  # read again at each collection
    time.sleep(2.1)  # past the answer the API reuses (api/fleet.py FRESH)
    page.find_element("id", "fleet-refresh").click()
    until(lambda: page.find_element("id", "fleet-answer").text == f"commit {first[:12]} serves on all 1 host",
          what="the commit everywhere", driver=page, host=gitdash)
    assert fleet_rows(page) == [["self", first[:12], "a", "Ready", first[:12], ""]]
    assert page.find_elements("id", "fleet-missing") == []


def test_an_unsigned_commit_is_shown_fetched_not_applied_with_the_reason(gitdash, page):
    first = gitdash.first
    go(page, "models")
    bad = gitdash.repo.commit({"manifests/a.yaml": manifest("a", ctx_size=8192)}, "unsigned change")
    gitdash.repo.push()
    until(lambda: bad[:12] in fact(page, "not applied"), timeout=20, what="the refused commit", driver=page,
          host=gitdash)
    src = httpx.get(gitdash.base_url + P + "/source", timeout=10).json()
    assert src["last_poll"]["reason"] == "unsigned" and src["serving"]["commit"] == first
    assert fact(page, "not applied") == f"{bad[:12]} fetched, not applied: unsigned"
    assert fact(page, "last error") == src["last_poll"]["error"]
    assert src["last_poll"]["error"].startswith(f"commit {bad[:12]} is not signed")
    assert fact(page, "applied").startswith(first[:12])
    assert "refused" in page.find_element("id", "source-panel").get_attribute("class")
    go(page, "fleet")
    time.sleep(2.1)  # past the answer the API reuses (api/fleet.py FRESH)
    page.find_element("id", "fleet-refresh").click()
    refusal = until(lambda: page.find_elements("id", "fleet-refusals") and page.find_element("id", "fleet-refusals").text,
                    what="the refusal under the fleet table", driver=page, host=gitdash)
    assert refusal == f"self: refused {bad[:12]}: {src['last_poll']['error']}"
    assert page.console.severe() == []


def test_a_pin_is_shown_with_how_to_follow_the_ref_again(gitdash, page):
    first = gitdash.first
    go(page, "models")
    r = gitdash.cli("pin", first, "--config", str(gitdash.root.parent / "host.yaml"))
    assert r.returncode == 0, r.stderr
    pinned = until(lambda: fact(page, "pinned"), timeout=20, what="the pin", driver=page, host=gitdash)
    pin = httpx.get(gitdash.base_url + P + "/source", timeout=10).json()["pin"]
    assert pinned == (f"{first[:12]} since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(pin['at']))} "
                      f"(was {first[:12]}; xgen-declare unpin follows main again)")
    assert fact(page, "applied").startswith(first[:12])
    assert page.console.severe() == []


# ---- a download's progress bar -----------------------------------------------------------------------

def test_a_downloading_model_shows_a_progress_bar(host):
    pytest.importorskip("huggingface_hub")
    from xgen_declare.testing.fakehub import FakeHub

    from .test_router import start_router
    from .test_store_daemon import REPO, SMALL, configure, hub_manifest

    big = os.urandom(24 * MIB)
    with FakeHub() as hub:
        hub.add_repo(REPO, {"tiny.Q4_K_M.gguf": SMALL, "big.Q8_0.gguf": big})
        hub.faults.rate = 2 * MIB  # the store reports progress per 1 MiB piece (store/stream.py)
        held = hub.hold("big.Q8_0.gguf", 10 * MIB)  # the bar is looked at while the body waits here
        host.env["HF_ENDPOINT"] = hub.endpoint
        host.env.pop("HF_HUB_OFFLINE", None)
        configure(host)
        host.write("big", hub_manifest("big", "hf://org/tiny-GGUF:Q8_0"))
        base = start_router(host)
        driver = open_page(base + "/ui/")
        try:
            bar = '#models-table tr[data-model="big"] .download'
            shown = until(lambda: [e for e in driver.find_elements("css selector", bar)
                                   if int(e.get_attribute("data-done")) >= 10 * MIB], timeout=30,
                          what="a progress bar with the bytes before the hold done", driver=driver, host=host)[0]
            done, total = int(shown.get_attribute("data-done")), int(shown.get_attribute("data-total"))
            assert total == len(big) and 10 * MIB <= done < total and done % MIB == 0
            assert cell(driver, "big", "state").startswith("Downloading")
            progress = shown.find_element("css selector", "progress")
            assert (int(float(progress.get_attribute("value"))), int(progress.get_attribute("max"))) == (done, total)
            text = shown.find_element("css selector", ".dl-text").text
            assert re.fullmatch(rf"{done / MIB:.1f}/24\.0 MiB · [0-9.]+ MiB/s · ETA [0-9]+s "
                                rf"\({100 * done // total}%\)", text), text
            shot(driver, "dashboard-downloading")
            driver.execute_script("location.hash = '#model/big'")  # the detail shows it too
            detail = until(lambda: driver.find_elements("css selector", '#model-facts dd[data-fact="download"] .download'),
                           what="the bar in the detail", driver=driver, host=host)[0]
            assert int(detail.get_attribute("data-total")) == total and detail.find_elements("css selector", "progress")
            held.release.set()
            go(driver, "models")
            until(lambda: cell(driver, "big", "state") == "Ready", timeout=40, what="big Ready", driver=driver,
                  host=host)
            assert driver.find_elements("css selector", bar) == []  # gone with the download
            assert driver.console.severe() == []
        finally:
            driver.quit()
