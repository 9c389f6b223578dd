"""The real headless Chromium every browser test uses: Debian's package, launched one way.

``playwright install`` cannot download a browser here, so tests drive Debian's ``chromium-headless-shell``
(``bash scripts/install-test-deps.sh`` installs it): the same Chromium (same version, Blink and V8) built for headless
use only, the build playwright itself runs headless. It needs about half the CPU of the full ``chromium`` for the
same page and chat (3.7 against 6.4-7.3 s for five page loads, each with one turn), and Chromium was a fifth of the
suite's CPU. Under CI a missing browser fails the run instead of skipping, so a broken install step cannot pass
unseen.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium-headless-shell"
# Without the background-networking flags Chromium keeps dialling hosts this closed network refuses.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (playwright's sync API), closed afterwards."""
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium-headless-shell is not installed (bash scripts/install-test-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_for(page: Any, pattern: str, timeout: float = 30.0, where: str = "#chatbot") -> str:
    """Poll the text of ``where`` until ``pattern`` appears in it (gradio updates the page as events arrive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.locator(where).inner_text()
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} did not appear in {where}; it shows:\n{page.locator(where).inner_text()}")


# ---- the app's page, as a person uses it -------------------------------------------------------------------------
USER = "#chatbot .message-row.user-row"
BOT = "#chatbot .message-row.bot-row"


@contextmanager
def open_page(browser: Any, url: str, **context_options: Any) -> Iterator[Any]:
    """A page of the app at ``url`` in a browser context of its own (its own visitor), prompt box ready."""
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, **context_options)
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#prompt textarea")
        yield page
    finally:
        context.close()


def send(page: Any, text: str, image: Path | None = None) -> None:
    """Attach ``image`` (waiting for its thumbnail: the upload finished), type ``text``, press Enter."""
    if image is not None:
        page.locator("#prompt input[type=file]").set_input_files(str(image))
        page.wait_for_selector("#prompt img", timeout=15_000)
    page.locator("#prompt textarea").fill(text)
    page.locator("#prompt textarea").press("Enter")


def message_text(message: dict[str, Any]) -> str:
    """The text parts of a saved chatbot message, joined."""
    return " ".join(part.get("text", "") for part in message["content"] if part.get("type") == "text")


# ---- the chat this browser saved (gr.BrowserState "phi4-mirror-chat") -------------------------------------------
# gradio keeps a BrowserState in localStorage encrypted with CryptoJS (AES-256-CBC under a passphrase, OpenSSL's
# "Salted__" format; the passphrase is the SHA-256 hex of the state's secret, which /config carries), so a test can
# wait for what was saved, not for a guessed time.

CHAT_STORAGE_KEY = "phi4-mirror-chat"


def _browser_state_secret(page: Any, key: str) -> str:
    import json
    import urllib.request

    origin = re.match(r"https?://[^/]+", page.url).group(0)
    with urllib.request.urlopen(origin + "/config", timeout=10) as resp:  # noqa: S310 - loopback
        config = json.load(resp)
    for component in config["components"]:
        props = component.get("props") or {}
        if props.get("storage_key") == key:
            return props["secret"]
    raise AssertionError(f"no BrowserState with storage_key {key!r} in /config")


def _cryptojs_decrypt(stored: str, secret: str) -> str:
    import base64
    import hashlib

    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    passphrase = hashlib.sha256(secret.encode()).hexdigest().encode()
    blob = base64.b64decode(stored.split(":", 1)[1])
    assert blob[:8] == b"Salted__", "not CryptoJS's passphrase format"
    salt, body = blob[8:16], blob[16:]
    derived, block = b"", b""
    while len(derived) < 48:  # OpenSSL's EVP_BytesToKey with MD5: a 32-byte key, then the 16-byte IV
        block = hashlib.md5(block + passphrase + salt).digest()  # noqa: S324 - CryptoJS's key derivation
        derived += block
    decryptor = Cipher(algorithms.AES(derived[:32]), modes.CBC(derived[32:48])).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(padded) + unpadder.finalize()).decode()


def saved_chat(page: Any, key: str = CHAT_STORAGE_KEY) -> Any:
    """The chat as this browser saved it (a gr.Chatbot value), or None when nothing is saved."""
    import json

    stored = page.evaluate("key => window.localStorage.getItem(key)", key)
    if stored is None:
        return None
    return json.loads(_cryptojs_decrypt(stored, _browser_state_secret(page, key)))


def wait_saved(page: Any, check: Any, what: str, timeout: float = 15.0) -> Any:
    """Poll the saved chat until ``check(chat)`` is true; the chat, or AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    chat = saved_chat(page)
    while not check(chat):
        if time.monotonic() > deadline:
            raise AssertionError(f"the browser did not save {what}; it holds {chat!r}")
        time.sleep(0.1)
        chat = saved_chat(page)
    return chat
