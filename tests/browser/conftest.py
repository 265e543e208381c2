"""Fixtures of the browser tests: ``server``, one ``atp dev --api`` per test process
(tests that change the store make their own tasks first, and put back what they share),
and ``browser``, one Chromium window per test process too (a profile in a folder of its
own) that every test gets back with no cookies, at laptop size, its log read; ``phone``, a
window of its own at phone size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver

from tests.browser._browser import (
    LAPTOP,
    PHONE,
    Browser,
    Server,
    chrome,
    require_chromium,
    start_server,
)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()  # before a server is started for nothing
    with start_server(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="session")
def window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chrome(tmp_path_factory.mktemp("profile"), LAPTOP) as driver:
        yield driver


@pytest.fixture
def browser(server: Server, window: webdriver.Chrome) -> Browser:
    fresh = Browser(window, server)
    fresh.reset(LAPTOP)
    return fresh


@pytest.fixture
def phone(server: Server, tmp_path: Path) -> Iterator[Browser]:
    with chrome(tmp_path / "profile", PHONE) as driver:
        yield Browser(driver, server)
