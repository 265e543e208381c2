"""Driving the console in a real headless Chromium (Selenium) against a real ``atp dev
--api`` process (``console_app.py``) on a SQLite store in a temporary folder.

``start_server`` starts the process with an ``admin`` and a ``read`` token and leaves
something in every state: tasks succeeded, one RUNNING, two dead, one scheduled an hour
ahead, the app's cron schedule, and a workflow run waiting for a signal. ``Browser.open``
fails the test on any SEVERE entry of the browser's log (a script error, a 404, a
Content-Security-Policy violation); ``Browser.shot`` saves a screenshot under
``artifacts/console/``. Every wait is a bounded poll.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from atp.adapters._auth import new_token
from atp.adapters.cli._server import _toml_entry
from tests.e2e._processes import SHORT, Proc
from tests.services import free_port, give_up

T = TypeVar("T")
HERE = Path(__file__).parent
REPO = HERE.parents[1]
ARTIFACTS = REPO / "artifacts" / "console"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LAPTOP = (1280, 800)
PHONE = (390, 844)
TALLEST = 2400
"""Screenshots stop this far down a page."""
WAIT = 20.0
"""Seconds any wait for the server or the page may take before the test fails."""
SUBMITS = "button:not([type]), button[type=submit], input[type=submit], input[type=image]"
"""The controls that submit their form."""
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def wait_for(check: Callable[[], T], what: str, proc: Proc | None = None) -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``WAIT``."""
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value:
            return value
        if proc is not None:
            proc.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {WAIT}s (last value {value!r})")
        time.sleep(0.1)


@dataclass
class Server:
    """A running ``atp dev --api`` and what the tests need to reach it."""

    proc: Proc
    url: str
    folder: Path
    tokens: dict[str, str]
    """Bearer text by token name: ``admin``, ``read``."""
    api: httpx.Client
    """The REST API, as ``admin``."""
    seeded: dict[str, str] = field(default_factory=dict)
    """Ids of what the fixture left in the store: ``running``, ``dead``, ``scheduled``,
    ``succeeded``, ``run``."""

    @property
    def console(self) -> str:
        return f"{self.url}/console"

    def publish(self, subject: str, payload: Any = None, **more: Any) -> str:
        answer = self.api.post("/v1/tasks", json={"subject": subject, "payload": payload, **more})
        answer.raise_for_status()
        return str(answer.json()["id"])

    def task(self, task_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/v1/tasks/{task_id}")
        answer.raise_for_status()
        return dict(answer.json())

    def in_state(self, task_id: str, state: str) -> dict[str, Any]:
        """Wait until the task is in ``state``; its record."""
        return wait_for(
            lambda: (found := self.task(task_id))["state"] == state and found,
            f"task {task_id} {state}",
            self.proc,
        )

    def dead(self, reason: str) -> str:
        """A new dead letter, failed with ``reason``."""
        task_id = self.publish("console.fail", {"reason": reason})
        self.in_state(task_id, "DEAD")
        return task_id

    def run(self, run_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/v1/runs/{run_id}")
        answer.raise_for_status()
        return dict(answer.json())

    def waiting_run(self) -> str:
        """A new run of ``console.approve`` whose human step waits for its signal."""
        answer = self.api.post("/v1/workflows/console.approve/runs", json={"input": {"n": 1}})
        answer.raise_for_status()
        run_id = str(answer.json()["id"])
        wait_for(
            lambda: self.run(run_id)["steps"]["manager.decision"]["state"] == "ACTIVE",
            f"run {run_id} waiting for its signal",
            self.proc,
        )
        return run_id

    def schedule(self, name: str) -> dict[str, Any]:
        answer = self.api.get(f"/v1/schedules/{name}")
        answer.raise_for_status()
        return dict(answer.json())


def _tokens_file(folder: Path) -> tuple[Path, dict[str, str]]:
    bearers, lines = {}, []
    for name, scopes in {"admin": ["admin"], "read": ["read"]}.items():
        bearer, token = new_token(name, scopes)
        bearers[name] = bearer
        lines.append(_toml_entry(token.to_mapping()))
    path = folder / "tokens.toml"
    path.write_text("\n".join(lines))
    return path, bearers


def _environment(folder: Path, tokens: Path, port: int) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATP_")}
    return {
        **clean,
        **SHORT,
        # More handler slots than patterns, and one for the task that holds its slot
        # (an idle fetch loop holds one too, see tests/e2e/test_workflow_processes.py).
        "ATP_CONCURRENCY": "16",
        "ATP_STORE": f"sqlite:///{folder / 'atp.db'}",
        "ATP_TRANSPORT": "memory://",
        "ATP_SERVER__HOST": "127.0.0.1",
        "ATP_SERVER__PORT": str(port),
        "ATP_SERVER__GRPC_PORT": "0",
        "ATP_SERVER__TOKENS_FILE": str(tokens),
        "ATP_SERVER__RATE": "1000",
        "ATP_SERVER__BURST": "1000",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), clean.get("PYTHONPATH")])),
    }


