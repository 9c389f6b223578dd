"""The app's Generation settings in a real browser: built from the Space's own controls, and what the visitor sets
reaches the Space's bot step (the stand-in's reply says what its bot step got), with an image reaching it too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_server import start_app
from browser import wait_for
from media_factory import png

from phi4_standin.launcher import start_standin
from phi4_standin.process import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def official() -> Iterator[ServerProcess]:
    with start_standin(layout="official", pace_ms=20, chunks=8) as proc:
        yield proc


@pytest.fixture(scope="module")
def app(official: ServerProcess) -> Iterator[ServerProcess]:
    with start_app("--space-url", official.url, "--hub-url", official.hub_url) as server:
        yield server


def test_the_spaces_sliders_are_offered_and_reach_its_bot_step(browser, app: ServerProcess, tmp_path):
    context = browser.new_context(viewport={"width": 1200, "height": 1400})
    page = context.new_page()
    try:
        page.goto(app.url)
        page.wait_for_selector("#prompt textarea")
        page.locator("#generation-settings").get_by_text("Generation settings").click()
        # the accordion renders its controls after the click: read the labels once the last one is there (read at
        # once, a loaded machine gave [] in a CI run)
        page.locator("#generation-settings label").get_by_text("Max New Tokens").wait_for(timeout=15_000)
        labels = page.locator("#generation-settings label").all_inner_texts()
        for label in ("Top-p", "Top-k", "Temperature", "Repetition Penalty", "Max New Tokens"):
            assert any(label in text for text in labels), f"{label!r} not offered: {labels}"
        temperature = page.locator("#generation-settings input[type=number]").nth(2)
        temperature.fill("0.2")
        temperature.press("Enter")
        # the page holds the new value once the slider itself shows it; only then is it part of the next turn
        page.wait_for_function("document.querySelectorAll('#generation-settings input[type=range]')[2].value "
                               "=== '0.2'", timeout=15_000)
        temperature.blur()
        page.locator("#prompt input[type=file]").set_input_files(str(png(tmp_path / "red.png", 30, 20)))
        page.wait_for_selector("#prompt img", timeout=15_000)
        page.locator("#prompt textarea").fill("What is in it?")
        page.locator("#prompt textarea").press("Enter")
        reply = wait_for(page, r"max_new_tokens=512\.")
        assert ('Seen: turn 1 image PNG 30x20; turn 1 text "What is in". Settings: top_p=0.95, top_k=50, '
                "temperature=0.2, repetition_penalty=1.05, max_new_tokens=512.") in reply
    finally:
        context.close()
