"""The main journeys in real headless Chromium against a running server with a simulated PVE cluster behind
it: sign in, create a PVE source (through the TLS-off warning), run healthcheck, detect and collect from the
buttons, follow the live run page, find a VM, follow it to its host and cluster, see the LXC label, and read
the raw payload history."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from pvesim.topology import Topology
from tests.web.e2e.conftest import ADMIN, VIEWER, LiveServer

pytestmark = pytest.mark.slow


def _wait(driver: Any, what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the page may be reloading between checks
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"timed out waiting for {what}; page {driver.current_url}:\n{driver.page_source[:3000]}"
    )


def sign_in(driver: Any, server: LiveServer, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/sources")
    assert "/login" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    _wait(driver, "the sources page", lambda: driver.current_url.endswith("/sources"))


def run_from_button(driver: Any, server: LiveServer, source: str, mode: str) -> str:
    """Click a run button on the sources page, follow the live run page until it ends; the final status."""
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/sources")
    driver.find_element(By.CSS_SELECTOR, f"tr[data-source='{source}'] button[data-run='{mode}']").click()
    _wait(driver, "the run page", lambda: "/runs/" in driver.current_url)
    _wait(
        driver,
        f"the {mode} run to end",
        lambda: (
            driver.find_element(By.ID, "run-status").text in ("succeeded", "failed", "held")
            and not driver.find_elements(By.ID, "live")
        ),
        timeout=60,
    )
    status: str = driver.find_element(By.ID, "run-status").text
    return status


def test_admin_journey_from_source_to_raw_history(
    chromium: Any, live_server: LiveServer, pvesim_server: Any
) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium
    pve = pvesim_server(profile="8.4", topology=Topology.generate(seed=7, nodes=2, qemu=4, lxc=2))
    token = pve.credentials("root")

    sign_in(driver, live_server, *ADMIN)

    # Create a PVE source; switching verification off shows the risk and demands an acknowledgement.
    driver.find_element(By.ID, "new-source").click()
    driver.find_element(By.ID, "name").send_keys("lab")
    driver.find_element(By.ID, "endpoint").send_keys(pve.url)
    risk = driver.find_element(By.ID, "tls-risk")
    assert not risk.is_displayed()
    driver.find_element(By.ID, "tls_verify").click()
    assert risk.is_displayed()
    assert "Risk: certificate verification is off" in risk.text
    driver.find_element(By.ID, "api_token_id").send_keys(token["api_token_id"])
    driver.find_element(By.ID, "api_token_secret").send_keys(token["api_token_secret"])
    driver.find_element(By.ID, "save-source").click()
    # The browser refuses to submit until the risk is acknowledged.
    assert driver.current_url.endswith("/sources/new")
    assert live_server.ledger.list_sources() == []
    driver.find_element(By.ID, "acknowledge_tls_risk").click()
    driver.find_element(By.ID, "save-source").click()
    _wait(driver, "the saved source", lambda: "The source was saved" in driver.page_source)
    row = driver.find_element(By.CSS_SELECTOR, "tr[data-source='lab']")
    assert "verification off" in row.text
    assert token["api_token_secret"] not in driver.page_source

    # Healthcheck, detect and collect from the buttons; each run page follows the run live.
    assert run_from_button(driver, live_server, "lab", "healthcheck") == "succeeded"
    assert run_from_button(driver, live_server, "lab", "detect") == "succeeded"
    detect = driver.find_element(By.ID, "detect").text
    assert "8.4" in detect
    assert "is_cluster" in detect
    assert run_from_button(driver, live_server, "lab", "collect") == "succeeded"
    assert "PVE_TLS_VERIFY_DISABLED" in driver.find_element(By.ID, "warnings").text
    stats = driver.find_element(By.ID, "stats").text
    assert "Inventory complete" in stats

    # Containers are labelled; find one and a VM.
    driver.get(live_server.url + "/assets?guest_type=lxc")
    table = driver.find_element(By.ID, "assets")
    assert len(table.find_elements(By.CSS_SELECTOR, ".badge.lxc")) == 2
    driver.get(live_server.url + "/assets?kind=vm&guest_type=qemu")
    vm_link = driver.find_element(By.CSS_SELECTOR, "#assets tbody tr a")
    vm_name = vm_link.text
    vm_link.click()
    _wait(driver, "the VM page", lambda: driver.find_element(By.TAG_NAME, "h1").text.startswith(vm_name))
    assert "QEMU VM" in driver.find_element(By.TAG_NAME, "h1").text

    # VM -> Host -> Cluster by clicking relations.
    driver.find_element(By.CSS_SELECTOR, "#relations a[data-kind='host']").click()
    _wait(driver, "the host page", lambda: "host" in driver.find_element(By.ID, "asset-facts").text)
    assert vm_name in driver.find_element(By.ID, "relations").text
    driver.find_element(By.CSS_SELECTOR, "#relations a[data-kind='cluster']").click()
    _wait(driver, "the cluster page", lambda: "cluster" in driver.find_element(By.ID, "asset-facts").text)
    assert "pvesim" in driver.find_element(By.TAG_NAME, "h1").text

    # Raw payload history of the cluster: the payload PVE returned, pretty-printed.
    history = driver.find_elements(By.CSS_SELECTOR, "details.raw-version")
    assert len(history) == 1
    assert '"type": "cluster"' in history[0].text or "cluster" in history[0].text

    # The topology tree shows the cluster, its hosts and their guests.
    driver.get(live_server.url + "/topology")
    tree = driver.find_element(By.ID, "topology").text
    assert "2 hosts, 6 guests" in tree


def test_viewer_reads_but_cannot_run(chromium: Any, live_server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium
    sign_in(driver, live_server, *VIEWER)
    assert not driver.find_elements(By.ID, "new-source")
    assert not driver.find_elements(By.CSS_SELECTOR, "button[data-run]")
    driver.get(live_server.url + "/users")
    assert "AUTH_FORBIDDEN" in driver.page_source
    # Signing out ends the session: the next page asks to sign in again.
    driver.get(live_server.url + "/assets")
    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    _wait(driver, "the sign-in page", lambda: "/login" in driver.current_url)
    driver.get(live_server.url + "/assets")
    assert "/login" in driver.current_url
