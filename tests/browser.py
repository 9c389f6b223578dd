"""The real headless Chromium every browser test uses: Debian's package, launched one way.

``playwright install`` cannot download a browser here, so tests drive ``/usr/bin/chromium``
(``bash scripts/install-test-deps.sh`` installs it). Under CI a missing browser fails the run instead of
skipping, so a broken install step cannot pass unseen.
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

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling hosts this closed network refuses.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (playwright's sync API), closed afterwards."""
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (bash scripts/install-test-deps.sh)"
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
