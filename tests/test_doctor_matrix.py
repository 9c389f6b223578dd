"""``doctor`` on the compatibility matrix (``tests/gradio_matrix.py``): real gradio 4, 5 and 6 Spaces of every
chat shape pass every check with no flag naming the shape; the Space with no chat (a ``gr.Interface`` with an
image and a text input) is refused with a plain sentence and exit 3, in the lines and in ``--json`` alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from forkserver import run_command
from gradio_matrix import no_hub

from phi4_bridge.cli.doctor_checks import FINISHED_FIRST
from phi4_bridge.cli.doctor_report import NAME_WIDTH

pytestmark = pytest.mark.matrix
ROOT = Path(__file__).resolve().parent.parent
CHECKS = ["text turn", "image turn", "audio turn", "second turn", "stop"]


def doctor(space, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_command([sys.executable, "-m", "phi4_bridge", "doctor", "--space-url", space.url, "--hub-url",
                        no_hub(), *extra], timeout=180, cwd=ROOT)


def lines_of(out: str) -> dict[str, str]:
    return {line[:NAME_WIDTH].strip(): line[NAME_WIDTH:].strip() for line in out.splitlines()}


def test_every_check_passes_on_every_matrix_space(matrix_space):
    run = doctor(matrix_space)
    got = lines_of(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert got["config"].startswith(f"ok    /config answered: gradio {matrix_space.generation}.")
    for name in CHECKS[:-1]:
        assert got[name].startswith("PASS"), f"{name}: {got[name]}"
    # When the Space's whole reply comes with its first text (textstream sets the chatbot once, at the end), Stop
    # has nothing to stop
    stop = got["stop"]
    assert stop.startswith("PASS") or stop == f"SKIP  {FINISHED_FIRST}", stop
    skipped = "" if stop.startswith("PASS") else " (1 skipped: stop)"
    assert run.stdout.splitlines()[-1] == \
        f"verdict: the bridge can drive {matrix_space.url}: every check passed{skipped}"


def test_the_space_with_no_chat_is_refused_with_a_plain_sentence(nochat_space):
    run = doctor(nochat_space)
    sentence = (f"{nochat_space.url} has no chat this bridge can drive: found an Interface with an image and a text "
                "input, no chatbot.")
    assert run.returncode == 3, run.stdout + run.stderr
    assert lines_of(run.stdout)["chat"] == f"FAIL  {sentence}"
    assert run.stdout.splitlines()[-1] == f"verdict: the bridge cannot drive this Space: {sentence}"
    as_json = doctor(nochat_space, "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 3 and report["exit_code"] == 3
    assert report["found"][-1] == {"name": "chat", "ok": False, "detail": sentence}
    assert report["chain"] is None and report["checks"] == []
