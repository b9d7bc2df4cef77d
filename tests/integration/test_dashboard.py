"""The dashboard in a real browser (headless chromium) against a daemon with fake backends and no API
token: the models with their states, a killed backend's restart shown live (no reload, within 1 s of
the event), restart/down/up buttons, an older answer arriving late never undoing a newer one, the
playground streaming through /v1, strings from a manifest, a log and a backend rendered as text, and no
console error. One browser and one daemon for the module."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from .browser import P, api_models, cell, go, open_page, shot, until
from .conftest import Host, manifest
from .test_router import start_router

SCRIPT = "<script>window.__xss = 1</script>"
IMG = "<img src=x onerror=\"window.__xss = 2\">"


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    host = Host(tmp_path_factory.mktemp("dash"))
    host.write("alpha", manifest("alpha", alias=[SCRIPT], env={"FAKE_MODE": "chunks=6,chunk_delay=0.25"}))
    text = manifest("beta").replace("metadata:\n  name: beta\n", f"metadata:\n  name: beta\n  labels:\n    team: '{IMG}'\n")
    host.write("beta", text)
    host.write("gamma", manifest("gamma", enabled=False))
    try:
        host.base = start_router(host)
        host.wait_ready("alpha", "beta")
        yield host
    finally:
        host.cleanup()


@pytest.fixture(scope="module")
def page(dash):
    driver = open_page(dash.base + "/")
    yield driver
    driver.quit()


def test_lists_the_models_with_their_states(dash, page):
    assert page.current_url == dash.base + "/ui/"
    go(page, "models")
    until(lambda: len(page.find_elements("css selector", "#models-table tbody tr")) == 3, what="3 rows", driver=page, host=dash)
    models = api_models(dash)
    until(lambda: cell(page, "alpha", "state") == "Ready" and cell(page, "beta", "state") == "Ready", driver=page, host=dash)
    for name, m in models.items():
        assert cell(page, name, "state") == m["state"]
        assert cell(page, name, "backend") == (m["backend"] or "")
        assert cell(page, name, "port") == str(m["port"] or "")
        assert cell(page, name, "manifest") == f"{name}.yaml"
    badge = page.find_element("css selector", 'tr[data-model="alpha"] .state')
    assert "st-ok" in badge.get_attribute("class")  # colour and text
    assert cell(page, "gamma", "state") == "Stopped"
    assert cell(page, "alpha", "endpoint").startswith(models["alpha"]["endpoint"])
    page.find_element("css selector", '[data-copy="alpha"]').click()
    note = until(lambda: page.find_element("id", "notice").text, what="copy notice", driver=page, host=dash)
    assert f'OpenAI(base_url="{models["alpha"]["endpoint"]}"' in note and 'model="alpha"' in note


def test_keyboard_reaches_the_views_and_the_buttons(dash, page):
    page.get(dash.base + "/ui/#models")
    page.refresh()  # focus starts at the top of a freshly loaded page
    until(lambda: len(page.find_elements("css selector", "#models-table tbody tr")) == 3, driver=page, host=dash)
    stops = []
    for _ in range(14):
        ActionChains(page).send_keys(Keys.TAB).perform()
        el = page.switch_to.active_element
        stops.append((el.tag_name, el.text))
    assert [t for _, t in stops[:5]] == ["xgen-declare", "Models", "GPUs & memory", "Plan", "Playground"], stops
    assert ("a", "alpha") in stops and ("button", "Restart") in stops and ("button", "Copy") in stops, stops
    assert page.execute_script("const el = document.activeElement;"
                               "return el.matches(':focus-visible') && getComputedStyle(el).outlineStyle") == "solid"


def test_dark_and_light_follow_the_system(dash, page):
    background = "return getComputedStyle(document.body).backgroundColor"
    try:
        for scheme, colour in (("dark", "rgb(18, 21, 26)"), ("light", "rgb(247, 248, 250)")):
            page.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                 {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
            assert page.execute_script(background) == colour, scheme
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_a_killed_backend_restarts_live_without_reload(dash, page):
    go(page, "models")
    page.execute_script("""
        window.__marker = 'no reload';
        window.__seen = [];
        window.__live = [];
        const row = document.querySelector('tr[data-model="beta"]');
        new MutationObserver(() => window.__seen.push([Date.now() / 1000, row.dataset.state]))
          .observe(row, {subtree: true, childList: true, characterData: true, attributes: true});
        const live = document.getElementById('live');
        new MutationObserver(() => window.__live.push(live.textContent))
          .observe(live, {subtree: true, childList: true, characterData: true});
    """)
    before = api_models(dash)["beta"]["restarts"]
    killed = time.time()
    os.kill(dash.fake_pid("beta", "main"), signal.SIGKILL)
    until(lambda: cell(page, "beta", "restarts") == str(before + 1) and cell(page, "beta", "state") == "Ready",
          timeout=15, what="beta restarted and Ready", driver=page, host=dash)
    assert page.execute_script("return window.__marker") == "no reload"
    with httpx.stream("GET", dash.base + P + "/events", params={"since": 0, "timeout": 0.3}, timeout=10) as r:
        events = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: ")]
    seen = page.execute_script("return window.__seen")
    changes = [e for e in events if e["type"] == "state" and e["model"] == "beta" and e["time"] > killed - 1]
    assert changes[0]["old"] == "Ready" and changes[-1]["new"] == "Ready", changes
    for i, ev in enumerate(changes):  # each change (or a later one) was on the page within 1 s of its event
        states = {c["new"] for c in changes[i:]}
        shown = [t for t, state in seen if state in states and t >= ev["time"] - 0.05]
        assert shown and shown[0] - ev["time"] < 1.0, (ev, changes, seen)
    # the API's `error` event (the crash) is data, not a broken connection: the stream stayed up
    assert "reconnecting…" not in page.execute_script("return window.__live")


def test_down_up_restart_buttons(dash, page):
    go(page, "models")
    page.find_element("css selector", '[data-action="down"][data-model="beta"]').click()
    until(lambda: cell(page, "beta", "state") == "Stopped (held)", timeout=15, what="beta held", driver=page, host=dash)
    assert "held stopped by `down`" in cell(page, "beta", "problem")
    assert api_models(dash)["beta"]["held"] is True
    page.find_element("css selector", '[data-action="up"][data-model="beta"]').send_keys(Keys.ENTER)  # keyboard
    until(lambda: cell(page, "beta", "state") == "Ready", timeout=15, what="beta Ready again", driver=page, host=dash)
    before = api_models(dash)["alpha"]["restarts"]
    page.find_element("css selector", '[data-action="restart"][data-model="alpha"]').click()
    until(lambda: cell(page, "alpha", "restarts") == str(before + 1) and cell(page, "alpha", "state") == "Ready",
          timeout=15, what="alpha restarted", driver=page, host=dash)
    assert page.find_element("id", "notice").text.startswith("restart alpha: accepted")


HOLD_THE_FIRST_READ = """
    window.__fetch = window.fetch;
    window.__reads = [];
    let release;
    const gate = new Promise((ok) => { release = ok; });
    window.fetch = async (url, init) => {
      if (!String(url).endsWith('/api/management/models')) return window.__fetch(url, init);
      const n = window.__reads.push('asked') - 1;
      const r = await window.__fetch(url, init);
      if (n > 1) return r;
      if (n === 1) {  // the newer read answers first; the older one is let go a little later
        window.__reads[n] = 'answered';
        setTimeout(release, 200);
        return r;
      }
      const body = await r.json();  // the older read: what a read made before the stop ended says
      for (const m of body.models) if (m.name === 'beta') m.state = 'Stopping';
      await gate;
      window.__reads[n] = 'answered late';
      return new Response(JSON.stringify(body), {status: 200, headers: {'Content-Type': 'application/json'}});
    };
