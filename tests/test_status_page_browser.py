"""The status page in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
chromedriver (nothing downloads a browser), against `botwatch up --timings fast` and its demo fleet.

Log in; every demo bot has its row; Pause one for 30 minutes with a reason; kill -9 it: it stays down (the
remediator holds its restart) and its row says paused; Resume: it is restarted. A form posted without its CSRF
token is refused; three wrong passwords lock the name out. Screenshots of each step go to
var/test-output/status-page/ for a person to look at.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import BOTWATCH, ROOT, http_get, kill_pidfile, wait_for

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = Path(os.environ.get("BOTWATCH_TEST_OUTPUT", ROOT / "var" / "test-output")) / "status-page"
VICTIM = "doge-long"


@contextlib.contextmanager
def demo_stack(state: Path):
    """`botwatch up --timings fast` with the demo fleet, until the block ends; then every bot is stopped."""
    process = subprocess.Popen(BOTWATCH + ["up", "--timings", "fast", "--state-dir", str(state)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    info = None
    try:
        info = wait_for(lambda: json.loads((state / "stack.json").read_text()), timeout=120, what="stack.json")
        yield info
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
        for bot in (info or {}).get("bots", {}).values():
            kill_pidfile(bot["pidfile"])
        assert process.returncode == 0, output


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromium-driver are not installed: `make deps` installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def pid_of(info: dict, bot: str) -> int | None:
    try:
        return int(Path(info["bots"][bot]["pidfile"]).read_text())
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    try:
        return pid is not None and ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


def prometheus(info: dict, expr: str) -> float | None:
    body = json.loads(http_get(f"{info['prometheus']}/api/v1/query?query={urllib.parse.quote(expr)}"))
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def row_text(driver, bot: str) -> str:
    from selenium.common.exceptions import StaleElementReferenceException, NoSuchElementException
    from selenium.webdriver.common.by import By
    try:
        return driver.find_element(By.CSS_SELECTOR, f'tr[data-bot="{bot}"]').text
    except (StaleElementReferenceException, NoSuchElementException):     # the board was just refreshed
        return ""


def log_in(driver, base: str, name: str, password: str) -> None:
    """Fill the login form and submit it; back once the answer is the page shown (the form gone stale)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(f"{base}/login")
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password)
    button = driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]")
    button.click()
    WebDriverWait(driver, 60).until(lambda _: gone(button))


