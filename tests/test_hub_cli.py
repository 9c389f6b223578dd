"""On the command line: the official Space in RUNTIME_ERROR, another Phi-4 Space RUNNING.

``python -m phi4_bridge spaces`` shows both with their stages; ``chat ... --space auto`` answers through the running
one and says so on the first line of stderr; asking the official one fails saying "runtime error"; ``qa`` alike.
"""

from __future__ import annotations

import json
import subprocess
import sys

from forkserver import environment_without, run_command
from hub_world import DUPLICATE, OFFICIAL


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = environment_without("PHI4_SPACE", "PHI4_SPACE_URL")
    env["HF_HOME"] = "/tmp/phi4-test-no-hf-login"  # no saved login either: the calls are anonymous
    return run_command([sys.executable, "-m", "phi4_bridge", *args], timeout=120,
                       env=env)


def test_spaces_lists_both_with_their_stages(clean):
    done = cli("spaces", "--hub-url", clean.hub.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["SPACE", "STAGE", "HARDWARE", "GRADIO", "LIKES", "DRIVABLE"]
    assert lines[1].split() == [OFFICIAL, "(official)", "RUNTIME_ERROR", "-", "5.18.0", "0", "-"]
    assert [DUPLICATE, "RUNNING", "zero-a10g", "5.18.0", "0", "yes"] in [line.split() for line in lines]
    assert f"--space auto would use: {DUPLICATE} at {clean.other.url}" in lines


def test_spaces_json_for_scripts(clean):
    done = cli("spaces", "--hub-url", clean.hub.url, "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in json.loads(done.stdout)}
    assert rows[OFFICIAL]["stage"] == "RUNTIME_ERROR" and rows[OFFICIAL]["official"] is True
    assert rows[OFFICIAL]["error_message"] == "Exit code: 1. Reason: CUDA out of memory (stand-in)"
    assert rows[DUPLICATE] | {"note": "?"} == rows[DUPLICATE] | {
        "stage": "RUNNING", "drivable": True, "usable": True, "host": clean.other.url, "sdk_version": "5.18.0",
        "official": False, "note": "?"}


def test_chat_space_auto_answers_through_the_running_one_and_says_so(clean):
    done = cli("chat", "Which Space is this?", "--space", "auto", "--hub-url", clean.hub.url)
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()[0]
    assert first == (f"Using {DUPLICATE} (NOT the official {OFFICIAL}: another Phi-4-multimodal Space) at "
                     f"{clean.other.url}, because {OFFICIAL} has a runtime error on the Hub (Exit code: 1. Reason: "
                     "CUDA out of memory (stand-in)).")
    assert done.stdout.startswith('You said: "Which Space is this?".')
    assert "chatinterface" in _seen_layouts(clean.other.url), "the reply came from the running duplicate"


def test_asking_the_official_space_fails_with_runtime_error(clean):
    done = cli("chat", "hello", "--hub-url", clean.hub.url)
    assert done.returncode == 3
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {OFFICIAL} has a runtime error on the Hub")
    assert "--space auto" in lines[0] and done.stdout == ""


def test_chat_with_a_paused_space_says_paused(clean):
    clean.set_space(id=DUPLICATE, stage="PAUSED")
    done = cli("chat", "hello", "--space", DUPLICATE, "--hub-url", clean.hub.url)
    assert done.returncode == 3
    assert done.stderr.strip() == f"error: {DUPLICATE} is paused by its owner."


def test_qa_space_auto_runs_through_the_running_one(clean, tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"id": "t", "prompt": "hello there", "expect": "hello there"}\n')
    done = cli("qa", str(cases), "--out", str(tmp_path / "out"), "--no-progress", "--space", "auto",
               "--hub-url", clean.hub.url)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0].startswith(f"Using {DUPLICATE} (NOT the official {OFFICIAL}")
    record = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[0])
    assert record["status"] == "pass"
    failed = cli("qa", str(cases), "--out", str(tmp_path / "out2"), "--no-progress", "--hub-url", clean.hub.url)
    assert failed.returncode == 3 and "runtime error" in failed.stderr


def _seen_layouts(url: str) -> set[str]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/standin/seen", timeout=10) as resp:  # noqa: S310 - loopback
        return {record.get("layout") for record in json.loads(resp.read()).values() if record}
