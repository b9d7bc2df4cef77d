"""The dashboard's memory and plan views and its token flow, in a real browser, against a daemon with an
API token on a fake 16 GiB GPU (rx6800 sysfs fixture; vLLM fakes reserve gpu_memory_utilization x 16 GiB,
margin 6000 MiB): the GPU bars show what GET models says, a model that does not fit shows the ledger's
reason, and restart/down/up ask for the token once (a 401 is shown to the user)."""

from __future__ import annotations

import httpx
import pytest

from .browser import DESKTOP, PHONE, P, api_models, cell, go, open_page, shot, until
from .conftest import Host
from .test_router import start_router
from .test_router_ondemand import RX6800, gpu_host, vllm

TOKEN = "dash-token"


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    host = Host(tmp_path_factory.mktemp("dashmem"))
    gpu_host(host, margin_mib=6000)  # usable ~10.1 GiB of 16 GiB
    host.write("base", vllm("base", 0.5, activation="always"))    # 8 GiB
    host.write("small", vllm("small", 0.1, activation="always"))  # 1.6 GiB
    host.write("huge", vllm("huge", 0.3, activation="always"))    # 4.8 GiB: does not fit next to them
    try:
        host.base = start_router(host, token=TOKEN)
        host.wait_ready("base", "small")
        host.wait(lambda s: s["huge"]["state"] == "Blocked", 10, "huge Blocked")
        yield host
    finally:
        host.cleanup()


@pytest.fixture(scope="module")
def page(dash):
    driver = open_page(dash.base + "/ui/")
    yield driver
    driver.quit()


def test_gpu_bars_match_the_api_memory_figures(dash, page):
    go(page, "gpus")
    card = '#devices .card[data-device="GPU0"]'
    segs = until(lambda: len(page.find_elements("css selector", card + " .bar .seg")) == 2
                 and page.find_elements("css selector", card + " .bar .seg"), what="two segments", driver=page, host=dash)
    shown = {(s.get_attribute("data-model"), s.get_attribute("data-device")):
             (int(s.get_attribute("data-bytes")), s.get_attribute("data-source")) for s in segs}
    models = api_models(dash)
    want = {(name, dev): b for name, m in models.items() if m["memory"] and not m["memory"]["blocked"]
            for dev, b in m["memory"]["bytes"].items() if dev == "GPU0"}
    assert shown == {k: (b, "reserved") for k, b in want.items()} and set(want) == {("base", "GPU0"), ("small", "GPU0")}
    ledger = httpx.get(dash.base + P + "/ledger", timeout=10).json()
    gpu0 = next(d for d in ledger["devices"] if d["device"] == "GPU0")
    line = page.find_element("css selector", card + " .bar .usable")
    assert float(line.get_attribute("data-usable-mib")) == gpu0["usable_mib"]
    text = page.find_element("css selector", card).text
    assert f"margin {ledger['margin_mib']} MiB" in text and "total 16.0 GiB" in text
    shot(page, "dashboard-gpus")
    shot(page, "dashboard-gpus-phone", PHONE)


def test_an_overcommit_shows_the_ledger_reason(dash, page):
    reason = api_models(dash)["huge"]["memory"]["blocked"]
    assert reason.startswith("overcommit: huge: 4.8 GiB on GPU0 + base: 8.0 GiB + small: 1.6 GiB > ")
    go(page, "gpus")
    item = until(lambda: page.find_element("css selector", '#devices .reasons li[data-model="huge"]'), driver=page, host=dash)
    assert item.text == f"huge (Blocked) needs 4.8 GiB on GPU0, not admitted: {reason}"
    assert "overcommit" in item.get_attribute("class")
    go(page, "models")
    until(lambda: reason in cell(page, "huge", "problem"), what="the reason in the table", driver=page, host=dash)
    assert cell(page, "huge", "state") == "Blocked"
    assert cell(page, "base", "gpus") == "0" and cell(page, "base", "memory") == "8.0 GiB reserved"
    shot(page, "dashboard-models")
    shot(page, "dashboard-models-phone", PHONE)
    for size in (DESKTOP, PHONE):  # nothing is cut off: no horizontal scrolling, of the page or the table
        page.set_window_size(*size)
        until(lambda: page.execute_script(
            "const w = document.querySelector('.table-wrap'), d = document.documentElement;"
            "return w.scrollWidth <= w.clientWidth && d.scrollWidth <= d.clientWidth"), what=f"no overflow at {size}",
            driver=page, host=dash)
    page.set_window_size(*DESKTOP)
    go(page, "plan")
    row = until(lambda: page.find_element("css selector", '#plan-table tr[data-model="huge"]'), driver=page, host=dash)
    assert row.get_attribute("data-kind") == "blocked" and reason in row.text
    fit = until(lambda: page.find_element("css selector", '#plan-body li[data-device="GPU0"]').text, driver=page, host=dash)
    assert fit.startswith("GPU0: 9.6 GiB used of 10.1 GiB usable → ") and fit.endswith(" left for more models")
    shot(page, "dashboard-plan")


