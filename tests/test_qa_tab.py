"""The app's QA tab, driven through gradio_client against a real ``python app.py`` on the stand-in."""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from app_server import start_app
from gradio_client import Client, handle_file
from PIL import Image

from phi4_bridge.standin.launcher import configure, reset, set_fault, stats


@pytest.fixture(scope="module")
def app(standin):
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url) as server:
        yield server


@pytest.fixture
def client(app, standin):
    reset(standin.url)
    return Client(app.url, verbose=False)  # a new client is a new visitor (own session, own state)


@pytest.fixture
def media(tmp_path) -> dict[str, str]:
    Image.new("RGB", (37, 23), "red").save(tmp_path / "red.png")
    Image.new("RGB", (20, 30), "green").save(tmp_path / "green.jpg", "JPEG")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image")
    return {p.name: str(p) for p in tmp_path.iterdir()}


class Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action")]


def run(client: Client, files=(), prompts="", expect="", case_file=None, concurrency=2):
    job = client.submit([handle_file(f) for f in files], prompts, expect,
                        handle_file(case_file) if case_file else None, concurrency, api_name="/qa_run")
    updates = list(job)
    return updates, job.result()


def downloaded(result) -> tuple[list[dict], str]:
    paths = {Path(p).name: p for p in result[3]}
    lines = Path(paths["results.jsonl"]).read_text().splitlines()
    return [json.loads(line) for line in lines], Path(paths["report.html"]).read_text()


def test_images_times_prompts_run_with_live_progress_and_downloads(client, standin, media):
    before = stats(standin.url)["calls"]
    updates, result = run(client, [media["red.png"], media["green.jpg"], media["empty.png"]],
                          "What is this?\n\n<b>Colour</b>?", expect="Image 1")
    status, table, choices, files, _ = result
    assert "finished: 4 passed, 0 failed, 2 errors" in status
    assert stats(standin.url)["calls"] - before == 4  # the empty file never reaches the Space
    assert len(updates) >= 6  # a first table, then one update per finished case (live progress)
    assert any("done" in u[0] and "of 6" in u[0] for u in updates[:-1])
    assert 'You said: "What is this?". Image 1: PNG, 37x23.' in table.replace("&quot;", '"')
    assert "&lt;b&gt;Colour&lt;/b&gt;" in table and "<b>Colour" not in table
    assert table.count("data:image/jpeg;base64,") == 4 and "the file is empty" in table
    records, report = downloaded(result)
    assert len(records) == 6 and sum(r["status"] == "pass" for r in records) == 4
    assert {r["id"] for r in records} >= {"red.png · prompt 1", "empty.png · prompt 2"}
    refs = Refs()
    refs.feed(report)
    assert refs.refs and all(r.startswith("data:") for r in refs.refs)
    assert "JPEG, 20x30" in report


def test_mark_rerun_failed_and_marked_and_compare_two_runs(client, standin, media):
    _, first = run(client, [media["red.png"], media["notes.png"]], "Describe\nCount")
    assert "2 passed, 0 failed, 2 errors" in first[0]
    marked = client.predict("red.png · prompt 2", "bad", "too vague", api_name="/qa_mark")
    assert "Marked" in marked[0] and "too vague" in marked[1]
    records, report = downloaded(marked)
    assert [r.get("note") for r in records if r.get("mark") == "bad"] == ["too vague"] and "too vague" in report

    before = stats(standin.url)["calls"]
    rerun = client.predict(2, api_name="/qa_rerun")
    # The two broken files fail again locally; only the marked-bad case goes to the Space again.
    assert stats(standin.url)["calls"] - before == 1
    assert "Run 2 (re-ran 3 of 4 from Run 1)" in rerun[0]
    records, _ = downloaded(rerun)
    assert len(records) == 4 and not any(r.get("mark") for r in records if r["id"] == "red.png · prompt 2")
    compare = rerun[4]
    assert "Run 1" in compare and "Run 2" in compare and "too vague" in compare
    # the same replies and results again (the stand-in is deterministic): no row is highlighted
    assert "0 of 4 cases changed between the two runs (highlighted)." in compare and 'class="changed"' not in compare

    missing = client.predict("no such case", "bad", "", api_name="/qa_mark")
    assert "Pick a finished case" in missing[0]


def test_a_case_file_with_expectations_and_files_matched_among_uploads(client, media, tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join([
        json.dumps({"id": "ok", "image": "pics/red.png", "prompt": "Size?", "expect": "37x23"}),
        json.dumps({"id": "wrong", "image": "red.png", "prompt": "Size?", "expect": "99x99"}),
        json.dumps({"id": "elsewhere", "image": "/etc/hostname", "prompt": "read a file of the server"}),
        "{broken",
    ]) + "\n")
    _, result = run(client, [media["red.png"]], case_file=str(cases))
    assert "1 passed, 1 failed, 2 errors" in result[0]
    records = {r["id"]: r for r in downloaded(result)[0]}
    assert records["ok"]["passed"] is True and records["wrong"]["passed"] is False
    assert "was not uploaded" in records["elsewhere"]["error"] and records["4"]["error_type"] == "InvalidCase"


