"""The app's QA tab, driven through gradio_client against a real ``python app.py`` on the stand-in."""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from app_server import start_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AuthenticationError
from PIL import Image

from phi4_standin.launcher import configure, reset, set_fault, stats


@pytest.fixture(scope="module")
def app(standin):
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url) as server:
        yield server


@pytest.fixture
def client(app, standin, tmp_path):
    reset(standin.url)
    # a new client is a new visitor (own session); what it downloads (the exports) stays in the test's folder
    return Client(app.url, verbose=False, download_files=str(tmp_path / "downloads"))


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


def picked(out: tuple) -> tuple:
    """An output of /qa_run, /qa_rerun, /qa_stop with its run (a Dropdown update: choices and value) as the id."""
    out = list(out)
    if isinstance(out[2], dict):
        out[2] = out[2].get("value")
    return tuple(out)


def run(client: Client, files=(), prompts="", expect="", case_file=None, concurrency=2):
    """``/qa_run``: every streamed update, and the last (status, gallery HTML, run id, page)."""
    job = client.submit([handle_file(f) for f in files], prompts, expect,
                        handle_file(case_file) if case_file else None, concurrency, api_name="/qa_run")
    updates = list(job)
    return updates, picked(job.result())


def exported(client: Client, run_id: str) -> tuple[list[dict], str]:
    """``/qa_export`` of a run: its results.jsonl records and its report.html."""
    paths = {Path(p).name: p for p in client.predict(run_id, api_name="/qa_export")}
    assert set(paths) == {"results.jsonl", "report.html", "results.csv"}
    lines = Path(paths["results.jsonl"]).read_text().splitlines()
    return [json.loads(line) for line in lines], Path(paths["report.html"]).read_text()


def test_images_times_prompts_run_with_live_progress_and_exports(client, standin, media):
    before = stats(standin.url)["calls"]
    updates, result = run(client, [media["red.png"], media["green.jpg"], media["empty.png"]],
                          "What is this?\n\n<b>Colour</b>?", expect="Image 1")
    status, gallery, run_id, _ = result
    assert "finished: 4 passed, 0 failed, 2 errors, 0 not run" in status
    assert stats(standin.url)["calls"] - before == 4  # the empty file never reaches the Space
    assert len(updates) >= 6  # a first gallery, then one update per finished case (live progress)
    assert any("done" in u[0] and "of 6" in u[0] for u in updates[:-1])
    assert 'You said: "What is this?". Image 1: PNG, 37x23.' in gallery.replace("&quot;", '"')
    assert "&lt;b&gt;Colour&lt;/b&gt;" in gallery and "<b>Colour" not in gallery
    assert gallery.count("data:image/jpeg;base64,") == 4 and "the file is empty" in gallery
    assert gallery.count('class="qa-card"') == 6
    records, report = exported(client, run_id)
    assert len(records) == 6 and sum(r["status"] == "pass" for r in records) == 4
    assert {r["id"] for r in records} >= {"red.png · prompt 1", "empty.png · prompt 2"}
    refs = Refs()
    refs.feed(report)
    assert refs.refs and all(r.startswith("data:") for r in refs.refs)
    assert "JPEG, 20x30" in report


