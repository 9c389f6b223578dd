"""The fork server the session starts its apps and stand-ins from (tests/forkserver.py): a forked child must behave
as the new interpreter it replaces (argv, folder, environment, output, exit status, signals), and a start whose
environment the preloaded libraries would have read differently must not be forked."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from forkserver import ForkServer

from phi4_standin.process import ServerProcess, child_environment

SCRIPT = """
import os, sys, time
print("argv", sys.argv[1:], "cwd", os.getcwd(), "phi4", os.environ.get("PHI4_FORK_PROBE"), flush=True)
if sys.argv[1] == "wait":
    time.sleep(60)
sys.exit(int(sys.argv[2]))
"""


@pytest.fixture(scope="module")
def server():
    if ServerProcess.launcher is None:
        pytest.skip("PHI4_TEST_FORKSERVER=0: the session forks nothing")
    assert isinstance(ServerProcess.launcher, ForkServer)
    return ServerProcess.launcher


def _start(server: ForkServer, tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    log = Path(tempfile.mkstemp(dir=tmp_path, suffix=".log")[1])
    return server.start([sys.executable, str(script), *args], log, child_environment(env), tmp_path), log


def test_a_forked_child_runs_its_argv_in_its_folder_with_its_environment_and_exit_code(server, tmp_path):
    child, log = _start(server, tmp_path, "exit", "3", env={"PHI4_FORK_PROBE": "yes"})
    assert child.wait(60) == 3 and child.poll() == 3
    assert log.read_text().strip() == f"argv ['exit', '3'] cwd {tmp_path} phi4 yes"


def test_a_forked_child_dies_of_the_signal_sent_to_it(server, tmp_path):
    child, log = _start(server, tmp_path, "wait", "0")
    assert child.poll() is None
    child.send_signal(signal.SIGTERM)
    assert child.wait(60) == -signal.SIGTERM


def test_only_this_python_and_an_environment_differing_in_phi4_variables_alone_is_forked(server):
    here = [sys.executable, "app.py"]
    assert server.takes(here, child_environment({"PHI4_TIMEOUT_SILENCE": "5"}))
    assert server.takes([sys.executable, "-m", "phi4_standin"], child_environment())
    for env in ({"HOME": "/elsewhere"}, {"GRADIO_TEMP_DIR": "/elsewhere"}, {"HF_TOKEN_PATH": "/t"}):
        assert not server.takes(here, child_environment(env)), env
    assert not server.takes(["/usr/bin/python3.9", "app.py"], child_environment())
    assert not server.takes([sys.executable, "-c", "pass"], child_environment())
    assert os.environ.get("PHI4_FORK_PROBE") is None