def test_visitors_have_their_own_runs_and_bad_input_is_explained(client, app):
    other = Client(app.url, verbose=False)
    assert "Run some cases first" in other.predict(2, api_name="/qa_rerun")[0]
    _, result = run(other, prompts="   ")
    assert "Write at least one prompt" in result[0]


def test_quota_stops_the_tab_run_with_a_clear_message(client, standin, media):
    set_fault(standin.url, "quota")
    try:
        _, result = run(client, [media["red.png"], media["green.jpg"]], "a\nb\nc", concurrency=1)
    finally:
        set_fault(standin.url, None)
    assert "stopped early" in result[0] and "quota" in result[0]
    records = downloaded(result)[0]
    assert [r["status"] for r in records].count("not_run") >= 4


def test_stop_cancels_the_run_and_marks_unfinished_cases_not_run(client, standin, media):
    configure(standin.url, pace_ms=150)  # about 1.2 s a case
    try:
        job = client.submit([handle_file(media["red.png"])], "a\nb\nc\nd", "", None, 1, api_name="/qa_run")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("1 of 4 done" in (o[0] or "") for o in job.outputs()):
            time.sleep(0.05)
        while time.monotonic() < deadline and stats(standin.url)["active"] == 0:
            time.sleep(0.02)  # until the next case runs on the Space: the Stop has a job there to cancel
        assert stats(standin.url)["active"] == 1, "the second case never reached the Space"
        # What the page's Stop does: gradio's frontend cancels the running event (the button's ``cancels=``; a
        # gradio_client caller must do that itself, as job.cancel() does), then runs the stop handler.
        job.cancel()
        stopped = client.predict(api_name="/qa_stop")
    finally:
        configure(standin.url, pace_ms=5)
    assert "stopped" in stopped[0]
    records = downloaded(stopped)[0]
    statuses = [r["status"] for r in records]
    assert len(records) == 4 and statuses.count("pass") >= 1 and statuses.count("not_run") >= 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and stats(standin.url)["active"] != 0:
        time.sleep(0.05)
    # the turn in flight was cancelled on the Space too
    assert stats(standin.url)["active"] == 0 and stats(standin.url)["cancelled"] == 1, stats(standin.url)
    assert stats(standin.url)["calls"] == 2, "no case starts after the Stop"


def test_compare_highlights_the_cases_that_changed(client, standin, media):
    """README: "compare the last two runs side by side (changed rows are highlighted)". A run on the quota fault
    (one error, the rest not run), then a re-run once the fault is gone: every case changed, and only those rows
    are highlighted (test_mark_rerun_failed_and_marked_and_compare_two_runs: nothing changed, nothing is)."""
    import re

    set_fault(standin.url, "quota")
    try:
        _, first = run(client, [media["red.png"]], "one\ntwo", concurrency=1)
    finally:
        set_fault(standin.url, None)
    assert [r["status"] for r in downloaded(first)[0]] == ["error", "not_run"]
    rerun = client.predict(1, api_name="/qa_rerun")
    assert [r["status"] for r in downloaded(rerun)[0]] == ["pass", "pass"]
    compare = rerun[4]
    assert "2 of 2 cases changed between the two runs (highlighted)." in compare
    rows = re.findall(r"<tr>(.*?)</tr>", compare, re.S)[1:]  # the header row first
    assert len(rows) == 2 and all(row.count('<td class="changed"') == 2 for row in rows), compare


@pytest.mark.xfail(strict=True, reason="product bug, reported: /qa_stop only marks the cases not run; the Stop "
                   "button's cancels= is done by gradio's frontend, so an API caller's run keeps going on the Space")
def test_qa_stop_alone_stops_the_run_on_the_space(client, standin, media):
    """The endpoint the module publishes for gradio_client callers (``/qa_stop``), called alone."""
    configure(standin.url, pace_ms=150)  # about 1.2 s a case
    try:
        job = client.submit([handle_file(media["red.png"])], "a\nb\nc\nd", "", None, 1, api_name="/qa_run")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stats(standin.url)["calls"] < 2:
            time.sleep(0.02)  # the second case runs on the Space
        client.predict(api_name="/qa_stop")
        job.result(timeout=30)  # the run's own end (the page would have stopped listening)
    finally:
        configure(standin.url, pace_ms=5)
    assert stats(standin.url)["calls"] == 2 and stats(standin.url)["cancelled"] == 1, stats(standin.url)