def test_mark_rerun_failed_and_marked_into_a_linked_run_and_compare(client, standin, media):
    _, first = run(client, [media["red.png"], media["notes.png"]], "Describe\nCount")
    assert "2 passed, 0 failed, 2 errors" in first[0]
    run_1 = first[2]
    marked = client.predict(run_1, "red.png · prompt 2", "bad", "too vague", "all", 1, api_name="/qa_mark")
    assert "Marked" in marked[0] and "too vague" in marked[1]
    records, report = exported(client, run_1)
    assert [r.get("note") for r in records if r.get("mark") == "bad"] == ["too vague"] and "too vague" in report

    before = stats(standin.url)["calls"]
    rerun = picked(client.predict(2, run_1, api_name="/qa_rerun"))
    run_2 = rerun[2]
    # The two broken files fail again locally (from the bytes the store kept); only the marked-bad case goes to
    # the Space again.
    assert stats(standin.url)["calls"] - before == 1
    assert f"Run {run_2} (re-ran 3 of 4 from Run {run_1})" in rerun[0] and int(run_2) > int(run_1)
    assert f"re-run of {run_1}" in rerun[1]
    records, _ = exported(client, run_2)
    assert len(records) == 4 and not any(r.get("mark") for r in records)
    assert [r["status"] for r in records] == ["pass", "pass", "error", "error"]
    compare = client.predict(run_1, run_2, api_name="/qa_compare")
    assert f"Run {run_1}" in compare and f"Run {run_2}" in compare and "too vague" in compare
    # the same replies and results again (the stand-in is deterministic): nothing is highlighted
    for kind, count in (("fixed", 0), ("broke", 0), ("changed", 0), ("same", 4)):
        assert f'class="qa-count-{kind}">{kind}: <b>{count}</b>' in compare, compare
    assert 'data-kind="same"' in compare and 'class="changed"' not in compare

    missing = client.predict(run_1, "no such case", "bad", "", "all", 1, api_name="/qa_mark")
    assert "is not one" in missing[0]


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
    assert "cases.jsonl · tab" in result[1]
    records = {r["id"]: r for r in exported(client, result[2])[0]}
    assert records["ok"]["passed"] is True and records["wrong"]["passed"] is False
    assert "was not uploaded" in records["elsewhere"]["error"] and records["4"]["error_type"] == "InvalidCase"


def test_runs_are_shared_by_visitors_and_bad_input_is_explained(client, app, media, tmp_path):
    _, mine = run(client, [media["red.png"]], "Shared?")
    other = Client(app.url, verbose=False, download_files=str(tmp_path / "other"))
    newest = other.predict("", "", "", api_name="/qa_runs")
    assert newest[0]["value"] == mine[2]  # another visitor sees the run (the QA tab is a team tool)
    gallery, page = other.predict(mine[2], "all", 1, api_name="/qa_show")
    assert "Shared?" in gallery and page == 1
    assert "Pick a run first" in other.predict(2, None, api_name="/qa_rerun")[0]
    assert "Pick a run first" in other.predict(2, "99999999", api_name="/qa_rerun")[0]
    _, result = run(other, prompts="   ")
    assert "Write at least one prompt" in result[0]
    assert "Nothing is running." in other.predict(api_name="/qa_stop")[0]


def test_quota_stops_the_tab_run_with_a_clear_message(client, standin, media):
    set_fault(standin.url, "quota")
    try:
        _, result = run(client, [media["red.png"], media["green.jpg"]], "a\nb\nc", concurrency=1)
    finally:
        set_fault(standin.url, None)
    assert "stopped early" in result[0] and "quota" in result[0]
    records = exported(client, result[2])[0]
    assert [r["status"] for r in records].count("not_run") >= 4


