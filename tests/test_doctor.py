"""``python -m phi4_bridge doctor``: on each stand-in layout every check passes (and Stop really stops the Space's
job); ``--json`` says the same as the lines; a real gradio ``Interface`` (no chat) is refused with a plain sentence
and exit 3; a Space that refuses turns fails the checks with its own words and docs/cli.md's exit code; ``--no-turns``
spends no GPU call. Real stand-in, real gradio server, the CLI as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from forkserver import run_command

from phi4_bridge.cli.doctor_report import NAME_WIDTH
from phi4_standin.launcher import reset, set_fault, start_standin, stats
from phi4_standin.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ["text turn", "image turn", "audio turn", "second turn", "stop"]
TURNS_TIMEOUT_S = 120


def doctor(space: ServerProcess, *extra: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    """``doctor --space ID`` (the Hub, here the stand-in's, gives the host), or ``--space-url URL`` alone."""
    where = ["--space-url", url] if url else ["--space", "microsoft/phi-4-multimodal"]
    args = [sys.executable, "-m", "phi4_bridge", "doctor", *where, "--hub-url", space.hub_url, *extra]
    return run_command(args, timeout=TURNS_TIMEOUT_S, cwd=ROOT)


def lines_of(out: str) -> dict[str, str]:
    """Each printed line by its name (the first NAME_WIDTH columns)."""
    return {line[:NAME_WIDTH].strip(): line[NAME_WIDTH:].strip() for line in out.splitlines() if line[:1] != " "}


@pytest.fixture(scope="module", params=["classic", "official", "chatinterface"])
def layout(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # a paced reply (40 chunks, 20 ms apart), so that Stop lands while the Space is still answering
    with start_standin(pace_ms=20, chunks=40, layout=request.param) as proc:
        yield proc


def test_every_check_passes_on_each_standin_layout_and_stop_stops_the_spaces_job(layout: ServerProcess) -> None:
    reset(layout.url)
    run = doctor(layout)
    assert run.returncode == 0, run.stdout + run.stderr
    got = lines_of(run.stdout)
    assert got["hub"].startswith("ok    microsoft/phi-4-multimodal: RUNNING")
    assert got["config"].startswith("ok    /config answered: gradio ")
    assert "api_prefix '/gradio_api'" in got["config"] and "queue protocol sse_v3" in got["config"]
    assert got["chat"].startswith("submit of multimodaltextbox")
    assert any(name.startswith("step ") and "(queue, streams" in words for name, words in got.items())
    assert got["text"].startswith("into multimodaltextbox") and got["images"] and got["audio"]
    for name in CHECKS:
        assert got[name].startswith("PASS"), f"{name}: {got[name]}"
    assert "the Space's chat holds the first turn" in got["second turn"]
    assert run.stdout.splitlines()[-1] == "verdict: the bridge can drive microsoft/phi-4-multimodal: every check passed"
    counters = stats(layout.url)
    assert counters["cancelled"] == 1, "Stop must stop the job on the Space itself"
    assert counters["calls"] == 6, "five checks: six turns, one of them stopped"


def test_json_says_the_same_as_the_lines(standin: ServerProcess) -> None:
    reset(standin.url)
    shown = lines_of(doctor(standin).stdout)
    reset(standin.url)
    run = doctor(standin, "--json")
    assert run.returncode == 0
    report = json.loads(run.stdout)
    assert [c["name"] for c in report["checks"]] == CHECKS and all(c["ok"] is True for c in report["checks"])
    assert all(c["first_text_s"] > 0 and c["total_s"] >= c["first_text_s"] for c in report["checks"])
    assert [f["name"] for f in report["found"]] == ["hub", "config"]
    assert report["verdict"] == "the bridge can drive microsoft/phi-4-multimodal: every check passed"
    assert report["exit_code"] == 0 and report["space_url"] == standin.url
    chain = report["chain"]
    assert [o["name"] for o in chain["options"]] == ["top_p", "top_k", "temperature", "repetition_penalty",
                                                      "max_new_tokens"]
    assert shown["options"].startswith("top_p (0 to 1; default 0.95)")
    assert any(s["streams"] and s["queue"] and s["zerogpu"] for s in chain["steps"])
    assert f"into {chain['text_input']['kind']} {chain['text_input']['id']}" == shown["text"]


def test_no_turns_spends_no_gpu_call(standin: ServerProcess) -> None:
    reset(standin.url)
    run = doctor(standin, "--no-turns")
    assert run.returncode == 0, run.stderr
    assert stats(standin.url)["calls"] == 0
    assert "live checks not run: --no-turns" in run.stdout.splitlines()[-1]
    assert not any(name in lines_of(run.stdout) for name in CHECKS)


def test_an_unreachable_space_is_exit_3(standin: ServerProcess) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = doctor(standin, url=url)
    assert run.returncode == 3
    got = lines_of(run.stdout)
    assert got["hub"] == f"ok    not asked: no Space id was given, only its address {url}"
    assert got["config"].startswith(f"FAIL  Cannot reach the Space at {url} (")


def test_a_space_the_hub_does_not_know_is_exit_3(standin: ServerProcess) -> None:
    run = run_command([sys.executable, "-m", "phi4_bridge", "doctor", "--space", "nobody/nothing", "--hub-url",
                       standin.hub_url, "--json"], timeout=60, cwd=ROOT)
    assert run.returncode == 3
    report = json.loads(run.stdout)
    assert report["found"][0]["name"] == "hub" and report["found"][0]["ok"] is False
    assert "nobody/nothing" in report["found"][0]["detail"] and report["checks"] == []


def test_a_space_that_refuses_turns_fails_the_checks_with_its_words(standin: ServerProcess) -> None:
    reset(standin.url)
    title, text = "ZeroGPU quota exceeded", "No GPU was available after 60s. Try re-running outside of examples"
    set_fault(standin.url, "says", title=title, text=text)
    try:
        run = doctor(standin, "--json")
    finally:
        reset(standin.url)
    assert run.returncode == 4, "docs/cli.md: 4 for busy GPUs"
    report = json.loads(run.stdout)
    first = report["checks"][0]
    assert first["ok"] is False and first["error_type"] == "GpuBusy"
    assert first["detail"].startswith("All of the Space's GPUs are busy right now; try again in a minute.")
    assert first["space_says"] == f"{title}: {text}"
    assert report["verdict"] == ("5 of 5 checks failed (text turn, image turn, audio turn, second turn, stop). For a "
                                 "bug report, paste the output of the same command with --json.")


def test_space_auto_says_which_space_it_took(standin: ServerProcess) -> None:
    reset(standin.url)
    run = run_command([sys.executable, "-m", "phi4_bridge", "doctor", "--space", "auto", "--hub-url",
                       standin.hub_url, "--no-turns"], timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert lines_of(run.stdout)["hub"] == f"ok    microsoft/phi-4-multimodal: RUNNING on zero-a10g, host {standin.url}"
    assert stats(standin.url)["calls"] == 0


def test_the_says_fault_needs_a_text(standin: ServerProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        set_fault(standin.url, "says", title="ZeroGPU quota exceeded")
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error"] == "the fault 'says' needs a text (and may have a title)"
