"""``pip install .`` gives both commands, as README says: ``phi4-mirror`` (the app) and ``phi4-bridge`` (the CLI),
working from any folder, with the app's example images inside the package.

A real install into a fresh virtual environment that sees the machine's packages (so nothing is downloaded but the
build backend), run from a folder that holds no source, so nothing is imported from the checkout by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phi4_bridge.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", "artifacts", "__pycache__", "build", "*.egg-info", ".venv*", "*.log")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a venv where the project was installed with ``pip install``."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=SKIP)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                           "--disable-pip-version-check", str(source)],
                          capture_output=True, text=True, timeout=600, cwd=root, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    shutil.rmtree(source)  # the installed copy must stand alone
    return venv / "bin"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HF_TOKEN", "PHI4_SPACE")}


def run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=clean_env())


def test_phi4_bridge_command_chats_from_any_folder(installed: Path, standin: ServerProcess, tmp_path: Path):
    done = run([str(installed / "phi4-bridge"), "chat", "installed?", "--space-url", standin.url,
                "--hub-url", standin.url], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('You said: "installed?". Earlier turns: 0.'), done.stdout


def test_phi4_mirror_command_serves_the_app_from_the_install(installed: Path, tmp_path: Path):
    """``phi4-mirror --standin`` from an empty folder: the page has the shipped examples, a turn is answered."""
    from gradio_client import Client

    from phi4_bridge.process import ServerProcess, free_port

    port = free_port()
    app = ServerProcess("installed app", [str(installed / "phi4-mirror"), "--standin", "--port", str(port)], port,
                        env={"PYTHONPATH": ""}, cwd=tmp_path)
    with app:
        app.wait_ready("/", timeout=120)
        reply = Client(app.url, verbose=False).predict({"text": "from the install", "files": []}, api_name="/chat")
        assert reply.startswith('You said: "from the install". Earlier turns: 0.'), reply
    where = run([str(installed / "python"), "-c", "import mirror.chat_values as cv, app; "
                 "print(cv.EXAMPLES_DIR / 'red-circle.png', (cv.EXAMPLES_DIR / 'red-circle.png').is_file(), "
                 "app.__file__)"], tmp_path)
    assert where.returncode == 0, where.stderr
    example, exists, app_file = where.stdout.split()
    site = str(installed.parent / "lib")
    assert exists == "True" and example.startswith(site) and app_file.startswith(site), where.stdout
