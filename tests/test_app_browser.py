"""A real headless Chromium (Debian's) drives the real app subprocess, with a real stand-in Space behind it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import start_app
from browser import BOT, SHOTS, USER, message_text, open_page, send, wait_for, wait_saved
from PIL import Image

from phi4_standin.launcher import configure, reset, set_fault, start_standin, stats
from phi4_standin.process import ServerProcess

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def slow_standin() -> Iterator[ServerProcess]:
    with start_standin(pace_ms=120, chunks=24) as proc:
        yield proc


@pytest.fixture(scope="module")
def app(slow_standin: ServerProcess) -> Iterator[ServerProcess]:
    with start_app("--space-url", slow_standin.url, "--hub-url", slow_standin.hub_url) as server:
        yield server



@pytest.fixture
def page(browser, app: ServerProcess, slow_standin: ServerProcess):
    reset(slow_standin.url)
    with open_page(browser, app.url) as opened:
        yield opened


def bot_text(page) -> str:
    texts = page.locator(BOT).all_inner_texts()
    return texts[-1] if texts else ""



def wait_enabled(page, timeout: float = 30.0) -> None:
    """Until the input box is unlocked again: the turn is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not page.locator("#prompt textarea").is_enabled():
        time.sleep(0.1)
    assert page.locator("#prompt textarea").is_enabled()


SETTINGS = "Settings: top_p=0.95, top_k=50, temperature=0.8, repetition_penalty=1.05, max_new_tokens=512."


def test_image_prompt_streams_into_the_chat(page, tmp_path: Path) -> None:
    image = tmp_path / "teal.png"
    Image.new("RGB", (37, 23), "teal").save(image)
    # the stand-in's whole reply, written out (official layout: the Seen and Settings sentences, no padding)
    full = ('You said: "What is in this picture?". Image 1: PNG, 37x23. Earlier turns: 0. Seen: turn 1 image PNG '
            f'37x23; turn 1 text "What is in". {SETTINGS}')
    send(page, "What is in this picture?", image)
    samples: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = bot_text(page)
        if text and (not samples or text != samples[-1]):
            samples.append(text)
        if text == full and page.locator("#prompt textarea").is_enabled():
            break
        time.sleep(0.1)
    page.screenshot(path=str(SHOTS / "chat-image-reply.png"), full_page=True)
    grown = [s for s in samples if "You said" in s]
    assert grown and grown[-1] == full, f"the whole reply should show in the end; saw {samples!r}"
    assert len(grown) >= 3, f"expected the reply to grow over several updates, saw {samples!r}"
    assert all(full.startswith(part) for part in grown), "each update is the reply so far"
    assert page.locator(f"{USER} img").count() >= 1, "the image shows in the chat as an image"
    # docs/app.md: the badge says which Space answers, whether it is reachable, and anonymous (no HF_TOKEN here)
    badge = wait_for(page, "anonymous", where="#space-badge")
    assert "microsoft/phi-4-multimodal" in badge and "🟢 reachable" in badge and "signed in" not in badge, badge


