"""Debian's chromium, headless, driven by Selenium through Debian's chromedriver (no browser download:
scripts/install-browser.sh installs both with apt). Missing pieces skip the browser tests locally and
fail them under CI (env CI set), so CI can never pass without running them.

`until(fn)` polls the page without reloading it; `severe_logs` returns the console entries of level
SEVERE (JavaScript errors, console.error, failed requests); `shot` saves a screenshot when
XGEN_DASHBOARD_SHOTS names a directory (scripts/dashboard-screenshots.sh sets it).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("XGEN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("XGEN_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
PHONE = (390, 844)


def _missing(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set: the browser tests cannot run: {why}", pytrace=False)
    pytest.skip(why)


def launch(size: tuple[int, int] = DESKTOP):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[test]')")
    for path, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
        if not os.access(path, os.X_OK):
            _missing(f"{what} not found at {path} (scripts/install-browser.sh installs Debian's chromium and "
                     "chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or a driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


def until(fn, timeout: float = 10.0, what: str = "condition", driver=None, host=None):
    """fn()'s first truthy value, polling every 50 ms (stale elements count as not yet). On a timeout the
    message shows the page's text and, with `host`, what the API says now and the daemon log's tail."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (StaleElementReferenceException, NoSuchElementException) as exc:
            last = exc
        time.sleep(0.05)
    page = driver.find_element("tag name", "body").text[-3000:] if driver is not None else ""
    more = ""
    if host is not None:
        try:
            now = {n: (m["state"], m["pid"], m["held"]) for n, m in api_models(host).items()}
        except Exception as exc:  # noqa: BLE001 - the diagnosis must not hide the timeout
            now = repr(exc)
        more = f"\nAPI now (state, pid, held): {now}\ndaemon log (tail):\n{host.daemon_log()[-4000:]}"
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\npage:\n{page}{more}")


class Console:
    """Every console entry the browser logged (Selenium's log is drained on each read, so keep them)."""

    def __init__(self, driver):
        self.driver, self.entries = driver, []

    def read(self) -> list[dict]:
        self.entries.extend(self.driver.get_log("browser"))
        return self.entries

    def severe(self, allowed: tuple[str, ...] = ()) -> list[dict]:
        return [e for e in self.read() if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]


def shot(driver, name: str, size: tuple[int, int] | None = None) -> None:
    where = os.environ.get("XGEN_DASHBOARD_SHOTS")
    if not where:
        return
    if size is not None:
        driver.set_window_size(*size)
        time.sleep(0.3)
    # the whole page, not just the window: size the window to the document's height
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(height + 100, 600))
    time.sleep(0.3)
    Path(where).mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(Path(where) / f"{name}.png"))
    driver.set_window_size(*(size or DESKTOP))
    if size is not None:
        driver.set_window_size(*DESKTOP)
    time.sleep(0.2)


P = "/api/management"


def open_page(url: str):
    """A desktop-sized browser on `url`, its console collected (driver.console); the caller quits it."""
    driver = launch(DESKTOP)
    driver.console = Console(driver)
    driver.get(url)
    return driver


def api_models(dash) -> dict[str, dict]:
    return {m["name"]: m for m in httpx.get(dash.base + P + "/models", timeout=10).json()["models"]}


def cell(page, model: str, col: str) -> str:
    return page.find_element("css selector", f'tr[data-model="{model}"] td[data-col="{col}"]').text


def go(page, view: str) -> None:
    page.find_element("css selector", f'nav a[data-view="{view}"]').click()
