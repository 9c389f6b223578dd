"""Logins and the share link: with ``--auth`` nothing answers without the login; ``--share`` without ``--auth``
makes up a login, prints it once, says plainly that the share link could not be made here, and keeps serving."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import start_app
from browser import chromium
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError

from phi4_standin.process import ServerProcess


def status_of(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def login_status(url: str, user: str, password: str) -> tuple[int, str]:
    """gradio's login route, as its login form posts it."""
    data = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/login", data=data), timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture(scope="module")
def auth_app(standin: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    logins = tmp_path_factory.mktemp("auth") / "logins.txt"
    logins.write_text("# one per line\nbob:builder-42\n", encoding="utf-8")
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--auth", "alice:s3cret-pass",
                   "--auth-file", str(logins)) as server:
        yield server


def test_without_login_page_and_api_are_refused(auth_app: ServerProcess) -> None:
    code, body = status_of(auth_app.url + "/")
    assert code == 200 and "alice" not in body  # the page shell only; it shows the login form (next test)
    for path in ("/config", "/gradio_api/info", "/gradio_api/queue/status"):
        assert status_of(auth_app.url + path)[0] == 401, path
    with pytest.raises(AuthenticationError, match=r"^Could not load .+ as credentials were not provided\. Please "
                       r"login\.$"):
        Client(auth_app.url, verbose=False)


@pytest.mark.browser
def test_browser_sees_the_login_form_first(auth_app: ServerProcess) -> None:
    with chromium() as browser:
        try:
            page = browser.new_page()
            page.goto(auth_app.url)
            page.wait_for_selector("input[type=password]", timeout=20_000)
            assert page.locator("#prompt").count() == 0  # no chat before the login
            page.locator("input[type=text]").first.fill("alice")
            page.locator("input[type=password]").fill("s3cret-pass")
            page.locator("input[type=password]").press("Enter")
            page.wait_for_selector("#prompt textarea", timeout=20_000)
        finally:
            browser.close()


def test_with_login_the_api_answers(auth_app: ServerProcess) -> None:
    for login in (("alice", "s3cret-pass"), ("bob", "builder-42")):
        client = Client(auth_app.url, auth=login, verbose=False)
        reply = client.predict({"text": "who goes there", "files": []}, api_name="/chat")
        assert 'You said: "who goes there"' in reply
    # Two wrong logins only: the app locks an address out after five (tests/test_security.py).
    # gradio answers a wrong login 400 "Incorrect credentials." (gradio_client then says only "Could not login").
    assert login_status(auth_app.url, "alice", "wrong") == (400, '{"detail":"Incorrect credentials."}')
    with pytest.raises(ValueError, match=rf"^Could not login to {re.escape(auth_app.url)}/\.$"):
        Client(auth_app.url, auth=("bob", "s3cret-pass"), verbose=False)  # another login's password
    assert login_status(auth_app.url, "alice", "s3cret-pass")[0] == 200  # the same route takes the right one


def test_share_without_network_makes_a_login_says_why_and_keeps_serving(tmp_path: Path) -> None:
    # --standin: the app starts its own stand-in (no network at all); HOME points at an empty folder so that
    # gradio's tunnel helper is surely missing, as on any machine without internet.
    with start_app("--standin", "--share", env={"HOME": str(tmp_path)}, timeout=120) as app:
        deadline = time.monotonic() + 30
        while "share link could not be created" not in app.log_text() and time.monotonic() < deadline:
            time.sleep(0.3)
        log = app.log_text()
        assert "The share link could not be created" in log
        match = re.search(r"user: (\S+)\n\*\s+password: (\S+)", log)
        assert match, log
        user, password = match.groups()
        assert log.count(password) == 1  # printed once
        assert status_of(app.url + "/config")[0] == 401  # never public without the login
        client = Client(app.url, auth=(user, password), verbose=False)
        reply = client.predict({"text": "still here?", "files": []}, api_name="/chat")
        assert reply.startswith('You said: "still here?".')
        assert app.proc.poll() is None
