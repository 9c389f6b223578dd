"""The fork server the session starts its apps and stand-ins from (tests/forkserver.py): a forked child must behave
as the new interpreter it replaces (argv, folder, environment, output, exit status, signals), and a start whose
environment the preloaded libraries would have read differently must not be forked, or must be read again."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from forkserver import ForkServer, ForkServers, run_command

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
    assert isinstance(ServerProcess.launcher, ForkServers)
    return ServerProcess.launcher.main


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
    """The rule, on the server's own environment plus one change each (the session's environment may by now hold a
    variable another test left, which is what the rule is for)."""
    here, base = [sys.executable, "app.py"], server.env
    assert server.reasons_not_to_fork(here, {**base, "PHI4_TIMEOUT_SILENCE": "5", "PYTEST_CURRENT_TEST": "t"}) == []
    assert server.reasons_not_to_fork([sys.executable, "-m", "phi4_standin"], base) == []
    for name in ("GRADIO_SERVER_PORT", "HF_ENDPOINT", "HF_HUB_OFFLINE"):  # read when imported
        assert server.reasons_not_to_fork(here, {**base, name: "/elsewhere"}) == [name]
    for name in ("HOME", "HF_HOME", "HF_TOKEN_PATH", "HF_TOKEN", "GRADIO_TEMP_DIR", "HF_HUB_DISABLE_TELEMETRY",
                 "MPLBACKEND"):
        # read again in the child, or only when used
        assert server.reasons_not_to_fork(here, {**base, name: "/elsewhere"}) == []
    assert server.reasons_not_to_fork(here, {k: v for k, v in base.items() if k != "PATH"}) == ["PATH"]
    assert server.reasons_not_to_fork(["/usr/bin/python3.9", "app.py"], base) == ["another program"]
    assert server.reasons_not_to_fork([sys.executable, "-c", "pass"], base) == ["another program"]


def test_a_declared_family_is_forked_by_a_server_of_its_own_environment(tmp_path):
    """The matrix's Spaces (another venv's Python, ``HF_HUB_OFFLINE``) are forked from a server started with their
    environment; a start the session's server would refuse and no family claims still starts anew."""
    pool = ServerProcess.launcher
    if not isinstance(pool, ForkServers):
        pytest.skip("PHI4_TEST_FORKSERVER=0: the session forks nothing")
    script = tmp_path / "child.py"
    script.write_text("import os; print(os.environ.get('FORK_FAMILY_PROBE'), os.environ.get('PHI4_FORK_PROBE'))")
    family = child_environment({"FORK_FAMILY_PROBE": "family"})
    other = child_environment({"FORK_FAMILY_PROBE": "undeclared"})
    args = [sys.executable, str(script)]
    assert not pool.takes(args, family) and not pool.takes(args, other)
    pool.serve(sys.executable, family)
    assert pool.takes(args, {**family, "PHI4_FORK_PROBE": "mine"})
    assert not pool.takes(args, other)
    log = Path(tempfile.mkstemp(dir=tmp_path, suffix=".log")[1])
    child = pool.start(args, log, {**family, "PHI4_FORK_PROBE": "mine"}, tmp_path)
    assert child.wait(60) == 0
    assert log.read_text().strip() == "family mine"
    server = next(s for s in pool.families.values() if s.env.get("FORK_FAMILY_PROBE") == "family")
    assert server.forked == 1 and server.proc is not None and server.proc.pid != pool.main.proc.pid


def test_a_short_command_is_forked_with_its_stdout_stderr_and_exit_code_apart(server, tmp_path):
    """``run_command`` (the suite's CLI runs): as ``subprocess.run(capture_output=True, text=True)``, forked."""
    script = tmp_path / "cli.py"
    script.write_text("import sys; print('out', sys.argv[1:]); print('err', file=sys.stderr); sys.exit(4)")
    before = server.forked
    done = run_command([sys.executable, str(script), "a b"], timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (4, "out ['a b']\n", "err\n")
    assert server.forked == before + 1
    elsewhere = run_command([sys.executable, str(script), "x"], timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert (elsewhere.returncode, elsewhere.stdout, elsewhere.stderr) == (4, "out ['x']\n", "err\n")
    assert server.forked == before + 1  # another HOME: a new interpreter, the same answers


def forked_and_fresh(server: ForkServer, code: str, env: dict[str, str], folder: Path) -> str:
    """``code`` run with ``env`` by a forked child and by a new interpreter: both succeed and print the same; what
    they printed."""
    import subprocess

    script = folder / "probe.py"
    script.write_text(code)
    args = [sys.executable, str(script)]
    assert server.reasons_not_to_fork(args, env) == []
    before = server.forked
    forked = run_command(args, timeout=60, cwd=folder, env=env)
    assert server.forked == before + 1
    fresh = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=folder, env=env)
    assert fresh.returncode == 0 and forked.returncode == 0, fresh.stderr + forked.stderr
    assert forked.stdout == fresh.stdout
    return fresh.stdout


# huggingface_hub's paths and token; in a forked child (gradio preloaded) gradio's copy of HF_HOME must agree
HUB_PATHS = """
import sys, huggingface_hub, huggingface_hub.constants as c
tunneling = sys.modules.get("gradio.tunneling")
assert tunneling is None or tunneling.HF_HOME == c.HF_HOME, (tunneling.HF_HOME, c.HF_HOME)
print(c.HF_HOME, c.HF_TOKEN_PATH, c.HF_HUB_CACHE, c.HF_STORED_TOKENS_PATH, huggingface_hub.get_token())
"""


@pytest.mark.parametrize("case", ["HOME", "HF_HOME", "HF_TOKEN_PATH", "HF_TOKEN"])
def test_a_child_with_its_own_hub_paths_or_token_sees_what_a_new_interpreter_sees(server, tmp_path, case):
    """huggingface_hub read its paths when the fork server imported it: a child started with another ``HOME``,
    ``HF_HOME`` or ``HF_TOKEN_PATH`` (the tests' way to give the app a saved login, or none) or ``HF_TOKEN`` must
    find the login file, cache and token that a new interpreter with that environment finds."""
    token_file = {"HOME": tmp_path / ".cache" / "huggingface" / "token", "HF_HOME": tmp_path / "hf" / "token",
                  "HF_TOKEN_PATH": tmp_path / "elsewhere-token", "HF_TOKEN": tmp_path / "unused"}[case]
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(f"hf_saved_for_{case}")
    value = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN_PATH": str(token_file),
             "HF_TOKEN": f"hf_env_for_{case}"}[case]
    base = {k: v for k, v in server.env.items() if k not in ("HF_HOME", "HF_TOKEN_PATH", "HF_TOKEN")}
    env = {**base, case: value}
    fresh = forked_and_fresh(server, HUB_PATHS, env, tmp_path)
    expected = f"hf_env_for_{case}" if case == "HF_TOKEN" else f"hf_saved_for_{case}"
    assert fresh.split()[-1] == expected, fresh  # the case did reach what it names


