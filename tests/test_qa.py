"""``python -m phi4_bridge qa``: case files, the runner, resume, quota stop and the report, against the stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from forkserver import run_command
from PIL import Image

from phi4_bridge import BridgeConfig, Phi4Bridge
from phi4_bridge.cli.main import main
from phi4_bridge.qa.cases import load_cases, parse_lines
from phi4_bridge.qa.report import render_report
from phi4_bridge.qa.runner import run_cases
from phi4_standin.launcher import configure, set_fault, stats

ROOT = Path(__file__).resolve().parents[1]


# ---- helpers ------------------------------------------------------------------------------------------------

def make_images(folder: Path) -> None:
    Image.new("RGB", (37, 23), "red").save(folder / "red.png")
    Image.new("RGBA", (64, 48), (0, 0, 255, 128)).save(folder / "blue.png")
    Image.new("RGB", (20, 30), "green").save(folder / "green.jpg", "JPEG")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("hello, I am text")
    big = folder / "noise.png"
    Image.effect_noise((200, 200), 60).save(big)
    (folder / "truncated.png").write_bytes(big.read_bytes()[: big.stat().st_size // 2])


def write_cases(path: Path, cases: list[dict | str]) -> Path:
    path.write_text("\n".join(c if isinstance(c, str) else json.dumps(c) for c in cases) + "\n")
    return path


def good_cases(n: int) -> list[dict]:
    return [{"id": f"good-{i}", "image": "red.png", "prompt": f"Case number {i}", "expect": f"Case number {i}"}
            for i in range(n)]


def qa(standin, cases: Path, out: Path, *extra: str) -> int:
    return main(["qa", str(cases), "--out", str(out), "--space-url", standin.url, "--hub-url", standin.hub_url,
                 "--no-progress", *extra])


def results(out: Path) -> dict[str, dict]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


class Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action", "data", "poster")]


# ---- case files ---------------------------------------------------------------------------------------------

def test_case_file_lines_become_cases_and_bad_lines_become_failed_cases(tmp_path):
    path = write_cases(tmp_path / "c.jsonl", [
        {"id": "a", "image": "x.png", "prompt": "p"}, "", "# a comment",
        {"image": ["x.png", "y.png"], "audio": "v.wav", "prompt": "two images", "expect": ["a", "b"]},
        "{not json", {"id": "b", "promt": "typo"}, {"id": "a", "prompt": "duplicate"}, {"id": "c"}, [1, 2],
    ])
    cases = load_cases(path)
    by_line = {c.line: c for c in cases}
    assert [c.line for c in cases] == [1, 4, 5, 6, 7, 8, 9]
    assert by_line[1].id == "a" and by_line[1].files == [str(tmp_path / "x.png")] and not by_line[1].invalid
    assert by_line[4].id == "4" and by_line[4].images == ["x.png", "y.png"] and by_line[4].expect == ["a", "b"]
    assert by_line[4].files[-1] == str(tmp_path / "v.wav")
    assert "line 5" in by_line[5].invalid and "JSON" in by_line[5].invalid
    assert "'promt'" in by_line[6].invalid
    assert "already used on line 1" in by_line[7].invalid and by_line[7].id != "a"
    assert "needs a prompt" in by_line[8].invalid and "JSON object" in by_line[9].invalid


def test_unusable_case_file_exits_2(tmp_path, capsys):
    assert main(["qa", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "blank.jsonl").write_text("\n\n")
    assert main(["qa", str(tmp_path / "blank.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "no cases" in capsys.readouterr().err


# ---- a whole run ------------------------------------------------------------------------------------------

def test_run_records_good_broken_and_expectations_and_writes_a_self_contained_report(standin_clean, tmp_path):
    make_images(tmp_path)
    cases = write_cases(tmp_path / "cases.jsonl", [
        {"id": "red", "image": "red.png", "prompt": "What colour?", "expect": "PNG, 37x23"},
        {"id": "blue", "image": "blue.png", "prompt": "<script>alert(1)</script>", "expect": "a zebra"},
        {"id": "jpeg", "image": "green.jpg", "prompt": "And this?"},
        {"image": "empty.png", "prompt": "empty"},
        {"id": "text", "image": "notes.png", "prompt": "text named png"},
        {"id": "truncated", "image": "truncated.png", "prompt": "truncated"},
        {"id": "missing", "image": "nowhere.png", "prompt": "missing file"},
        "this line is broken",
    ])
    before = stats(standin_clean.url)["calls"]
    assert qa(standin_clean, cases, tmp_path / "out", "--concurrency", "3") == 1
    got = results(tmp_path / "out")
    assert list(got) == ["red", "blue", "jpeg", "4", "text", "truncated", "missing", "8"]  # case-file order
    assert got["red"]["status"] == "pass" and got["red"]["passed"] is True
    assert got["red"]["reply"] == ('You said: "What colour?". Image 1: PNG, 37x23. Earlier turns: 0. Seen: turn 1 '
                                   'image PNG 37x23; turn 1 text "What colour?". Settings: top_p=0.95, top_k=50, '
                                   'temperature=0.8, repetition_penalty=1.05, max_new_tokens=512.')
    assert got["red"]["ttft_s"] > 0 and got["red"]["total_s"] >= got["red"]["ttft_s"]
    assert got["blue"]["status"] == "fail" and got["blue"]["passed"] is False and "a zebra" in got["blue"]["error"]
    assert got["jpeg"]["status"] == "pass" and got["jpeg"]["passed"] is None and "JPEG, 20x30" in got["jpeg"]["reply"]
    for broken in ("4", "text", "truncated", "missing"):
        assert got[broken]["status"] == "error" and got[broken]["error_type"] == "UploadRejected", got[broken]
        assert got[broken]["retryable"] is False
    assert "empty" in got["4"]["error"] and "truncated" in got["truncated"]["error"]
    assert got["8"]["error_type"] == "InvalidCase" and "line 8" in got["8"]["error"]
    assert stats(standin_clean.url)["calls"] - before == 3  # broken files never reach the Space

    page = (tmp_path / "out" / "report.html").read_text()
    refs = Refs()
    refs.feed(page)
    assert refs.refs and all(r.startswith("data:") for r in refs.refs), refs.refs
    assert "script" not in refs.tags and "link" not in refs.tags
    assert sum(r.startswith("data:image/jpeg;base64,") for r in refs.refs) == 3  # red, blue, jpeg thumbnails
    assert "PNG, 37x23. Earlier turns: 0." in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page and "the file is empty" in page


def test_exit_code_0_when_everything_passes_and_the_cli_runs_as_a_program(standin_clean, tmp_path):
    make_images(tmp_path)
    cases = write_cases(tmp_path / "cases.jsonl", good_cases(3))
    done = run_command([sys.executable, "-m", "phi4_bridge", "qa", str(cases), "--out", str(tmp_path / "out"),
                        "--space-url", standin_clean.url, "--hub-url", standin_clean.hub_url],
                       timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "3 cases: 3 passed" in done.stderr and "Traceback" not in done.stderr
    assert "3/3" in done.stderr  # the progress bar
    assert all(r["status"] == "pass" for r in results(tmp_path / "out").values())


def wait_until(ready, what: str, timeout: float = 60) -> None:
    """Wait for a state; a wait that times out fails the test instead of acting anyway."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"never saw {what} within {timeout:g} s")
        time.sleep(0.05)


