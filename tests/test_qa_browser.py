"""The QA tab in a real headless Chromium (Debian's), on the real app subprocess with the real stand-in behind it:
marks made in the gallery survive a restart of the app; a run of the command line shows in the tab; two runs
compare with their counts."""

from __future__ import annotations

import json
import re
import sqlite3
import sys

import pytest
from app_server import ROOT, start_app
from browser import SHOTS, wait_for
from forkserver import run_command
from PIL import Image

from phi4_standin.launcher import reset

pytestmark = pytest.mark.browser

CARDS = "#qa-gallery .qa-card"


def open_qa(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    page.goto(url)
    page.get_by_role("tab", name="QA").click()
    page.wait_for_selector("#qa-run")
    return context, page


def card(page, case_id: str):
    return page.locator(f'{CARDS}[data-case="{case_id}"]')


def test_twelve_cases_marked_in_the_gallery_survive_a_restart(browser, standin, tmp_path):
    reset(standin.url)
    db = tmp_path / "store" / "qa.sqlite3"
    images = []
    for name, colour, size in (("red.png", "red", (37, 23)), ("blue.png", "blue", (40, 30)),
                               ("green.png", "green", (20, 50))):
        Image.new("RGB", size, colour).save(tmp_path / name)
        images.append(str(tmp_path / name))
    args = ("--space-url", standin.url, "--hub-url", standin.hub_url, "--qa-db", str(db))
    marks = {  # case id -> (mark, note); three by the buttons, two by the keys
        "red.png · prompt 1": ("bad", "too vague"), "red.png · prompt 4": ("good", "names the colour"),
        "blue.png · prompt 2": ("bad", "wrong size"), "green.png · prompt 3": ("good", "short and right"),
        "green.png · prompt 4": ("bad", "misses the shape"),
    }
    with start_app(*args) as app:
        context, page = open_qa(browser, app.url)
        page.locator("#qa-files input[type=file]").set_input_files(images)
        wait_for(page, r"red\s*\.png[\s\S]*blue\s*\.png[\s\S]*green\s*\.png", where="#qa-files")  # uploaded
        page.locator("#qa-prompts textarea").fill("What is this?\nWhat size?\nWhat colour?\nAny shape?")
        page.locator("#qa-run").click()
        wait_for(page, r"finished: 12 passed, 0 failed, 0 errors, 0 not run", where="#qa-status", timeout=90)
        assert page.locator(CARDS).count() == 12
        assert page.locator(f"{CARDS} img").count() == 12  # a thumbnail on every card

        for case_id in ("red.png · prompt 1", "red.png · prompt 4", "blue.png · prompt 2"):
            mark, note = marks[case_id]
            card(page, case_id).locator("textarea.qa-note").fill(note)
            card(page, case_id).locator(f"button.qa-{mark}").click()
            wait_for(page, re.escape(f"{mark}") + r" \d\d:\d\d: " + re.escape(note), where=f'{CARDS}[data-case="'
                     f'{case_id}"] .qa-mark')
        for case_id in ("green.png · prompt 3", "green.png · prompt 4"):
            mark, note = marks[case_id]
            card(page, case_id).locator("textarea.qa-note").fill(note)
            page.keyboard.press("Escape")  # out of the note, onto its card
            assert page.evaluate("document.activeElement.dataset.case") == case_id
            page.keyboard.press(mark[0])  # g or b
            wait_for(page, re.escape(note), where=f'{CARDS}[data-case="{case_id}"] .qa-mark')
        # the focus stays on the card just marked (the gallery was drawn again); k moves back one card
        assert page.evaluate("document.activeElement.dataset.case") == "green.png · prompt 4"
        page.keyboard.press("k")
        assert page.evaluate("document.activeElement.dataset.case") == "green.png · prompt 3"
        page.keyboard.press("j")
        assert page.evaluate("document.activeElement.dataset.case") == "green.png · prompt 4"
        page.screenshot(path=str(SHOTS / "qa-gallery-marked.png"), full_page=True)
        context.close()

    with start_app(*args) as app:  # a new process on the same store
        context, page = open_qa(browser, app.url)
        page.wait_for_selector(CARDS)
        for case_id, (mark, note) in marks.items():
            shown = card(page, case_id).locator(".qa-mark").inner_text()
            assert shown.startswith(mark) and shown.endswith(note), (case_id, shown)
            assert card(page, case_id).locator("textarea.qa-note").input_value() == note
        assert page.locator(f"{CARDS} .qa-mark", has_text="unmarked").count() == 7
        page.locator("#qa-filter").get_by_text("bad", exact=True).click()
        wait_for(page, r"showing bad: 3 ", where="#qa-gallery")
        assert sorted(page.locator(CARDS).evaluate_all("cards => cards.map(c => c.dataset.case)")) == sorted(
            c for c, (m, _) in marks.items() if m == "bad")
        context.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM marks").fetchone()[0] == 5


def test_a_cli_run_appears_in_the_tab_and_two_runs_compare(browser, standin, tmp_path):
    reset(standin.url)
    db = tmp_path / "qa.sqlite3"
    Image.new("RGB", (37, 23), "red").save(tmp_path / "red.png")
    cases = tmp_path / "shapes.jsonl"
    common = ["--db", str(db), "--space-url", standin.url, "--hub-url", standin.hub_url, "--no-progress"]

    def write(version: int) -> None:
        rows = [{"id": "steady", "image": "red.png", "prompt": "Size?", "expect": "37x23"},
                {"id": "edited", "image": "red.png", "prompt": f"Wording {version}"}]
        cases.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def cli(out: str) -> None:
        done = run_command([sys.executable, "-m", "phi4_bridge", "qa", str(cases), "--out", str(tmp_path / out),
                            *common], cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr

    write(1)
    cli("a")
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--qa-db", str(db)) as app:
        context, page = open_qa(browser, app.url)
        wait_for(page, r"Run 1 · .* · shapes\.jsonl · cli", where="#qa-gallery")
        assert page.locator(CARDS).count() == 2
        write(2)  # a second CLI run while the app is up: "Runs" lists it
        cli("b")
        page.locator("#qa-runs-refresh").click()
        wait_for(page, r"Run 2 · .* · shapes\.jsonl · cli", where="#qa-gallery")
        assert "Wording 2" in page.locator("#qa-gallery").inner_text()

        for box, run in (("#qa-run-a", "1"), ("#qa-run-b", "2")):
            page.locator(f"{box} input").click()
            page.locator("ul[role=listbox] li").filter(has_text=f"Run {run} ·").first.click()
        page.locator("#qa-compare-btn").click()
        text = wait_for(page, r"changed: 1", where="#qa-compare")
        assert "fixed: 0" in text and "broke: 0" in text and "same: 1" in text
        changed = page.locator('#qa-compare tr[data-kind="changed"]')
        assert changed.count() == 1 and "edited" in changed.inner_text()
        assert "Wording 1" in changed.inner_text() and "Wording 2" in changed.inner_text()
        assert changed.locator("td.changed").count() == 2  # both sides highlighted
        page.screenshot(path=str(SHOTS / "qa-compare.png"), full_page=True)
        context.close()
    # both CLI runs are in the one store the tab read, each with its two cases answered
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, origin FROM runs ORDER BY id").fetchall() == [(1, "cli"), (2, "cli")]
        assert conn.execute("SELECT run_id, COUNT(*) FROM results WHERE status = 'pass' GROUP BY run_id").fetchall() \
            == [(1, 2), (2, 2)]