def test_actions_ask_for_the_token_and_show_the_401(dash, page):
    go(page, "models")
    page.find_element("css selector", '[data-action="down"][data-model="small"]').click()
    form = page.find_element("id", "token-form")
    until(form.is_displayed, what="the token form", driver=page, host=dash)
    notice = page.find_element("id", "notice")
    assert notice.text.startswith("401 Unauthorized: this endpoint changes state and needs `Authorization: Bearer")
    assert page.switch_to.active_element == page.find_element("id", "token-input")
    page.find_element("id", "token-input").send_keys("wrong")
    page.find_element("css selector", '#token-form button[type="submit"]').click()
    until(lambda: "refused" in page.find_element("id", "token-why").text, what="the wrong token refused", driver=page, host=dash)
    assert form.is_displayed() and notice.text.startswith("401 Unauthorized")
    assert api_models(dash)["small"]["held"] is False
    page.find_element("id", "token-input").send_keys(TOKEN)
    page.find_element("css selector", '#token-form button[type="submit"]').click()
    until(lambda: cell(page, "small", "state") == "Stopped (held)", timeout=15, what="small held", driver=page, host=dash)
    assert not form.is_displayed() and notice.text.startswith("down small: ")
    page.find_element("css selector", '[data-action="up"][data-model="small"]').click()  # the token is kept
    until(lambda: cell(page, "small", "state") == "Ready", timeout=15, what="small Ready", driver=page, host=dash)
    assert not form.is_displayed()
    assert page.execute_script("return sessionStorage.getItem('xgen-declare-token')") == TOKEN


def test_cancelling_the_token_form_shows_the_401(dash, page):
    page.execute_script("sessionStorage.clear()")
    page.find_element("css selector", '[data-action="restart"][data-model="small"]').click()
    until(page.find_element("id", "token-form").is_displayed, driver=page, host=dash)
    page.find_element("id", "token-cancel").click()
    until(lambda: page.find_element("id", "notice").text.startswith("restart small: 401: this endpoint changes state"),
          what="the 401 after cancelling", driver=page, host=dash)
    assert api_models(dash)["small"]["restarts"] == 0


def test_no_console_errors_but_the_expected_401s(page):
    assert page.console.severe(allowed=("status of 401",)) == []
    assert [e for e in page.console.read() if "401" in e["message"]]  # the refused writes were logged


STRIX = RX6800.parent / "strix-halo"


def test_an_integrated_gpu_is_drawn_as_one_pool_with_the_host(tmp_path, page):
    host = Host(tmp_path)
    host.env["XGEN_SYSFS_ROOT"] = str(STRIX)  # gfx1151: an iGPU sharing the host's memory
    host.config(binaries={"vllm-rocm": str(host.fake)})
    host.write("apu", vllm("apu", 0.2, activation="always"))
    try:
        base = start_router(host)
        host.wait_ready("apu")
        page.get(base + "/ui/#gpus")
        card = '#devices .card[data-device="GPU0+host"]'
        title = until(lambda: page.find_element("css selector", card + " h3").text, driver=page, host=dash)
        assert title == "Shared memory pool: GPU0 + hostintegrated GPU: shares the host memory"
        memory = httpx.get(base + P + "/models/apu", timeout=10).json()["memory"]
        seg = until(lambda: page.find_element("css selector", card + " .bar .seg"), driver=page, host=dash)
        assert (seg.get_attribute("data-model"), seg.get_attribute("data-device")) == ("apu", "GPU0")
        assert int(seg.get_attribute("data-bytes")) == memory["bytes"]["GPU0"]
        ledger = httpx.get(base + P + "/ledger", timeout=10).json()
        assert [d["shared_pool"] for d in ledger["devices"]] == [True, True]
        usable = min(d["usable_mib"] for d in ledger["devices"])  # the pool is bounded by its tighter side
        line = page.find_element("css selector", card + " .bar .usable")
        assert float(line.get_attribute("data-usable-mib")) == usable
        assert page.find_elements("css selector", '#devices .card[data-device="GPU0"]') == []
    finally:
        host.cleanup()