# ---- resume -----------------------------------------------------------------------------------------------

def test_resume_skips_done_cases_reruns_changed_and_retryable_ones(standin_clean, tmp_path):
    make_images(tmp_path)
    out = tmp_path / "out"
    cases = write_cases(tmp_path / "cases.jsonl", good_cases(2) + [{"id": "bad", "image": "empty.png",
                                                                     "prompt": "x"}])
    assert qa(standin_clean, cases, out) == 1
    # A retryable error from an earlier run and a torn last line (the process died mid-write):
    with open(out / "results.jsonl", "a") as fh:
        fh.write(json.dumps({"id": "good-3", "status": "error", "error_type": "GpuBusy", "retryable": True}) + "\n")
        fh.write('{"id": "good-4", "status": "pa')
    edited = good_cases(5)
    edited[1]["prompt"] = "Case number 1, edited"
    edited[1]["expect"] = "edited"
    write_cases(cases, edited + [{"id": "bad", "image": "empty.png", "prompt": "x"}])

    before = stats(standin_clean.url)["calls"]
    assert qa(standin_clean, cases, out) == 1  # "bad" is still bad, and was not retried
    # good-0 done; good-1 edited, good-2 new, good-3 retryable error, good-4 torn line: 4 turns.
    assert stats(standin_clean.url)["calls"] - before == 4
    got = results(out)
    assert list(got) == ["good-0", "good-1", "good-2", "good-3", "good-4", "bad"]
    assert all(got[f"good-{i}"]["status"] == "pass" for i in range(5)) and "edited" in got["good-1"]["reply"]
    assert got["bad"]["error_type"] == "UploadRejected"

    before = stats(standin_clean.url)["calls"]
    assert qa(standin_clean, cases, out) == 1
    assert stats(standin_clean.url)["calls"] == before  # nothing left to do: nothing sent
    assert qa(standin_clean, cases, out, "--rerun") == 1
    assert stats(standin_clean.url)["calls"] - before == 5


