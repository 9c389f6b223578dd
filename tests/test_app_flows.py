"""The chat's everyday flows as a person uses them: Undo, Edit, Retry, Clear, the downloads, and the app's start
against an unreachable Space (``--no-fallback``, and the fallback's switch back when the Space returns).

Real processes throughout: the app (``python app.py``), a stand-in Space behind it, Debian's headless Chromium.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import start_app
from browser import BOT, SHOTS, USER, message_text, open_page, send, wait_for, wait_saved
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from phi4_standin.launcher import reset, start_standin, stats
from phi4_standin.process import ServerProcess, free_port


@pytest.fixture(scope="module")
def app(standin: ServerProcess) -> Iterator[ServerProcess]:
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url) as server:
        yield server



@pytest.fixture
def page(browser, app: ServerProcess, standin: ServerProcess):
    reset(standin.url)
    with open_page(browser, app.url, accept_downloads=True) as opened:
        yield opened


# --- helpers: what a person sees and does --------------------------------------------------------------------------

def chat_text(page) -> str:
    return page.locator("#chatbot").inner_text()



def wait_idle(page, timeout: float = 30.0) -> None:
    """Until the input box is unlocked again and the chat saved: the turn is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not page.locator("#prompt textarea").is_enabled():
        time.sleep(0.1)
    assert page.locator("#prompt textarea").is_enabled(), "the input box stayed locked after the turn"
    reply = page.locator(BOT).last.inner_text().strip()  # the chat is written to the browser right after the unlock
    wait_saved(page, lambda chat: bool(chat) and chat[-1]["role"] == "assistant"
               and message_text(chat[-1]).strip() == reply, f"the reply {reply!r}")


def wait_page_loaded(page) -> None:
    """Until the page's load events have run: the badge, filled in by the last of them, names the Space."""
    wait_for(page, "reachable", where="#space-badge")


def turn(page, text: str, earlier: int, image: Path | None = None) -> None:
    """Send ``text`` and wait for the stand-in's whole reply to it."""
    send(page, text, image)
    wait_for(page, rf'You said: "{re.escape(text)}"\.[^\n]* Earlier turns: {earlier}\.')
    wait_idle(page)


def rows(page) -> list[tuple[str, str]]:
    """The chat's messages, top to bottom: ("user" | "bot", text)."""
    out = []
    for row in page.locator("#chatbot .message-row").all():
        who = "user" if "user-row" in (row.get_attribute("class") or "") else "bot"
        out.append((who, row.inner_text().strip()))
    return out


def png(path: Path, size: tuple[int, int] = (37, 23)) -> Path:
    Image.new("RGB", size, "teal").save(path)
    return path


# --- the chat's buttons ----------------------------------------------------------------------------------------------

@pytest.mark.browser
def test_undo_puts_the_last_turn_back_in_the_box(page, tmp_path: Path) -> None:
    turn(page, "first question", 0)
    turn(page, "what is this?", 1, png(tmp_path / "teal.png"))
    page.get_by_label("Undo").last.click()
    deadline = time.monotonic() + 10
    while "what is this?" in chat_text(page) and time.monotonic() < deadline:
        time.sleep(0.1)
    page.screenshot(path=str(SHOTS / "flow-after-undo.png"), full_page=True)
    text = chat_text(page)
    assert "what is this?" not in text and "PNG, 37x23" not in text, "the undone turn and its reply are gone"
    assert 'You said: "first question". Earlier turns: 0.' in text, "the turn before it stays"
    assert page.locator("#prompt textarea").input_value() == "what is this?"
    assert page.locator("#prompt img").count() == 1, "the undone turn's image is back in the box too"
    assert page.locator("#prompt textarea").is_enabled()
    # sending it again answers it as the second turn, image included
    page.locator("#prompt textarea").press("Enter")
    wait_for(page, r'You said: "what is this\?"\. Image 1: PNG, 37x23.*Earlier turns: 1\.')
    wait_idle(page)


@pytest.mark.browser
def test_edit_of_the_first_turn_cuts_the_chat_there_and_answers_the_new_text(page, tmp_path: Path) -> None:
    turn(page, "first question", 0, png(tmp_path / "teal.png"))
    turn(page, "second question", 1)
    first_text = page.locator(USER).filter(has_text="first question")
    first_text.hover()
    page.get_by_label("Edit").first.click()
    editor = page.locator(f"{USER} textarea").first
    editor.wait_for(timeout=5_000)
    editor.fill("first question, edited")
    page.get_by_label("Submit").first.click()
    wait_for(page, r'You said: "first question, edited"\. Image 1: PNG, 37x23\. Earlier turns: 0\.')
    wait_idle(page)
    page.screenshot(path=str(SHOTS / "flow-after-edit.png"), full_page=True)
    text = chat_text(page)
    assert "second question" not in text, f"the chat must be cut after the edited turn:\n{text}"
    assert [who for who, _ in rows(page)] == ["user", "user", "bot"], rows(page)  # image, text, reply
    assert rows(page)[1][1] == "first question, edited"
    assert page.locator(f"{USER} img").count() == 1, "the edited turn keeps its image"


@pytest.mark.browser
def test_retry_after_a_normal_reply_asks_the_space_again(page, standin: ServerProcess) -> None:
    turn(page, "one", 0)
    turn(page, "two", 1)
    calls = stats(standin.url)["calls"]
    page.get_by_label("Retry").last.click()
    deadline = time.monotonic() + 30
    while stats(standin.url)["calls"] == calls and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stats(standin.url)["calls"] == calls + 1, "Retry sends the last turn to the Space once more"
    wait_for(page, r'You said: "two"\. Earlier turns: 1\.')
    wait_idle(page)
    assert [who for who, _ in rows(page)] == ["user", "bot", "user", "bot"], rows(page)
    assert chat_text(page).count('You said: "two"') == 1, "the new reply replaces the old one"