"""


def test_an_older_answer_arriving_late_never_undoes_a_newer_one(dash, page):
    """The page re-reads the models on every event and action, and the API answers each read in its own
    thread: answers can come back out of order (CI once saw beta left "Stopping" after it had stopped).
    Two reads in flight, the older one answered last with the older state: the page keeps the newer."""
    go(page, "models")
    down = '[data-action="down"][data-model="beta"]'
    page.find_element("css selector", down).click()
    until(lambda: cell(page, "beta", "state") == "Stopped (held)", timeout=15, what="beta held", driver=page, host=dash)
    page.execute_script(HOLD_THE_FIRST_READ)
    try:
        page.find_element("css selector", down).click()  # a read of the models after the answer (held back)
        until(lambda: page.execute_script("return window.__reads.length") >= 1, what="the first read", driver=page,
              host=dash)
        page.find_element("css selector", down).click()  # a second read, answered at once
        until(lambda: page.execute_script("return window.__reads[0]") == "answered late", what="the late answer",
              driver=page, host=dash)
        time.sleep(0.3)
        assert page.execute_script("return window.__reads.slice(0, 2)") == ["answered late", "answered"]
        assert cell(page, "beta", "state") == "Stopped (held)"
    finally:
        page.execute_script("window.fetch = window.__fetch;")
        page.find_element("css selector", '[data-action="up"][data-model="beta"]').click()
    until(lambda: cell(page, "beta", "state") == "Ready", timeout=15, what="beta Ready again", driver=page, host=dash)


def test_the_playground_streams_an_answer(dash, page):
    go(page, "playground")
    until(lambda: page.find_elements("css selector", '#play-model option[value="alpha"]'), driver=page, host=dash)
    page.find_element("css selector", '#play-model option[value="alpha"]').click()
    page.find_element("id", "play-send").click()
    out = page.find_element("id", "play-output")
    partial = until(lambda: "chunk 0" in out.text and out.text, what="first chunk", driver=page, host=dash)
    assert "chunk 5" not in partial  # shown while the answer still streams
    until(lambda: "fake alpha: chunk 5" in out.text, what="whole answer", driver=page, host=dash)
    until(lambda: page.find_element("id", "play-stats").text.startswith("done: alpha"), driver=page, host=dash)
    assert out.text.startswith("fake alpha: chunk 0. fake alpha: chunk 1.")
    shot(page, "dashboard-playground")


def test_markup_from_manifests_logs_and_backends_stays_text(dash, page):
    page.get(dash.base + "/ui/#model/beta")
    labels = until(lambda: page.find_element("css selector", '#model-body dd[data-fact="labels"]').text, driver=page, host=dash)
    assert labels == f"team={IMG}"
    page.get(dash.base + "/ui/#model/alpha")
    aliases = until(lambda: page.find_element("css selector", '#model-body dd[data-fact="aliases"]').text, driver=page, host=dash)
    assert aliases == SCRIPT
    argv = [li.text for li in page.find_elements("css selector", "#model-argv li")]
    assert f"alpha,{SCRIPT}" in argv
    log = until(lambda: SCRIPT in page.find_element("id", "model-log").text and page.find_element("id", "model-log"),
                what="the alias in the log", driver=page, host=dash)
    assert "fake: ready on" in log.text
    assert page.execute_script("return window.__xss") is None
    assert page.find_elements("css selector", "#model-body img, #model-body script") == []
    events = page.find_element("id", "model-events").text
    assert "Starting → Ready" in events
    assert page.find_element("css selector", '#model-router dd[data-fact="requests"]').text == "1 × 200"  # playground
    shot(page, "dashboard-model")


def test_the_log_follows_live(dash, page):
    page.get(dash.base + "/ui/#model/alpha")
    log = until(lambda: "fake: ready on" in page.find_element("id", "model-log").text
                and page.find_element("id", "model-log"), driver=page, host=dash)
    with open(dash.state / "logs" / "alpha.log", "a") as f:
        f.write(f"a line written now {IMG}\n")
    until(lambda: f"a line written now {IMG}" in log.text, timeout=15, what="the new line", driver=page, host=dash)


def test_a_local_dir_daemon_shows_no_source_panel_and_no_fleet_tab(dash, page):
    page.get(dash.base + "/ui/#models")
    until(lambda: len(page.find_elements("css selector", "#models-table tbody tr")) == 3, driver=page, host=dash)
    until(lambda: page.execute_script("return performance.getEntriesByType('resource').some("
                                      "(e) => e.name.endsWith('/api/management/views') && e.responseEnd > 0)"),
          what="GET views answered", driver=page, host=dash)
    time.sleep(0.2)
    panel = page.find_element("id", "source-panel")
    assert not panel.is_displayed() and panel.text == ""
    assert not page.find_element("css selector", 'nav a[data-view="fleet"]').is_displayed()
    assert httpx.get(dash.base + P + "/views", timeout=10).json() == {"source": False, "fleet": False}


def test_no_console_errors(dash, page):
    page.get(page.current_url.split("#")[0] + "#plan")
    until(lambda: page.find_elements("css selector", "#plan-table tbody tr"), driver=page, host=dash)
    assert page.console.severe() == []