def _answers(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _seed(server: Server) -> None:
    """Something in every state, each wait bounded."""
    seeded = server.seeded
    for n in range(3):
        seeded["succeeded"] = server.publish("console.work", {"n": n})
    seeded["running"] = server.publish("console.hold", {"note": "held"})
    seeded["dead"] = server.dead("the ledger is closed")
    server.dead("card declined: insufficient funds")
    seeded["scheduled"] = server.publish("console.work", {"n": 99}, delay="1h")
    seeded["run"] = server.waiting_run()
    server.in_state(seeded["succeeded"], "SUCCEEDED")
    server.in_state(seeded["running"], "RUNNING")
    wait_for(
        lambda: server.api.get("/v1/schedules/console.nightly").status_code == 200,
        "the app's cron schedule stored",
        server.proc,
    )


@contextmanager
def start_server(folder: Path) -> Iterator[Server]:
    """``atp dev console_app:app --api`` on a free port in ``folder``, seeded; killed at the end."""
    tokens, bearers = _tokens_file(folder)
    port = free_port()
    env = _environment(folder, tokens, port)
    proc = Proc(folder / "dev.log", env, "dev", "console_app:app", "--api")
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {bearers['admin']}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as api:
            wait_for(lambda: _answers(api), "atp dev answers /healthz", proc)
            server = Server(proc, url, folder, bearers, api)
            _seed(server)
            yield server
    finally:
        proc.kill()


class Browser:
    """One Chromium window on the console."""

    def __init__(self, driver: webdriver.Chrome, server: Server) -> None:
        self.driver = driver
        self.server = server

    def reset(self, size: tuple[int, int]) -> None:
        """As a new window: no cookies, ``size``, the log of earlier tests dropped."""
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.driver.set_window_size(*size)
        self.driver.get("about:blank")
        self.driver.get_log("browser")

    def open(self, path: str) -> None:
        """Load ``/console<path>`` and check the browser's log."""
        self.driver.get(self.server.console + path)
        self.settled()

    def settled(self, *allowed: str) -> None:
        """Wait for the page to load, then fail on any SEVERE log entry except those
        holding one of ``allowed``."""
        wait_for(
            lambda: self.driver.execute_script("return document.readyState") == "complete",
            "the page loaded",
        )
        self.check_log(*allowed)

    def check_log(self, *allowed: str) -> None:
        entries = self.driver.get_log("browser")
        severe = [
            e["message"]
            for e in entries
            if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)
        ]
        assert not severe, f"the browser's log on {self.driver.current_url}: {severe}"

    def login(self, name: str) -> None:
        """Sign in with token ``name``; lands on the overview."""
        self.open("/login")
        self.css("#token").send_keys(self.server.tokens[name])
        self.css("form[action$='/login'] button[type=submit]").click()
        self.until(lambda d: "/login" not in d.current_url, "signed in")
        self.settled()

    def css(self, selector: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def until(self, check: Callable[[webdriver.Chrome], T], what: str) -> T:
        try:
            return WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(check)
        except TimeoutException:
            pytest.fail(f"{what}: not seen within {WAIT}s on {self.driver.current_url}")

    def submit(self, target: str, *allowed: str) -> None:
        """Click ``target`` (a CSS selector: a button or a link, or a form for its first
        submit button), accept a confirmation dialog if one opens, and wait for the next
        page."""
        found = self.css(target)
        if found.tag_name == "form":
            found = found.find_element(By.CSS_SELECTOR, "[type=submit]")
        with self.next_page(*allowed):
            found.click()

    @contextmanager
    def next_page(self, *allowed: str) -> Iterator[None]:
        """Wait, after the block, for the page to be replaced by another (accepting a
        confirmation dialog on the way), then check the log as ``settled`` does."""
        before = self.css("html")
        yield
        self.until(lambda d: _stale(before) or _alert(d), "the next page")
        if _alert(self.driver):
            self.driver.switch_to.alert.accept()
            self.until(lambda d: _stale(before), "the next page")
        self.settled(*allowed)

    def actions(self) -> list[str]:
        """The submit buttons in the page's main part whose form would POST, as
        ``action: label``."""
        found = []
        for form in self.all("main form[method=post]"):
            for button in form.find_elements(By.CSS_SELECTOR, SUBMITS):
                found.append(f"{form.get_attribute('action')}: {button.text}")
        return found

    def shot(self, name: str) -> Path:
        """Save the page's content, down to its end (at most ``TALLEST`` px) and no
        further, as ``artifacts/console/<name>.png``."""
        size = self.driver.execute_script(
            "return [window.innerWidth, Math.ceil(document.body.scrollHeight) + 16]"
        )
        clip = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], TALLEST), "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _stale(element: WebElement) -> bool:
    """Whether a new page replaced the one ``element`` was on."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    return False


def _alert(driver: webdriver.Chrome) -> bool:
    """Whether a dialog (``window.confirm``) is open."""
    try:
        driver.switch_to.alert  # noqa: B018  (the property raises when none is open)
    except NoAlertPresentException:
        return False
    return True


def require_chromium() -> None:
    """Skip the test (fail it under ``CI=true``) where Chromium or its driver is missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        give_up(
            f"the browser tests need {CHROMIUM} and {CHROMEDRIVER} "
            "(apt-get install chromium chromium-driver; scripts/test.sh does it as root)",
            os.environ,
        )


@contextmanager
def chrome(profile: Path, size: tuple[int, int]) -> Iterator[webdriver.Chrome]:
    """A headless Chromium on a fresh profile, its console log kept for ``get_log``."""
    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    window = f"--window-size={size[0]},{size[1]}"
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}", window):
        options.add_argument(flag)
    if size == PHONE:  # a window is at least 500 px wide: emulate the phone's screen instead
        metrics = {"width": size[0], "height": size[1], "pixelRatio": 1, "mobile": True}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