def test_an_interrupted_run_resumes_without_losing_or_resending_finished_cases(standin_clean, tmp_path):
    make_images(tmp_path)
    out = tmp_path / "out"
    cases = write_cases(tmp_path / "cases.jsonl", good_cases(5))
    held_for = configure(standin_clean.url, pace_ms=120)["slow_start_s"]  # about 1 s a case
    # Ctrl-C as a terminal gives it: a suite started in the background (`cmd &` in a script) runs with SIGINT
    # ignored, and a child inherits that; so the run starts with Python's own handler, whatever launched pytest
    argv = ["qa", str(cases), "--out", str(out), "--concurrency", "1", "--no-progress",
            "--space-url", standin_clean.url, "--hub-url", standin_clean.hub_url]
    with_ctrl_c = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   "sys.argv = ['phi4_bridge', *sys.argv[1:]]; runpy.run_module('phi4_bridge', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", with_ctrl_c, *argv], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # SIGABRT dumps where it hangs
    try:
        wait_until(lambda: (out / "results.jsonl").exists()
                   and (out / "results.jsonl").read_text().count("\n") >= 2, "two finished cases")
        # Hold every later case on the Space, so the run cannot finish before the interrupt however loaded the
        # machine is, then interrupt while one is in progress there.
        configure(standin_clean.url, slow_start_s=120)
        set_fault(standin_clean.url, "slow_start")
        wait_until(lambda: stats(standin_clean.url)["active"] >= 1, "a case in progress on the Space")
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            pytest.fail("SIGINT did not end the run within 30 s; where it was:\n" + proc.communicate(timeout=30)[1])
    finally:
        if proc.poll() is None:
            proc.kill()
        set_fault(standin_clean.url, None)
        configure(standin_clean.url, slow_start_s=held_for)
    assert proc.returncode == 130, err
    finished = results(out)
    assert 2 <= len(finished) < 5 and all(r["status"] == "pass" for r in finished.values())

    configure(standin_clean.url, pace_ms=5)
    before = stats(standin_clean.url)["calls"]
    assert qa(standin_clean, cases, out) == 0
    assert stats(standin_clean.url)["calls"] - before == 5 - len(finished)
    final = results(out)
    assert len(final) == 5 and all(r["status"] == "pass" for r in final.values())
    for case_id, record in finished.items():
        assert final[case_id]["finished_at"] == record["finished_at"]  # kept, not redone