def test_stop_ends_a_slow_reply_and_cancels_it_on_the_space(page, slow_standin: ServerProcess) -> None:
    configure(slow_standin.url, pace_ms=400, chunks=40)  # the whole reply would take 16 s
    before = stats(slow_standin.url)["cancelled"]
    send(page, "Tell me a very long story")
    wait_for(page, "You said")
    page.locator("#stop-btn").click()
    wait_for(page, "Stopped")
    deadline = time.monotonic() + 10
    while stats(slow_standin.url)["cancelled"] <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stats(slow_standin.url)["cancelled"] == before + 1, "the job was cancelled on the Space"
    assert stats(slow_standin.url)["active"] == 0
    # the messages only: the chat's box also holds gradio's status line (it showed "Error" for a moment once)
    frozen = page.locator("#chatbot .message-row").all_inner_texts()
    assert "You said" in frozen[1] and "Settings:" not in frozen[1], f"the reply should stop part-way: {frozen}"
    # Nothing may arrive after the Stop: watch for five of the Space's 400 ms chunks (a fixed time is the
    # point here: a reply still streaming would grow within it).
    time.sleep(2.0)
    assert page.locator("#chatbot .message-row").all_inner_texts() == frozen, "the reply kept growing after Stop"
    page.screenshot(path=str(SHOTS / "chat-stopped.png"), full_page=True)
    assert page.locator("#prompt textarea").is_enabled()
    chat = wait_saved(page, lambda c: bool(c) and (c[-1].get("metadata") or {}).get("title") == "⏹️ Stopped",
                      "the stopped turn")
    assert [m["role"] for m in chat] == ["user", "assistant", "assistant"], chat  # question, partial reply, note
    # what is saved is what was shown (a browser's inner text drops the trailing space a chunk may end with)
    assert " ".join(message_text(chat[1]).split()) in " ".join(frozen[1].split())
    assert "Settings:" not in message_text(chat[1])


def test_fault_shows_a_message_then_retry_answers_and_reload_keeps_the_chat(page, slow_standin, app) -> None:
    configure(slow_standin.url, pace_ms=10, chunks=6)
    set_fault(slow_standin.url, "quota", times=1)
    send(page, "Will this work?")
    text = wait_for(page, "(?i)quota")
    assert "Your ZeroGPU quota is used up." in text
    assert "Traceback" not in text and "eyJ" not in text
    page.screenshot(path=str(SHOTS / "chat-quota-message.png"), full_page=True)
    page.get_by_label("Retry").last.click()
    wait_for(page, r'You said: "Will this work\?"\. Earlier turns: 0')
    wait_enabled(page)
    # the chat is saved in the browser once the turn is over: the question and the reply, the quota note gone
    chat = wait_saved(page, lambda c: bool(c) and 'You said: "Will this work?"' in message_text(c[-1]),
                      "the answered turn")
    assert [(m["role"], message_text(m)) for m in chat] == [
        ("user", "Will this work?"),
        ("assistant", f'You said: "Will this work?". Earlier turns: 0. Seen: turn 1 text "Will this work?". '
                      f"{SETTINGS}"),
    ]
    page.reload()
    page.wait_for_selector("#prompt textarea")
    text = wait_for(page, r'You said: "Will this work\?"\. Earlier turns: 0')
    assert "Will this work?" in page.locator(USER).last.inner_text()
    assert "quota" not in text.lower()
    page.screenshot(path=str(SHOTS / "chat-after-reload.png"), full_page=True)


def test_two_browsers_never_see_each_other(browser, app: ServerProcess, slow_standin: ServerProcess) -> None:
    configure(slow_standin.url, pace_ms=60, chunks=12)
    pages = []
    contexts = [browser.new_context(viewport={"width": 1000, "height": 900}) for _ in range(2)]
    try:
        for ctx in contexts:
            p = ctx.new_page()
            p.goto(app.url)
            p.wait_for_selector("#prompt textarea")
            pages.append(p)
        send(pages[0], "alpha-visitor question")
        send(pages[1], "bravo-visitor question")
        wait_for(pages[0], 'You said: "alpha-visitor question"\\. Earlier turns: 0')
        wait_for(pages[1], 'You said: "bravo-visitor question"\\. Earlier turns: 0')
        for p in pages:  # both turns over: nothing more can arrive in either page
            wait_enabled(p)
        assert "bravo" not in pages[0].locator("#chatbot").inner_text()
        assert "alpha" not in pages[1].locator("#chatbot").inner_text()
        for i, p in enumerate(pages):
            p.screenshot(path=str(SHOTS / f"two-visitors-{i}.png"), full_page=True)
    finally:
        for ctx in contexts:
            ctx.close()
        reset(slow_standin.url)
