"""Signing in to the console in a real browser: a bad token is refused with a message, a
good one lands on the overview, signing out ends the session."""

from __future__ import annotations

import pytest

from tests.browser._browser import Browser

pytestmark = pytest.mark.e2e


def test_a_bad_token_is_refused_with_a_message(browser: Browser) -> None:
    browser.open("/")
    assert "/console/login" in browser.driver.current_url, "no session: the login page"
    browser.shot("login")
    browser.css("#token").send_keys("atp_nobody.not-a-secret")
    browser.submit("form[action$='/login']", "401")
    assert "/console/login" in browser.driver.current_url
    assert browser.css("p.error[role=alert]").text.strip(), "no message says why"
    assert not browser.all("form[action$='/logout']"), "signed in with a bad token"


def test_a_good_token_signs_in_and_signing_out_ends_the_session(browser: Browser) -> None:
    browser.login("read")
    assert browser.driver.current_url.rstrip("/").endswith("/console")
    assert "read only" in browser.css("header .who").text
    cookie = browser.driver.get_cookie("atp_console")
    assert cookie is not None, "no session cookie"
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    browser.submit("form[action$='/logout']")
    assert "/console/login" in browser.driver.current_url
    browser.open("/tasks")
    assert "/console/login" in browser.driver.current_url, "the session outlived sign-out"