def _second_case_on_the_space(job, standin) -> None:
    """Wait until the first case finished and the second one runs on the Space (the Stop then has a job there)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("1 of 4 done" in (o[0] or "") for o in job.outputs()):
        time.sleep(0.05)
    while time.monotonic() < deadline and stats(standin.url)["active"] == 0:
        time.sleep(0.02)
    assert stats(standin.url)["active"] == 1, "the second case never reached the Space"


def _wait_idle(standin) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and stats(standin.url)["active"] != 0:
        time.sleep(0.05)


def test_stop_cancels_the_run_and_marks_unfinished_cases_not_run(client, standin, media):
    # about 3 s a case, so the second case still runs on the Space when the Stop reaches it (at 1.2 s a loaded
    # machine once let it finish first: nothing left to cancel)
    configure(standin.url, pace_ms=400)
    try:
        job = client.submit([handle_file(media["red.png"])], "a\nb\nc\nd", "", None, 1, api_name="/qa_run")
        _second_case_on_the_space(job, standin)
        # A caller that also cancels its own event (as gradio_client's job.cancel() does), then presses Stop.
        job.cancel()
        stopped = picked(client.predict(api_name="/qa_stop"))
    finally:
        configure(standin.url, pace_ms=5)
    assert "stopped" in stopped[0]
    records = exported(client, stopped[2])[0]
    statuses = [r["status"] for r in records]
    assert len(records) == 4 and statuses.count("pass") >= 1 and statuses.count("not_run") >= 2
    _wait_idle(standin)
    # the turn in flight was cancelled on the Space too
    assert stats(standin.url)["active"] == 0 and stats(standin.url)["cancelled"] == 1, stats(standin.url)
    assert stats(standin.url)["calls"] == 2, "no case starts after the Stop"


def test_compare_highlights_the_cases_that_changed(client, standin, media):
    """A run on the quota fault (one error, the rest not run), then a re-run once the fault is gone: both cases
    are fixed, and only those rows are highlighted (the test above: nothing changed, nothing is)."""
    import re

    set_fault(standin.url, "quota")
    try:
        _, first = run(client, [media["red.png"]], "one\ntwo", concurrency=1)
    finally:
        set_fault(standin.url, None)
    assert [r["status"] for r in exported(client, first[2])[0]] == ["error", "not_run"]
    rerun = picked(client.predict(1, first[2], api_name="/qa_rerun"))
    assert [r["status"] for r in exported(client, rerun[2])[0]] == ["pass", "pass"]
    compare = client.predict(first[2], rerun[2], api_name="/qa_compare")
    assert 'class="qa-count-fixed">fixed: <b>2</b>' in compare and 'class="qa-count-same">same: <b>0</b>' in compare
    rows = re.findall(r"<tr data-kind=\"(\w+)\">(.*?)</tr>", compare, re.S)
    assert [kind for kind, _ in rows] == ["fixed", "fixed"]
    assert all(row.count('<td class="fixed"') == 2 for _, row in rows), compare


def test_qa_stop_alone_stops_the_run_on_the_space(client, standin, media):
    """The endpoint the module publishes for gradio_client callers (``/qa_stop``), called alone: the run's turn in
    flight is cancelled on the Space and no further case starts (it used to mark the cases "not run" only, while
    the run went on on the Space, because only gradio's front end cancels a button's ``cancels=`` events)."""
    # about 3 s a case, so the second case still runs on the Space when the Stop reaches it (at 1.2 s a loaded
    # machine once let it finish first: nothing left to cancel)
    configure(standin.url, pace_ms=400)
    try:
        job = client.submit([handle_file(media["red.png"])], "a\nb\nc\nd", "", None, 1, api_name="/qa_run")
        _second_case_on_the_space(job, standin)
        stopped = picked(client.predict(api_name="/qa_stop"))
        final = picked(job.result(timeout=30))  # the run's own end
    finally:
        configure(standin.url, pace_ms=5)
    _wait_idle(standin)
    assert stats(standin.url)["calls"] == 2 and stats(standin.url)["cancelled"] == 1, stats(standin.url)
    assert "stopped" in stopped[0] and "stopped" in final[0]
    assert [r["status"] for r in exported(client, final[2])[0]] == ["pass", "not_run", "not_run", "not_run"]


def test_a_cli_run_appears_in_the_tab_and_any_two_runs_compare_with_counts(client, standin, tmp_path):
    """Two runs of ``python -m phi4_bridge qa`` (the app and the command share the store, $PHI4_QA_DB), the case
    file edited between them: one case fixed, one broken, one answered differently, two the same."""
    from phi4_bridge.cli.main import main

    Image.new("RGB", (37, 23), "red").save(tmp_path / "red.png")

    def cases(version: int) -> Path:
        path = tmp_path / "cases.jsonl"
        rows = [{"id": "same-1", "image": "red.png", "prompt": "Size?"},
                {"id": "same-2", "image": "red.png", "prompt": "Colour?"},
                {"id": "fix", "image": "red.png", "prompt": "Size?", "expect": "37x23" if version == 2 else "99x99"},
                {"id": "break", "image": "red.png", "prompt": "Size?", "expect": "37x23" if version == 1 else "1x1"},
                {"id": "change", "image": "red.png", "prompt": f"Case change v{version}"}]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    common = ["--space-url", standin.url, "--hub-url", standin.hub_url, "--no-progress"]
    assert main(["qa", str(cases(1)), "--out", str(tmp_path / "one"), *common]) == 1
    assert main(["qa", str(cases(2)), "--out", str(tmp_path / "two"), *common]) == 1

    newest = client.predict("", "", "cases", api_name="/qa_runs")[0]
    first, second = [value for _, value in newest["choices"][:2]][::-1]
    assert newest["value"] == second and "cases.jsonl · cli" in newest["choices"][0][0]
    gallery, _ = client.predict(second, "all", 1, api_name="/qa_show")
    assert "Case change v2" in gallery and gallery.count('class="qa-card"') == 5
    assert gallery.count("data:image/jpeg;base64,") == 5  # thumbnails from the stored bytes
    failed, _ = client.predict(second, "failed", 1, api_name="/qa_show")
    assert failed.count('class="qa-card"') == 1 and 'data-case="break"' in failed
    changed, _ = client.predict(second, "changed", 1, api_name="/qa_show")
    assert [c for c in ("same-1", "same-2", "fix", "break", "change") if f'data-case="{c}"' in changed] == [
        "fix", "break", "change"]

    compare = client.predict(first, second, api_name="/qa_compare")
    for kind, count in (("fixed", 1), ("broke", 1), ("changed", 1), ("same", 2)):
        assert f'class="qa-count-{kind}">{kind}: <b>{count}</b>' in compare, compare
    import re

    rows = re.findall(r'<tr data-kind="(\w+)"><td>([\w-]+)', compare)
    assert rows == [("same", "same-1"), ("same", "same-2"), ("fixed", "fix"), ("broke", "break"),
                    ("changed", "change")]
    assert "Case change v1" in compare and "Case change v2" in compare


def test_marks_carry_the_login_name(standin, media, tmp_path):
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--auth", "alice:wonder-land") as app:
        client = Client(app.url, auth=("alice", "wonder-land"), verbose=False, download_files=str(tmp_path / "d"))
        _, result = run(client, [media["red.png"]], "Who marks this?")
        marked = client.predict(result[2], "red.png · prompt 1", "good", "fine", "all", 1, api_name="/qa_mark")
        assert "<b>good</b> by alice" in marked[1]
        records, _ = exported(client, result[2])
        sneaky = client.predict(result[2], "red.png · prompt 1", "bad", "<img src=x onerror=alert(1)>", "all", 1,
                                api_name="/qa_mark")[1]
        assert "&lt;img src=x onerror=alert(1)&gt;" in sneaky and "<img src=x" not in sneaky
        with pytest.raises(AuthenticationError, match="credentials were not provided"):  # not even the config
            Client(app.url, verbose=False, download_files=str(tmp_path / "nobody"))
    assert [(r["mark"], r["note"], r["marked_by"]) for r in records] == [("good", "fine", "alice")]


def test_an_audio_case_gets_a_player_and_pages_hold_twenty_cards(client, tmp_path):
    from media_factory import wav

    voice = wav(tmp_path / "voice.wav", seconds=1.5)
    prompts = "\n".join(f"Prompt {i}" for i in range(1, 23))  # 22 cases: two pages
    _, result = run(client, [str(voice)], prompts, concurrency=4)
    assert "finished: 22 passed" in result[0], result[0]
    first = result[1]
    assert first.count('class="qa-card"') == 20 and "(page 1 of 2)" in first
    import re

    assert len(re.findall(r'<audio controls preload="none" src="data:audio/[\w.+-]+;base64,', first)) == 20
    assert first.count("🎵 voice.wav") == 20 and "<img" not in first
    second, number = client.predict(result[2], "all", 2, api_name="/qa_show")
    assert number == 2 and second.count('class="qa-card"') == 2 and "(page 2 of 2)" in second
    assert 'data-case="voice.wav · prompt 21"' in second and 'data-case="voice.wav · prompt 22"' in second
    beyond, number = client.predict(result[2], "all", 9, api_name="/qa_show")
    assert number == 2 and beyond == second  # a page past the end shows the last one