def gone(element) -> bool:
    """The element left the document (the page moved on). Chromedriver says so as a stale element, or, when the
    page is replaced mid-call, as an inspector error "Node with given id does not belong to the document" (seen
    once on a loaded fresh clone, at the login's submit)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as err:
        if "does not belong to the document" in str(err):
            return True
        raise
    return False


def test_pause_kill_resume_from_the_status_page_in_chromium(tmp_path, browser):
    from selenium.webdriver.common.by import By
    driver = browser
    with demo_stack(tmp_path / "stack") as info:
        base, bots = info["remediator"], list(info["bots"])
        password = Path(info["status_page_password"]).read_text().strip()

        driver.get(base + "/")
        assert "/login" in driver.current_url                       # not public: the page asks for a login first
        log_in(driver, base, "admin", password)
        wait_for(lambda: driver.current_url.rstrip("/") == base, timeout=30, what="the status page after the login")
        # every demo bot has its row, and the board fills in from Prometheus by itself (no reload)
        for bot in bots:
            assert driver.find_elements(By.CSS_SELECTOR, f'tr[data-bot="{bot}"]'), f"no row for {bot}"
        wait_for(lambda: all(row_text(driver, bot).count(" up") for bot in bots), timeout=120, interval=0.5,
                 what="every demo bot's row to say up, refreshed in place")
        # what each holds, valued: a paperbot's CSV says nothing of stoplosses on the exchange
        wait_for(lambda: any("USDT · " in row_text(driver, bot) and "without a known stoploss on the exchange"
                             in row_text(driver, bot) for bot in bots), timeout=60, interval=0.5,
                 what="a row with its exposure")
        shot(driver, "1-all-up")

        # a form without its CSRF token: refused, nothing paused
        driver.get(f"{base}/bots/{VICTIM}")
        driver.execute_script("var f = document.querySelector(\"form[action$='/pause']\");"
                              "f.querySelector('input[name=csrf]').remove(); f.submit();")
        wait_for(lambda: "CSRF" in driver.page_source, timeout=30, what="the CSRF refusal")
        assert "paused" not in json.dumps(json.loads(http_get(f"{info['alertmanager']}/api/v2/silences")))

        # Pause for 30 minutes with a reason
        driver.get(base + "/")
        # the board refreshes itself: an element found just before a refresh is stale by the click, so find again
        wait_for(lambda: driver.find_element(By.CSS_SELECTOR, f'tr[data-bot="{VICTIM}"] a.button').click() or True,
                 timeout=30, what="the row's Pause button clicked")
        wait_for(lambda: driver.find_elements(By.NAME, "for"), timeout=30, what="the bot's page")
        driver.find_element(By.NAME, "for").send_keys("30m")
        driver.find_element(By.NAME, "reason").send_keys("browser test: strategy change")
        driver.find_element(By.CSS_SELECTOR, "button[name=pause]").click()
        wait_for(lambda: "Paused." in driver.page_source, timeout=30, what="the pause done")
        silences = [s for s in json.loads(http_get(f"{info['alertmanager']}/api/v2/silences"))
                    if s["status"]["state"] == "active" and s["createdBy"] == "botwatch"]
        assert [s["matchers"][0]["value"] for s in silences] == [VICTIM]
        assert "browser test: strategy change" in silences[0]["comment"]

        # kill -9 it: not restarted (the remediator holds the restart), the row says paused
        old = pid_of(info, VICTIM)
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: prometheus(info, f'tradingbot_up{{bot="{VICTIM}"}}') == 0, timeout=60, what="seen down")
        wait_for(lambda: "held" in driver.find_element(By.ID, "bot").text, timeout=60, interval=0.5,
                 what="the bot's page (refreshing itself) to show its restart held")
        assert pid_of(info, VICTIM) == old and not alive(old)
        driver.get(base + "/")
        wait_for(lambda: "paused by web:admin" in row_text(driver, VICTIM), timeout=30, what="the row to say paused")
        assert "browser test: strategy change" in row_text(driver, VICTIM)
        shot(driver, "2-paused-and-killed")

        # Resume: restarted, once
        driver.get(f"{base}/bots/{VICTIM}")
        driver.find_element(By.CSS_SELECTOR, "button[name=resume]").click()
        wait_for(lambda: "Resumed" in driver.page_source, timeout=30, what="the resume done")
        wait_for(lambda: alive(pid_of(info, VICTIM)) and pid_of(info, VICTIM) != old, timeout=90, interval=0.5,
                 what="the bot restarted after the resume")
        driver.get(base + "/")
        wait_for(lambda: " up" in row_text(driver, VICTIM) and "paused" not in row_text(driver, VICTIM),
                 timeout=90, interval=0.5, what="its row back to up")
        shot(driver, "3-resumed")

        # phone width: the rows become cards, still every bot
        driver.set_window_size(390, 844)
        driver.get(base + "/")
        assert all(driver.find_elements(By.CSS_SELECTOR, f'tr[data-bot="{bot}"]') for bot in bots)
        shot(driver, "4-phone")
        driver.set_window_size(1400, 1000)

        # log out; three wrong passwords lock the name, the right one included
        driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        wait_for(lambda: "/login" in driver.current_url, timeout=30, what="the login page after the logout")
        for attempt in range(3):
            log_in(driver, base, "admin", "not-the-password")
            assert ("locked" in driver.page_source) == (attempt == 2), attempt
        log_in(driver, base, "admin", password)
        assert "locked" in driver.page_source and "Log out" not in driver.page_source
        driver.get(base + "/")
        assert "/login" in driver.current_url
        shot(driver, "5-locked-out")
