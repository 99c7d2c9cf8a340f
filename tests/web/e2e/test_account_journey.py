"""A viewer changes their own password in real headless Chromium: from the header's Account link, through
a mistyped repetition, to signing in with the new password (and no longer with the old one)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.e2e.conftest import VIEWER, LiveServer
from tests.web.e2e.test_journeys import _wait, sign_in

pytestmark = pytest.mark.slow

NEW_PASSWORD = "e2e-viewer-new-password"


def _fill(driver: Any, current: str, new: str, again: str) -> None:
    from selenium.webdriver.common.by import By

    form = driver.find_element(By.ID, "password-form")
    for name, value in (("current_password", current), ("new_password", new), ("new_password_again", again)):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type='submit']").click()


def _sign_in_form(driver: Any, server: LiveServer, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/login")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()


def test_viewer_changes_the_password_and_signs_in_with_the_new_one(
    chromium: Any, live_server: LiveServer
) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium
    username, old_password = VIEWER
    sign_in(driver, live_server, username, old_password)

    # The header links to the Account page, which says who is signed in and with which role.
    driver.find_element(By.LINK_TEXT, "Account").click()
    _wait(driver, "the account page", lambda: driver.current_url.endswith("/account"))
    assert driver.find_element(By.ID, "account-username").text == username
    assert driver.find_element(By.ID, "account-role").text == "viewer"

    # A mistyped repetition is refused and changes nothing.
    _fill(driver, old_password, NEW_PASSWORD, NEW_PASSWORD + "-typo")
    _wait(driver, "the refusal", lambda: bool(driver.find_elements(By.ID, "password-error")))
    assert "differ" in driver.find_element(By.ID, "password-error").text

    # The real change: this session stays signed in and the page says so.
    _fill(driver, old_password, NEW_PASSWORD, NEW_PASSWORD)
    _wait(driver, "the confirmation", lambda: bool(driver.find_elements(By.ID, "password-changed")))
    assert "This session stays signed in" in driver.find_element(By.ID, "password-changed").text
    driver.get(live_server.url + "/assets")
    assert driver.current_url.endswith("/assets")

    # Sign out; the old password no longer works, the new one does.
    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    _wait(driver, "the sign-in page", lambda: "/login" in driver.current_url)
    _sign_in_form(driver, live_server, username, old_password)
    _wait(
        driver,
        "the refusal of the old password",
        lambda: "Wrong user name or password" in driver.page_source,
    )
    assert "/login" in driver.current_url
    _sign_in_form(driver, live_server, username, NEW_PASSWORD)
    _wait(driver, "the ledger after sign-in", lambda: "/login" not in driver.current_url)
    driver.get(live_server.url + "/account")
    assert driver.find_element(By.ID, "account-username").text == username