# ---- quota ------------------------------------------------------------------------------------------------

def test_quota_stops_the_run_with_a_clear_message_and_resume_finishes_it(standin_clean, tmp_path, capsys):
    make_images(tmp_path)
    out = tmp_path / "out"
    cases = write_cases(tmp_path / "cases.jsonl", good_cases(6))
    set_fault(standin_clean.url, "quota")
    try:
        before = stats(standin_clean.url)
        assert qa(standin_clean, cases, out, "--concurrency", "2") == 4
        after = stats(standin_clean.url)
    finally:
        set_fault(standin_clean.url, None)
    err = capsys.readouterr().err
    assert "stopped: Your ZeroGPU quota is used up" in err and "Run the same command again" in err
    assert after["errors"] - before["errors"] <= 2  # at most the turns already in flight met the quota
    got = results(out)
    assert len(got) == 6
    statuses = [r["status"] for r in got.values()]
    assert statuses.count("not_run") >= 4 and set(statuses) <= {"error", "not_run"}
    assert any(r["error_type"] == "QuotaExceeded" for r in got.values())
    page = (out / "report.html").read_text()
    assert "The run stopped early" in page and "quota" in page

    before_calls = stats(standin_clean.url)["calls"]
    assert qa(standin_clean, cases, out) == 0
    assert stats(standin_clean.url)["calls"] - before_calls == 6


# ---- the runner as a library ------------------------------------------------------------------------------

async def test_runner_keeps_concurrency_bounded(standin_clean, tmp_path):
    make_images(tmp_path)
    cases = parse_lines([json.dumps(c) for c in good_cases(6)], str(tmp_path))
    in_flight, peak = 0, 0

    def started(case):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)

    config = BridgeConfig.from_env(space_url=standin_clean.url, hub_url=standin_clean.hub_url)
    seen = []
    async with Phi4Bridge(config) as bridge:
        async for record in run_cases(bridge, cases, concurrency=2, on_start=started):
            in_flight -= 1
            seen.append(record["id"])
    assert sorted(seen) == sorted(c.id for c in cases) and peak == 2


def test_report_escapes_everything_and_needs_no_network(tmp_path):
    record = {"id": '"><img src=x>', "image": "a.png", "prompt": "<b>p</b>", "reply": "</td><a href='x'>",
              "status": "error", "error": "<i>e</i>", "error_type": "RemoteError", "mark": "bad", "note": "<u>n</u>"}
    page = render_report([record], {record["id"]: [str(tmp_path / "a.png")]})
    refs = Refs()
    refs.feed(page)
    assert refs.refs == [] and refs.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "p", "div",
                                             "span", "b", "table", "thead", "tr", "th", "tbody", "td", "br"}


def test_results_file_is_appended_as_cases_finish(standin_clean, tmp_path):
    """Each record is on disk (flushed) when its case finishes, before the run ends."""
    make_images(tmp_path)
    cases = write_cases(tmp_path / "cases.jsonl", good_cases(3))
    configure(standin_clean.url, pace_ms=80)
    proc = subprocess.Popen([sys.executable, "-m", "phi4_bridge", "qa", str(cases), "--out", str(tmp_path / "o"),
                             "--concurrency", "1", "--no-progress", "--space-url", standin_clean.url,
                             "--hub-url", standin_clean.hub_url], cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        counts = set()
        while proc.poll() is None:
            path = tmp_path / "o" / "results.jsonl"
            if path.exists():
                counts.add(path.read_text().count("\n"))
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        configure(standin_clean.url, pace_ms=5)
    assert proc.returncode == 0 and {1, 2} <= counts
    assert not os.path.exists(tmp_path / "o" / "results.jsonl.tmp")
