"""A running ledger server (uvicorn on a free 127.0.0.1 port, embedded worker) and real headless Chromium.

Chromium is Debian's ``/usr/bin/chromium`` driven by ``/usr/bin/chromedriver`` through Selenium (no browser
downloads). Without them the tests are skipped with the reason shown, unless
``ASSET_LEDGER_REQUIRE_BROWSER=1``, where they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from asset_ledger.api.app import ServiceOptions, create_app
from asset_ledger.core import Ledger, Settings, accounts

CHROMIUM = Path(os.environ.get("ASSET_LEDGER_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ASSET_LEDGER_CHROMEDRIVER", "/usr/bin/chromedriver"))
REQUIRE_BROWSER = os.environ.get("ASSET_LEDGER_REQUIRE_BROWSER") == "1"
ADMIN = ("admin", "e2e-admin-password")
VIEWER = ("viewer", "e2e-viewer-password")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    ledger: Ledger


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The whole service, as ``asset-ledger serve`` runs it, on SQLite under a temporary data directory."""
    settings = Settings(data_dir=tmp_path / "data", run_lease_s=30)
    ledger = Ledger(settings)
    ledger.init()
    accounts.create_user(ledger.engine, *ADMIN, role="admin")
    accounts.create_user(ledger.engine, *VIEWER, role="viewer")
    app = create_app(
        settings, engine=ledger.engine, options=ServiceOptions(embedded_worker=True, worker_poll_s=0.2)
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the ledger server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", ledger=ledger)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        ledger.close()


@pytest.fixture
def chromium() -> Iterator[object]:
    """A headless Chromium session (Selenium WebDriver), fresh profile, nothing reaching the network."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = f"browser tests need {', '.join(missing)} (apt-get install -y chromium chromium-driver)"
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason}; ASSET_LEDGER_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    profile = tempfile.mkdtemp(prefix="ledger-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
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
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
