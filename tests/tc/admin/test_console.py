"""The web console: its JSON API behind the admin token, and a real headless
Chromium driving the page (list, detail with branches, an action)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from atx.testing import free_port, wait_until
from tests.tc.admin.conftest import ADMIN_TOKEN, AdminTC


class Console:
    def __init__(self, tc: AdminTC, token: str = ADMIN_TOKEN) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "atx.cli", "console", "--tc", tc.address]
        argv += ["--port", str(self.port), "--admin-token", token]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until(self._up, timeout=20, what="the console to start")
        except AssertionError:
            self.process.kill()
            raise

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("the console exited at start")
        try:
            urllib.request.urlopen(self.url + "/healthz", timeout=2).read()
        except OSError:
            return False
        return True

    def request(
        self, path: str, token: str | None = ADMIN_TOKEN, body: object = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def console(sqlite_tc: AdminTC) -> Iterator[Console]:
    running = Console(sqlite_tc)
    yield running
    running.close()


def test_api_needs_the_token_and_serves_the_admin_service(
    sqlite_tc: AdminTC, console: Console
) -> None:
    xid = sqlite_tc.begin(name="web")
    sqlite_tc.register(xid, keys="orders:5")

    for token in (None, "wrong"):
        status, body = console.request("/api/globals", token=token)
        assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
        status, _ = console.request(f"/api/globals/{xid}/stop-retry", token=token, body={})
        assert status == 401

    status, body = console.request("/api/globals?status=Begin")
    assert status == 200 and [s["xid"] for s in body["sessions"]] == [xid]
    assert body["sessions"][0]["status"] == "Begin"
    status, body = console.request(f"/api/globals/{xid}")
    assert status == 200 and body["session"]["branches"][0]["lock_keys"] == "orders:5"
    assert body["locks"][0]["pk"] == "5"
    status, body = console.request("/api/locks?table_name=orders")
    assert status == 200 and body["total_size"] == 1

    status, body = console.request(f"/api/globals/{xid}/rollback", body={"operator": "web"})
    assert status == 400 and body["error"]["code"] == "CONFIRMATION_REQUIRED"
    status, body = console.request(f"/api/globals/{xid}/stop-retry", body={})
    assert status == 409 and body["error"]["details"]["status"] == "Begin"
    status, body = console.request("/api/globals/127.0.0.1:1:404")
    assert status == 404 and body["error"]["code"] == "GLOBAL_TRANSACTION_NOT_FOUND"
    status, body = console.request("/api/audit")
    assert status == 200 and [e["result"] for e in body["entries"]] == [
        "ADMIN_STOP_RETRY_REFUSED",
        "CONFIRMATION_REQUIRED",
    ]
    assert body["entries"][1]["operator"].startswith("web")

    page = urllib.request.urlopen(console.url + "/", timeout=10).read().decode()
    assert "atx" in page and "app.js" in page
    assert b"runAction" in urllib.request.urlopen(console.url + "/app.js", timeout=10).read()


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver are not installed (scripts/bootstrap.sh does it)")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='atx-chromium-')}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def test_browser_finds_a_live_transaction_and_acts_on_it(
    sqlite_tc: AdminTC, console: Console
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    other = sqlite_tc.begin(name="other")
    xid = sqlite_tc.begin(name="checkout", app="shop")
    branch_id = sqlite_tc.register(xid, keys="orders:42", resource="orders-db", data='{"u": 7}')

    driver = _browser()
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(console.url + "/")
        # The console needs the admin token: the page asks for it.
        token_input = wait.until(ec.visibility_of_element_located((By.ID, "login-token")))
        token_input.send_keys(ADMIN_TOKEN)
        driver.find_element(By.ID, "login-ok").click()

        row = wait.until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, f'#tx-table tr[data-xid="{xid}"]'))
        )
        assert "Begin" in row.text and "checkout" in row.text
        assert driver.find_elements(By.CSS_SELECTOR, f'#tx-table tr[data-xid="{other}"]')
        row.click()

        branch = wait.until(
            ec.visibility_of_element_located(
                (By.CSS_SELECTOR, f'#branches tr[data-branch-id="{branch_id}"]')
            )
        )
        assert "orders-db" in branch.text and "orders:42" in branch.text
        assert "Registered" in branch.text
        assert driver.find_element(By.ID, "detail-status").text == "Begin"
        assert not driver.find_element(By.ID, "detail-stopped").is_displayed()
        assert not driver.find_element(By.CSS_SELECTOR, '[data-action="stop-retry"]').is_enabled()

        driver.find_element(By.CSS_SELECTOR, '#detail-actions [data-action="rollback"]').click()
        wait.until(ec.visibility_of_element_located((By.ID, "confirm-ok")))
        assert xid in driver.find_element(By.ID, "confirm-text").text
        driver.find_element(By.ID, "confirm-operator").send_keys("selenium")
        driver.find_element(By.ID, "confirm-ok").click()

        # No RM serves orders-db: the rollback waits in RollbackRetrying.
        wait.until(
            lambda d: (
                d.find_element(By.ID, "detail-status").text in ("Rollbacking", "RollbackRetrying")
            )
        )
        wait.until(
            lambda d: (
                "Rollback"
                in d.find_element(By.CSS_SELECTOR, f'#tx-table tr[data-xid="{xid}"]').text
            )
        )

        # A second action: stop retrying; the badge shows on the page.
        stop = wait.until(
            ec.element_to_be_clickable(
                (By.CSS_SELECTOR, '#detail-actions [data-action="stop-retry"]')
            )
        )
        stop.click()
        wait.until(ec.visibility_of_element_located((By.ID, "confirm-ok"))).click()
        wait.until(ec.visibility_of_element_located((By.ID, "detail-stopped")))
        assert sqlite_tc.admin.get_global(xid).session.retry_stopped

        # The audit view lists what the browser did.
        driver.find_element(By.CSS_SELECTOR, '.tab[data-view="audit"]').click()
        wait.until(
            lambda d: (
                "stop-retry" in d.find_element(By.ID, "audit-table").text
                and "selenium" in d.find_element(By.ID, "audit-table").text
            )
        )
    finally:
        driver.quit()