@pytest.mark.browser
def test_clear_empties_the_chat_for_good(page, app: ServerProcess) -> None:
    turn(page, "remember me", 0)
    page.locator("#clear-btn").click()
    deadline = time.monotonic() + 10
    while "remember me" in chat_text(page) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "remember me" not in chat_text(page)
    wait_saved(page, lambda chat: chat == [], "the cleared chat")
    page.reload()
    page.wait_for_selector("#prompt textarea")
    wait_page_loaded(page)  # the saved chat, if any, comes back on load
    page.screenshot(path=str(SHOTS / "flow-after-clear-reload.png"), full_page=True)
    assert page.locator("#chatbot .message-row").count() == 0, chat_text(page)
    turn(page, "a fresh start", 0)  # the Space is not told about the cleared turns either
    assert [who for who, _ in rows(page)] == ["user", "bot"] and "remember me" not in chat_text(page), rows(page)


@pytest.mark.browser
def test_download_gives_json_and_markdown_of_the_chat(page) -> None:
    turn(page, "alpha question", 0)
    turn(page, "bravo question", 1)
    page.locator("#export-btn").click()
    page.locator("#dl-json").wait_for(state="visible", timeout=15_000)
    page.locator("#dl-md").wait_for(state="visible", timeout=15_000)
    saved: dict[str, str] = {}
    for button in ("#dl-json", "#dl-md"):
        with page.expect_download(timeout=15_000) as info:
            page.locator(button).click()
        download = info.value
        saved[button] = Path(download.path()).read_text(encoding="utf-8")
        assert download.suggested_filename.startswith("conversation-")
    messages = json.loads(saved["#dl-json"])
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"], messages
    assert messages[0]["content"] == [{"type": "text", "text": "alpha question"}]
    assert 'You said: "bravo question". Earlier turns: 1.' in messages[3]["content"][0]["text"]
    markdown = saved["#dl-md"]
    assert "alpha question" in markdown and "bravo question" in markdown
    assert 'You said: "alpha question". Earlier turns: 0.' in markdown
    assert "/tmp/" not in saved["#dl-json"] + markdown, "no server paths in the downloads"


# --- starting against an unreachable Space ---------------------------------------------------------------------------

def test_no_fallback_starts_anyway_and_says_the_space_is_unreachable() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with start_app("--space-url", dead, "--hub-url", dead, "--no-fallback") as app:
        log = app.log_text()
        assert "cannot be reached (--no-fallback)" in log and "starting the offline stand-in" not in log
        with urllib.request.urlopen(app.url + "/config", timeout=10) as resp:  # noqa: S310 - loopback
            config = resp.read().decode()
        assert "cannot be reached" in config and "NOT come from Phi-4" not in config
        with pytest.raises(AppError) as info:
            Client(app.url, verbose=False).predict({"text": "anyone there?", "files": []}, api_name="/chat")
        message = str(info.value)  # docs/failures.md's "connection refused" row
        assert re.fullmatch(rf"Cannot reach the Space at {re.escape(dead)} \(\w+\); check the network or the URL\.",
                            message), message
        assert f"a turn failed: SpaceUnavailable: {message}" in app.log_text()  # logged for whoever runs the app


@pytest.mark.browser
def test_switch_back_to_the_real_space_when_it_returns(browser) -> None:
    port = free_port()
    real = f"http://127.0.0.1:{port}"  # nothing listens there yet: the app falls back to its own stand-in
    with start_app("--space-url", real, "--hub-url", real, "--recheck-every", "1", "--standin-pace-ms", "5",
                   "--standin-chunks", "6", timeout=120) as app:
        context = browser.new_context(viewport={"width": 1200, "height": 1000})
        returned: ServerProcess | None = None
        try:
            page = context.new_page()
            page.goto(app.url)
            page.wait_for_selector("#prompt textarea")
            wait_for(page, "do NOT come from Phi-4", where="#mirror-banner")
            assert not page.locator("#switch-btn").is_visible()
            returned = start_standin(port=port, pace_ms=5, chunks=6)  # the "real" Space is back
            page.locator("#switch-btn").wait_for(state="visible", timeout=20_000)
            wait_for(page, "answers again", where="#mirror-banner")
            page.screenshot(path=str(SHOTS / "flow-switch-offered.png"), full_page=True)
            page.locator("#switch-btn").click()
            # the banner's own element (not its text: while the page's 1 s refresh runs, gradio shows its timer,
            # "0.1s", in the same box)
            deadline = time.monotonic() + 15
            while page.locator("#mirror-banner .mirror-banner").count() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert page.locator("#mirror-banner .mirror-banner").count() == 0, "the fallback banner is gone"
            assert not page.locator("#switch-btn").is_visible()
            wait_for(page, re.escape(real), where="#space-badge")
            calls = stats(real)["calls"]
            turn(page, "who answers now?", 0)
            assert stats(real)["calls"] == calls + 1, "the reply came from the returned Space"
            page.screenshot(path=str(SHOTS / "flow-switched.png"), full_page=True)
            page.reload()  # a new page load does not bring the old banner back
            page.wait_for_selector("#prompt textarea")
            wait_page_loaded(page)
            assert "do NOT come from Phi-4" not in page.locator("#mirror-banner").inner_text()
        finally:
            context.close()
            if returned is not None:
                returned.stop()
