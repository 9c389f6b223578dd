"""The app when the official Space is in RUNTIME_ERROR on the Hub and another Phi-4 Space RUNNING.

``python app.py --space auto`` (and the default, which leaves a Space that is not running) chats through the running
one under a banner that names it; ``--no-fallback`` stays on the official Space and says "runtime error"; when the
official Space runs again the page offers the switch back. Real servers: two stand-ins (Hub + duplicate), the app.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from app_server import start_app
from browser import SHOTS, wait_for
from gradio_client import Client
from hub_world import DUPLICATE, OFFICIAL

from phi4_standin.launcher import stats

RUNTIME_ERROR = f"{OFFICIAL} has a runtime error on the Hub (Exit code: 1. Reason: CUDA out of memory (stand-in))."
OTHER_BANNER = f"Answers come from {DUPLICATE}, not from {OFFICIAL}."



def page_config(url: str) -> str:
    with urllib.request.urlopen(url + "/config", timeout=10) as resp:  # noqa: S310 - loopback
        return resp.read().decode()


def api_info(url: str) -> str:
    with urllib.request.urlopen(url + "/gradio_api/info", timeout=10) as resp:  # noqa: S310 - loopback
        return resp.read().decode()


def calls(url: str) -> int:
    """Bot steps the stand-in ran (``calls`` in ``/standin/stats``)."""
    return stats(url)["calls"]


def seen_by(url: str) -> int:
    with urllib.request.urlopen(f"{url}/standin/seen", timeout=10) as resp:  # noqa: S310 - loopback
        return sum(1 for record in json.loads(resp.read()).values() if record)


@pytest.mark.parametrize("space", [["--space", "auto"], []], ids=["auto", "default"])
def test_the_app_chats_through_the_running_space_under_a_banner_naming_it(clean, space):
    before = seen_by(clean.other.url)
    with start_app(*space, "--hub-url", clean.hub.url, timeout=120) as app:
        log = app.log_text()
        assert f"Using {DUPLICATE} (NOT the official {OFFICIAL}" in log
        assert "starting the offline stand-in" not in log
        config = page_config(app.url)
        assert OTHER_BANNER in config and RUNTIME_ERROR in config
        reply = Client(app.url, verbose=False).predict({"text": "who answers?", "files": []}, api_name="/chat")
        assert reply.startswith('You said: "who answers?".')
        assert seen_by(clean.other.url) == before + 1, "the duplicate answered"


def test_no_fallback_stays_on_the_official_space_and_says_runtime_error(clean):
    with start_app("--no-fallback", "--hub-url", clean.hub.url, timeout=120) as app:
        assert f"{RUNTIME_ERROR[:-1]} (--no-fallback): serving anyway" in app.log_text()
        config = page_config(app.url)
        assert RUNTIME_ERROR in config and "--no-fallback keeps the app on it" in config
        assert DUPLICATE not in config
        # without --allow-space-switch: no picker in the page, and no route (named or not) that switches
        assert "space-picker" not in config and "switch_space" not in config
        info = api_info(app.url)
        assert "switch_space" not in info and "/switch_space" not in info
        with pytest.raises(ValueError, match="switch_space"):
            Client(app.url, verbose=False).predict(DUPLICATE, api_name="/switch_space")


@pytest.mark.browser
def test_banner_and_badge_in_chromium_then_the_switch_back(clean, browser):
    with start_app("--space", "auto", "--hub-url", clean.hub.url, "--recheck-every", "1", timeout=120) as app:
        context = browser.new_context(viewport={"width": 1200, "height": 1000})
        try:
            page = context.new_page()
            page.goto(app.url)
            page.wait_for_selector("#prompt textarea")
            wait_for(page, OTHER_BANNER.replace(".", r"\."), where="#mirror-banner")
            wait_for(page, "runtime error on the Hub", where="#mirror-banner")
            badge = wait_for(page, f"not the official {OFFICIAL}", where="#space-badge")
            assert DUPLICATE in badge and f"Hub: {OFFICIAL} has a runtime error on the Hub" in badge
            page.locator("#prompt textarea").fill("hello from the browser")
            page.locator("#prompt textarea").press("Enter")
            wait_for(page, 'You said: "hello from the browser"')
            page.screenshot(path=str(SHOTS / "hub-other-space.png"), full_page=True)
            # the official Space is fixed: the Hub says RUNNING at an origin that answers (the Hub stand-in's own)
            clean.set_space(id=OFFICIAL, stage="RUNNING", host=clean.hub.url)
            page.locator("#switch-btn").wait_for(state="visible", timeout=30_000)
            wait_for(page, f"{OFFICIAL} answers again", where="#mirror-banner")
            page.locator("#switch-btn").click()
            # the banner empties; read once a round (a second read may catch gradio's progress timer, "0.1s", that
            # the page's periodic status refresh shows in it for a moment)
            deadline = time.monotonic() + 15
            banner = page.locator("#mirror-banner").inner_text().strip()
            while banner and time.monotonic() < deadline:
                time.sleep(0.1)
                banner = page.locator("#mirror-banner").inner_text().strip()
            assert banner == ""
            wait_for(page, f"Space `?{OFFICIAL}`? at `?{clean.hub.url}", where="#space-badge")
        finally:
            context.close()


def test_the_space_picker_switches_the_app_through_gradio_client(clean):
    clean.set_space(id=OFFICIAL, stage="RUNNING", host=clean.hub.url)  # the official Space runs, at the Hub's origin
    clean.set_space(id="a/phi-4-multimodal-sleepy", stage="SLEEPING", likes=3)
    with start_app("--allow-space-switch", "--hub-url", clean.hub.url, timeout=120) as app:
        assert '"/switch_space"' in api_info(app.url)
        client = Client(app.url, verbose=False)
        hub_before, other_before = calls(clean.hub.url), calls(clean.other.url)
        assert client.predict({"text": "one", "files": []}, api_name="/chat").startswith('You said: "one".')
        assert calls(clean.hub.url) == hub_before + 1
        banner, picked = client.predict(DUPLICATE, api_name="/switch_space")  # the banner and the picker (an update)
        assert picked["value"] == DUPLICATE
        assert (f"Answers come from {DUPLICATE}, not from {OFFICIAL}.</b> The host switched the app to {DUPLICATE} in "
                f"the page. {DUPLICATE} (at {clean.other.url}) is another Phi-4-multimodal Space") in banner
        assert client.predict({"text": "two", "files": []}, api_name="/chat").startswith('You said: "two".')
        assert calls(clean.other.url) == other_before + 1, "the Space picked answered"
        # a listed Space that is not running is refused: nothing changes
        again, picked = client.predict("a/phi-4-multimodal-sleepy", api_name="/switch_space")
        assert again == banner and picked["value"] == DUPLICATE
        # an id the Hub did not list is refused before the handler (gradio checks the dropdown's choices)
        with pytest.raises(Exception, match="not in the list of choices|not one of"):
            client.predict("evil/space", api_name="/switch_space")
        back, picked = client.predict(OFFICIAL, api_name="/switch_space")
        assert back == "" and picked["value"] == OFFICIAL
        assert client.predict({"text": "three", "files": []}, api_name="/chat").startswith('You said: "three".')
        assert calls(clean.hub.url) == hub_before + 2
        assert f"* The host switched the app to {DUPLICATE} in the page. Using {DUPLICATE}" in app.log_text()


@pytest.mark.browser
def test_the_space_picker_in_chromium_shows_the_stages_and_switches(clean, browser):
    with start_app("--space", "auto", "--allow-space-switch", "--hub-url", clean.hub.url, timeout=120) as app:
        context = browser.new_context(viewport={"width": 1200, "height": 1000})
        try:
            page = context.new_page()
            page.goto(app.url)
            page.wait_for_selector("#prompt textarea")
            wait_for(page, f"not the official {OFFICIAL}", where="#space-badge")
            page.get_by_text("Space", exact=True).first.click()  # open the accordion
            page.locator("#space-picker input").click()
            options = page.locator("[role=option]")
            options.first.wait_for(timeout=15_000)
            texts = [t.removeprefix("✓").strip() for t in options.all_inner_texts()]  # ✓ marks the one in use
            assert texts == [f"{OFFICIAL} (official) · has a runtime error on the Hub",
                             "mido09/phi-4-multimodal · was not found on the Hub (HTTP 404)",  # the short list's others
                             "ariG23498/phi4-multimodal · was not found on the Hub (HTTP 404)",
                             f"{DUPLICATE} · is running · in use"]
            page.screenshot(path=str(SHOTS / "hub-space-picker.png"), full_page=True)
            page.keyboard.press("Escape")
            # the official Space is fixed: ask the Hub again, pick it, use it
            clean.set_space(id=OFFICIAL, stage="RUNNING", host=clean.hub.url)
            page.locator("#space-refresh-btn").click()
            page.locator("#space-picker input").click()
            page.locator("[role=option]", has_text=f"{OFFICIAL} (official) · is running").click()
            page.locator("#space-use-btn").click()
            wait_for(page, f"Space `?{OFFICIAL}`? at `?{clean.hub.url}", where="#space-badge")
            assert page.locator("#mirror-banner").inner_text().strip() == ""
        finally:
            context.close()
