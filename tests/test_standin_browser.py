"""The stand-in Space's own page in a real headless Chromium (Debian's): type, attach, watch the reply stream.

Why: the API tests cannot see that gradio 6's front end draws the page. It once could not: the Gradio-5-shaped
chatbot value made the front end throw, the chat stayed empty and the textbox spun forever. These tests drive the
page as a person would and check the reply grows in place and the textbox comes back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import SHOTS
from PIL import Image

from phi4_standin.launcher import reset, start_standin
from phi4_standin.process import ServerProcess

pytestmark = pytest.mark.browser

CHAT = "#standin-chat"
BOT = f"{CHAT} .message-row.bot-row"
TEXTBOX = ".multimodal-textbox"
TEXTBOX_STATUS = f"{TEXTBOX} [data-testid=status-tracker]"

# Records the last bot message's text each time the page changes, so no streamed step is missed by polling.
WATCH_BOT = """(selector) => {
    window.__bot_samples = [];
    const record = () => {
        const rows = document.querySelectorAll(selector);
        const text = rows.length ? rows[rows.length - 1].innerText.trim() : "";
        const samples = window.__bot_samples;
        if (text && samples[samples.length - 1] !== text) samples.push(text);
    };
    new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


# The last sentence of a complete reply, per layout (see phi4_standin/reply.py).
REPLY_END = {
    "classic": r"Seen: [^\n]*\.$",
    "official": r"max_new_tokens=512\.$",
    "chatinterface": r"max_new_tokens=512\.$",
}


@pytest.fixture(scope="module", params=["classic", "official", "chatinterface"])
def layout_standin(request: pytest.FixtureRequest) -> Iterator[tuple[str, ServerProcess]]:
    """A stand-in of its own per layout, paced so that a reply takes about a second to stream
    (at half that, a loaded machine once drew a reply in two steps: the browser too starved to draw each chunk)."""
    with start_standin(pace_ms=120, chunks=8, layout=request.param) as proc:
        yield request.param, proc


@pytest.fixture
def standin(layout_standin: tuple[str, ServerProcess]) -> ServerProcess:
    return layout_standin[1]


@pytest.fixture
def reply_end(layout_standin: tuple[str, ServerProcess]) -> str:
    return REPLY_END[layout_standin[0]]


@pytest.fixture
def page(browser: Any, standin: ServerProcess) -> Iterator[Any]:
    reset(standin.url)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(standin.url)
    page.wait_for_selector(f"{TEXTBOX} textarea")
    yield page
    context.close()
    assert not errors, f"the page threw: {errors}"


def send(page: Any, text: str, image: Path | None = None) -> None:
    if image is not None:
        page.locator(f"{TEXTBOX} input[type=file]").set_input_files(str(image))
        page.wait_for_selector(f"{TEXTBOX} img.thumbnail-image", timeout=15_000)  # the upload finished
    page.locator(f"{TEXTBOX} textarea").fill(text)
    page.locator(f"{TEXTBOX} textarea").press("Enter")


def wait_for_bot(page: Any, pattern: str, end: str, timeout: float = 30.0) -> str:
    """The last bot message once it matches ``pattern`` and ends as a complete reply does (``end``)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        texts = page.locator(BOT).all_inner_texts()
        text = texts[-1].strip() if texts else ""
        if re.search(pattern, text) and re.search(end, text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"no bot message matching {pattern!r} within {timeout}s; last one: {text!r}")


def wait_textbox_idle(page: Any, timeout: float = 15.0) -> None:
    """The textbox's loading status is hidden again and its textarea takes input (the step after the bot
    step, dependency 12, turns it back on a moment after the reply's last chunk)."""
    page.wait_for_selector(f"{TEXTBOX_STATUS}.hide", state="attached", timeout=timeout * 1000)
    page.wait_for_selector(f"{TEXTBOX} textarea:not([disabled])", timeout=timeout * 1000)
    assert page.locator(f"{TEXTBOX} textarea").is_editable()


def test_typed_prompt_streams_into_the_page(page: Any, reply_end: str, layout_standin: tuple[str, Any]) -> None:
    prompt = "hello from a real browser"
    page.evaluate(WATCH_BOT, BOT)
    send(page, prompt)
    final = wait_for_bot(page, re.escape(f'You said: "{prompt}"'), reply_end)
    samples: list[str] = page.evaluate("window.__bot_samples")
    partial = [s for s in samples if s != final]
    assert len(partial) >= 2, f"the reply did not grow in steps: {samples}"
    assert all(final.startswith(s) for s in samples), samples
    assert [len(s) for s in samples] == sorted({len(s) for s in samples}), samples
    assert page.locator(f"{CHAT} .message-row.user-row").inner_text().strip() == prompt
    wait_textbox_idle(page)

    send(page, "and a second one")  # usable again: the next turn goes through and sees the first
    second = wait_for_bot(page, r'You said: "and a second one"\. Earlier turns: 1\.', reply_end)
    assert 'Seen: turn 1 text "hello from a"; turn 2 text "and a second"' in second
    wait_textbox_idle(page)
    assert page.locator(f"{TEXTBOX} textarea").input_value() == ""
    page.screenshot(path=str(SHOTS / f"standin-{layout_standin[0]}.png"), full_page=True)


def test_attached_image_reaches_the_model_and_shows(
    page: Any, tmp_path: Path, reply_end: str, layout_standin: tuple[str, Any]
) -> None:
    png = tmp_path / "red.png"
    Image.new("RGB", (37, 23), (200, 10, 10)).save(png, format="PNG")
    send(page, "what is in this picture?", png)
    text = wait_for_bot(page, r'You said: "what is in this picture\?"\. Image 1: PNG, 37x23\.', reply_end)
    assert 'Seen: turn 1 image PNG 37x23; turn 1 text "what is in".' in text
    page.wait_for_selector(f"{CHAT} .message-row.user-row img", timeout=10_000)  # drawn as an image
    wait_textbox_idle(page)
    page.screenshot(path=str(SHOTS / f"standin-{layout_standin[0]}-image.png"), full_page=True)
