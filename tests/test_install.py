"""``pip install .`` gives both commands, as README says: ``phi4-mirror`` (the app) and ``phi4-bridge`` (the CLI,
``serve`` included), working from any folder, with the app's example images inside the package.

A real install as a newcomer makes it: a fresh virtual environment that sees none of the machine's packages, the
dependencies ``pyproject.toml`` declares (and nothing else) from the registry, then ``pip install .``, so a
dependency that ``pyproject.toml`` forgets shows up as a command that crashes, and ``pip check`` confirms the set.
Run from a folder that holds no source, so nothing is imported from the checkout by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phi4_standin.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
# the servers' environment on top of ours: nothing from the checkout, and .pyc files written (an empty value is off)
NO_PATH = {"PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": ""}
SKIP = shutil.ignore_patterns(".git", "artifacts", "__pycache__", "build", "*.egg-info", ".venv*", "*.log")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a venv where the project was installed with ``pip install``."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=SKIP)
    venv = root / "venv"
    # The base interpreter, not this (maybe virtual) one's site: a venv made from inside a venv would otherwise
    # inherit nothing useful either way; without --system-site-packages it sees only what pip puts in it.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # The dependencies, from pyproject.toml alone, by scripts/pip_install.py (uv with pip's configuration, pip if
    # uv cannot): pip's resolver spent about 25 s of CPU here weighing every file PyPI lists, for the same set.
    deps = subprocess.run([python, str(source / "scripts" / "pip_install.py"), "-r", str(source / "pyproject.toml")],
                          capture_output=True, text=True, timeout=900, cwd=root, env=clean_env())
    assert deps.returncode == 0, deps.stdout + deps.stderr
    # The project itself by pip, as README's `pip install .` builds and installs it (its dependencies are there)
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
                          capture_output=True, text=True, timeout=900, cwd=root, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    shutil.rmtree(source)  # the installed copy must stand alone
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, timeout=120, cwd=root,
                           env=clean_env())
    assert check.returncode == 0, check.stdout + check.stderr
    return venv / "bin"


def clean_env() -> dict[str, str]:
    """This environment less what would let the install lean on the checkout or on the test's own venv."""
    drop = {"PYTHONPATH", "HF_TOKEN", "PHI4_SPACE", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    here = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != here)
    return env


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

    from phi4_standin.process import ServerProcess, free_port

    port = free_port()
    app = ServerProcess("installed app", [str(installed / "phi4-mirror"), "--standin", "--port", str(port)], port,
                        env=NO_PATH, cwd=tmp_path)
    with app:
        app.wait_ready("/", timeout=120)
        reply = Client(app.url, verbose=False).predict({"text": "from the install", "files": []}, api_name="/chat")
        assert reply.startswith('You said: "from the install". Earlier turns: 0.'), reply
    where = run([str(installed / "python"), "-c", "import mirror.chat.chat_values as cv, app; "
                 "print(cv.EXAMPLES_DIR / 'red-circle.png', (cv.EXAMPLES_DIR / 'red-circle.png').is_file(), "
                 "app.__file__)"], tmp_path)
    assert where.returncode == 0, where.stderr
    example, exists, app_file = where.stdout.split()
    site = str(installed.parent / "lib")
    assert exists == "True" and example.startswith(site) and app_file.startswith(site), where.stdout


def test_phi4_bridge_serve_answers_an_openai_request_from_the_install(installed: Path, standin: ServerProcess,
                                                                       tmp_path: Path):
    """``phi4-bridge serve`` (the OpenAI API without the UI) starts from the install and answers one request."""
    import json
    import urllib.request

    from phi4_standin.process import free_port

    port = free_port()
    server = ServerProcess("installed serve", [str(installed / "phi4-bridge"), "serve", "--port", str(port),
                                               "--space-url", standin.url, "--hub-url", standin.url], port,
                           env=NO_PATH, cwd=tmp_path)
    with server:
        server.wait_ready("/v1/models", timeout=120)
        body = {"model": "phi-4-multimodal", "messages": [{"role": "user", "content": "served?"}]}
        request = urllib.request.Request(f"{server.url}/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            reply = json.load(answer)
    text = reply["choices"][0]["message"]["content"]
    assert text.startswith('You said: "served?". Earlier turns: 0.'), reply


def test_every_command_starts_from_the_install(installed: Path, tmp_path: Path):
    """``--help`` of each command exits 0: an import that the install lacks would crash it first."""
    for cmd in (["phi4-bridge", "--help"], ["phi4-bridge", "serve", "--help"], ["phi4-bridge", "qa", "--help"],
                ["phi4-mirror", "--help"]):
        done = run([str(installed / cmd[0]), *cmd[1:]], tmp_path)
        assert done.returncode == 0 and "usage" in done.stdout.lower(), (cmd, done.stderr[-2000:])


def test_a_type_checker_reads_the_installed_packages_hints(installed: Path, tmp_path: Path):
    """Both packages ship ``py.typed`` (PEP 561): a user's mypy run against the install sees their real types, where
    without the marker it would report them as untyped (``import-untyped``) and treat every name as ``Any``."""
    user_code = tmp_path / "use.py"
    user_code.write_text("import mirror.visitors.budget\nimport phi4_bridge\n\n"
                         "reveal_type(phi4_bridge.BridgeConfig.from_env())\nreveal_type(mirror.visitors.budget.parse_rule)\n")
    done = run([sys.executable, "-m", "mypy", "--python-executable", str(installed / "python"),
                "--cache-dir", str(tmp_path / "cache"), "--strict", str(user_code)], tmp_path, timeout=300)
    assert 'Revealed type is "phi4_bridge.config.BridgeConfig"' in done.stdout, done.stdout + done.stderr
    assert 'Revealed type is "def (text: str) -> mirror.settings.Rule | None"' in done.stdout, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
