"""Issue 14 in Chromium and gradio_client: a visitor over budget reads when to come back (and keeps the message)
while another chats on; the badge counts down; only the host sees the Usage tab; only the host may switch the
Space (issue 11's leftover), in the page and through the ``/switch_space`` route.

One app: logins alice, bob and host, ``--admin host``, ``--visitor-turns 1/hour`` (the second turn is refused at
once: no waiting), ``--allow-space-switch``; the stand-in is the Space and the Hub."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_server import start_app
from browser import SHOTS, wait_for
from gradio_client import Client
from gradio_client.exceptions import AppError

from phi4_standin.process import ServerProcess

LOGINS = {"alice": "alice-pass-1", "bob": "bob-pass-22", "host": "host-pass-333"}
OFFICIAL = "microsoft/phi-4-multimodal"
ONLY_HOST = "Only the host's login (--admin) can switch the Space."
NOBODY = ("Nobody can switch the Space here: the app is shared and no host login is named (start it with --admin "
          "USER).")


@pytest.fixture(scope="module")
def app(standin: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    logins = [a for user, password in LOGINS.items() for a in ("--auth", f"{user}:{password}")]
    db = tmp_path_factory.mktemp("usage") / "usage.sqlite3"
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback", *logins,
                   "--admin", "host", "--visitor-turns", "1/hour", "--allow-space-switch", "--usage-db", str(db),
                   timeout=120) as server:
        yield server


def logged_in(browser: Any, app: ServerProcess, user: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.goto(app.url)
    page.wait_for_selector("input[type=password]", timeout=30_000)
    page.locator("input[type=text]").first.fill(user)
    page.locator("input[type=password]").fill(LOGINS[user])
    page.locator("input[type=password]").press("Enter")
    page.wait_for_selector("#prompt textarea", timeout=30_000)
    return context, page


def send(page: Any, text: str) -> None:
    page.locator("#prompt textarea").fill(text)
    page.locator("#prompt textarea").press("Enter")


@pytest.mark.browser
def test_over_budget_in_the_page_says_when_keeps_the_message_and_others_chat_on(app: ServerProcess,
                                                                                browser: Any) -> None:
    alice_ctx, alice = logged_in(browser, app, "alice")
    bob_ctx, bob = logged_in(browser, app, "bob")
    try:
        wait_for(alice, r"🎟️ 1 of 1 turns left this hour", where="#space-badge")
        send(alice, "my first question")
        wait_for(alice, 'You said: "my first question"')
        wait_for(alice, r"🎟️ 0 of 1 turns left this hour", where="#space-badge")  # counted down after the turn
        send(alice, "my second question")
        text = wait_for(alice, r"You have used your 1 turn per hour on this app")
        assert re.search(r"you can chat again at \d\d:\d\d UTC \(in (59|60) minutes\)\.", text), text
        assert "my second question" in text, "the message stays in the chat (Retry sends it again)"
        alice.screenshot(path=str(SHOTS / "budget-over.png"), full_page=True)
        send(bob, "meanwhile from bob")  # another login chats on
        wait_for(bob, 'You said: "meanwhile from bob"')
        assert alice.get_by_role("tab", name="Usage").count() == 0  # not the host: no Usage tab
    finally:
        alice_ctx.close()
        bob_ctx.close()


@pytest.mark.browser
def test_the_host_sees_the_usage_tab_and_the_badge_says_no_limit(app: ServerProcess, browser: Any) -> None:
    context, page = logged_in(browser, app, "host")
    try:
        wait_for(page, r"🎟️ no turn limit for the host", where="#space-badge")
        send(page, "host question")
        wait_for(page, r'You said: "host question"[\s\S]*max_new_tokens=\d+\.')  # the whole reply
        page.get_by_role("tab", name="Usage").click()
        # the turn is written when its stream has closed, a moment after its last words show; a person who
        # refreshes too soon refreshes again
        deadline = time.monotonic() + 30
        while True:
            page.locator("#usage-refresh").click()
            try:
                shown = wait_for(page, r"user:host", timeout=1.0, where="#usage-table")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        assert re.search(r"user:host\s+1\s+0\s", shown), shown
        assert "not reported" in shown
        page.screenshot(path=str(SHOTS / "budget-usage-tab.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.browser
def test_the_space_picker_is_locked_for_a_visitor_and_says_who_may_switch(app: ServerProcess, browser: Any) -> None:
    context, page = logged_in(browser, app, "alice")
    try:
        page.get_by_text("Space", exact=True).first.click()  # open the accordion
        wait_for(page, re.escape(ONLY_HOST), where="#space-picker-note")
        assert page.locator("#space-use-btn").is_disabled()
        assert page.locator("#space-picker input").is_disabled()
    finally:
        context.close()
    context, page = logged_in(browser, app, "host")
    try:
        page.get_by_text("Space", exact=True).first.click()
        page.locator("#space-use-btn").wait_for(state="visible")
        wait_for(page, r"^\s*$", where="#space-picker-note")
        assert not page.locator("#space-use-btn").is_disabled()
    finally:
        context.close()


def test_the_switch_space_route_refuses_anyone_but_the_host(app: ServerProcess) -> None:
    alice = Client(app.url, auth=("alice", LOGINS["alice"]), verbose=False)
    with pytest.raises(AppError, match=re.escape(ONLY_HOST)):
        alice.predict(OFFICIAL, api_name="/switch_space")
    host = Client(app.url, auth=("host", LOGINS["host"]), verbose=False)
    banner, picked = host.predict(OFFICIAL, api_name="/switch_space")
    assert banner == "" and picked["value"] == OFFICIAL


def test_shared_without_an_admin_nobody_switches_or_sees_usage(standin: ServerProcess, tmp_path: Path) -> None:
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback", "--share",
                   "--allow-space-switch", "--auth", "guest:guest-pass-1",
                   "--usage-db", str(tmp_path / "u.sqlite3"), env={"HOME": str(tmp_path)}, timeout=120) as app:
        guest = Client(app.url, auth=("guest", "guest-pass-1"), verbose=False)
        with pytest.raises(AppError, match=re.escape(NOBODY)):
            guest.predict(OFFICIAL, api_name="/switch_space")
        assert guest.predict(24, api_name="/usage") == "Only the host sees usage."
        assert guest.predict({"text": "hi", "files": []}, api_name="/chat").startswith('You said: "hi".')
        with sqlite3.connect(tmp_path / "u.sqlite3") as raw:
            assert raw.execute("SELECT visitor, source, outcome FROM turns").fetchall() == [("user:guest", "api",
                                                                                             "ok")]