# gradio's upload folder as each of its modules has it, and huggingface_hub's telemetry switch
GRADIO_FOLDERS = """
import gradio.mcp, gradio.route_utils, gradio.routes, gradio.screen_recording_utils, gradio.utils
import huggingface_hub.constants as c
print([m.DEFAULT_TEMP_DIR for m in (gradio.route_utils, gradio.routes, gradio.mcp, gradio.screen_recording_utils)],
      gradio.utils.get_upload_folder(), c.HF_HUB_DISABLE_TELEMETRY)
"""


def test_a_child_with_its_own_upload_folder_and_telemetry_switch_sees_what_a_new_interpreter_sees(server, tmp_path):
    """The app points ``GRADIO_TEMP_DIR`` at its work folder and gradio turns ``HF_HUB_DISABLE_TELEMETRY`` on, so the
    app's own stand-in has both; gradio keeps a copy of the folder in four modules, read when imported."""
    env = {**server.env, "GRADIO_TEMP_DIR": str(tmp_path / "uploads"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    fresh = forked_and_fresh(server, GRADIO_FOLDERS, env, tmp_path)
    assert fresh.strip() == f"{[str(tmp_path / 'uploads')] * 4} {tmp_path / 'uploads'} True"


SIBLING = """
import sys
from pathlib import Path
from phi4_standin.process import ServerProcess
started = ServerProcess("sibling", [sys.executable, sys.argv[1]], 0)
started.proc.wait(60)
print(type(started.proc).__name__, Path(started.log_path).read_text().strip())
"""


def test_the_preloaded_modules_leave_matplotlib_to_the_child(server, tmp_path):
    """``MPLBACKEND`` may differ in a child (the app sets it, so the app's stand-in has it) because matplotlib, which
    reads it when imported, is not among what the fork server imported."""
    script = tmp_path / "mpl.py"
    script.write_text("import sys; print('matplotlib' in sys.modules)")
    before = server.forked
    done = run_command([sys.executable, str(script)], timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip(), server.forked) == (0, "False", before + 1), done.stderr


def test_a_server_that_a_forked_child_starts_is_forked_by_the_same_server(server, tmp_path):
    """The app's own stand-in (``--standin``, or its fallback) is a ``ServerProcess`` the app starts: forked too, by
    the fork server the app came from, so its parent is that server."""
    (tmp_path / "ppid.py").write_text("import os; print(os.getppid())")
    (tmp_path / "starter.py").write_text(SIBLING)
    done = run_command([sys.executable, str(tmp_path / "starter.py"), str(tmp_path / "ppid.py")], timeout=60,
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ForkedProcess {server.proc.pid}"


def test_a_child_s_children_have_this_copy_of_the_packages_on_their_path_once(monkeypatch):
    """``child_environment`` in a child (the app starting its stand-in) finds this copy already first on the path:
    it stays once, so the stand-in's environment is the app's and the rule above forks it."""
    from phi4_standin.process import PACKAGE_PARENT

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([PACKAGE_PARENT, "/elsewhere"]))
    assert child_environment()["PYTHONPATH"] == os.pathsep.join([PACKAGE_PARENT, "/elsewhere"])
    monkeypatch.setenv("PYTHONPATH", child_environment()["PYTHONPATH"])
    assert child_environment()["PYTHONPATH"] == os.pathsep.join([PACKAGE_PARENT, "/elsewhere"])
    monkeypatch.delenv("PYTHONPATH")
    assert child_environment()["PYTHONPATH"] == PACKAGE_PARENT
