"""The matrix of test Spaces (``tests/gradio_spaces/``) on real gradio 4, 5 and 6: venvs, servers, fixtures.

Why: the stand-in was written beside the bridge and shares its guesses; Spaces written by others, on the gradio of
their day, are what users meet. Each shape runs as a real server of its generation on a loopback port.

- gradio 6 is this interpreter's own; gradio 4.44 and 5.20 get a venv each, built once from the pins in
  ``tests/gradio_spaces/requirements-gradio<N>.txt`` and cached under ``$PHI4_TEST_CACHE`` (default
  ``~/.cache/phi4-mirror``) in a folder named after a hash of the pins and the Python version, so a pin change
  builds a new one. A file lock keeps parallel pytest workers from building the same venv twice; pip's own cache
  is used. Building both takes about 2-4 minutes on a fresh machine (registries only), nothing afterwards.
- ``space_server(shape, generation)`` starts one shape as ``python <file> --port N`` with
  ``phi4_standin.process.ServerProcess``; its bot step appends a JSON line per run to ``server.runs_file``.
- Fixtures: ``matrix_space`` is session-scoped and parametrized over every (shape, generation) that exists, ids
  like ``demo-g5``; pytest then keeps one combination's servers up at a time; ``matrix_app`` is the app in front
  of it. ``nochat_space`` is the Space with no chat, per generation. Tests using them carry the ``matrix``
  marker (``-m "not matrix"`` skips them).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from forkserver import run_command

from phi4_standin.process import ServerProcess, child_environment, free_port

SPACES = Path(__file__).resolve().parent / "gradio_spaces"
GENERATIONS = ("4", "5", "6")
SHAPES: dict[str, tuple[str, tuple[str, ...]]] = {  # shape: (file, generations it exists in)
    "demo": ("multimodal_demo.py", GENERATIONS),  # (a) gradio's multimodal demo, user step queued
    "official": ("official_port.py", GENERATIONS),  # (b) unqueued user step, gr.State, titled files, sliders
    "chatinterface": ("chat_interface.py", GENERATIONS),  # (c) ChatInterface(multimodal=True), additional_inputs
    "gradio4": ("textbox_button.py", ("4", "5")),  # (d) Textbox + Submit + Image + Audio, tuples chatbot
    "sendbutton": ("send_button.py", GENERATIONS),  # (e) gr.on([submit, click]), hidden system prompt, dropdown
    "textstream": ("text_stream.py", GENERATIONS),  # (f) bot yields strings into a Textbox, chatbot set after
    "nochat": ("no_chat.py", GENERATIONS),  # (g) gr.Interface, no chatbot
}
CHAT_SHAPES = tuple(shape for shape in SHAPES if shape != "nochat")
MATRIX = [(shape, gen) for shape in CHAT_SHAPES for gen in SHAPES[shape][1]]
VENV_BUILD_TIMEOUT_S = 900.0
SPACE_STARTUP_TIMEOUT_S = 120.0


def cache_root() -> Path:
    return Path(os.environ.get("PHI4_TEST_CACHE") or Path.home() / ".cache" / "phi4-mirror")


def pins(generation: str) -> Path:
    return SPACES / f"requirements-gradio{generation}.txt"


def venv_dir(generation: str) -> Path:
    """Where this generation's venv lives: named after its pins and this Python, so either changing rebuilds."""
    key = hashlib.sha256(pins(generation).read_bytes() + sys.version.encode()).hexdigest()[:12]
    return cache_root() / f"gradio-{generation}-{key}"


def python_of(generation: str) -> str:
    """The interpreter that runs a Space of ``generation``, its venv built first when missing."""
    if generation == "6":
        return sys.executable
    folder = venv_dir(generation)
    python = folder / "bin" / "python"
    if (folder / ".ready").exists():
        return str(python)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it: wait for it
        if not (folder / ".ready").exists():
            build_venv(folder, pins(generation))
    return str(python)


def build_venv(folder: Path, requirements: Path) -> None:
    """A fresh venv (no system packages) with the pinned gradio; ``.ready`` marks it complete."""
    shutil.rmtree(folder, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)  # not this venv's site-packages
    subprocess.run([base, "-m", "venv", str(folder)], check=True, timeout=120)
    done = subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                           "-q", "-r", str(requirements)], capture_output=True, text=True,
                          timeout=VENV_BUILD_TIMEOUT_S)
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"building the venv of {requirements.name} failed:\n{done.stderr[-3000:]}")
    (folder / ".ready").write_text(requirements.read_text())


def space_environment(runs_file: Path | str) -> dict[str, str]:
    """What a Space of the matrix runs with (on top of ``child_environment``): its record of bot runs, no Hub."""
    return {"PHI4_MATRIX_RUNS_FILE": str(runs_file), "HF_HUB_OFFLINE": "1"}


def run_in_generation(space: Any, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``python args...`` with the Python of ``space``'s gradio generation, forked by that generation's fork server
    (declared by ``space_server``) when there is one: a client script of that venv's gradio_client."""
    return run_command([python_of(space.generation), *args], timeout=timeout,
                       env=child_environment(space_environment(space.runs_file)))


def space_server(shape: str, generation: str, runs_file: Path) -> ServerProcess:
    """One test Space as a real gradio server of its generation on a free loopback port, ready."""
    file, generations = SHAPES[shape]
    if generation not in generations:
        raise ValueError(f"shape {shape} does not exist on gradio {generation}")
    port = free_port()
    env = space_environment(runs_file)
    python = python_of(generation)
    family = getattr(ServerProcess.launcher, "serve", None)  # the session's fork servers (tests/forkserver.py):
    if family is not None:  # a generation's Spaces forked from one process that imported its gradio
        family(python, child_environment(env))
    server = ServerProcess(f"space-{shape}-g{generation}", [python, file, "--port", str(port)], port,
                           env=env, cwd=SPACES)
    server.wait_ready("/config", SPACE_STARTUP_TIMEOUT_S)
    server.shape, server.generation, server.runs_file = shape, generation, runs_file  # type: ignore[attr-defined]
    return server


def bot_runs(server: Any) -> list[dict[str, Any]]:
    """Every bot-step run of the Space so far (one dict each, with the ``reply`` it streamed), oldest first."""
    try:
        lines = Path(server.runs_file).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


class RunsSince:
    """The Space's bot-step runs from now on: ``replies()`` must equal the replies the user got, one per turn, in
    order; a run whose reply was dropped (or a turn run twice) shows as a difference."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.start = len(bot_runs(server))

    def replies(self) -> list[str]:
        return [run.get("reply", "") for run in bot_runs(self.server)[self.start:]]


def no_hub() -> str:
    """A loopback origin nobody listens on, as ``--hub-url``: the Hub "cannot be reached", so the bridge and the
    app try the ``--space-url`` given, as they do when the Hub is down; no stage of a Hub is faked."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session", params=MATRIX, ids=[f"{shape}-g{gen}" for shape, gen in MATRIX])
def matrix_space(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chat shape of the matrix on one gradio generation, started once for the session."""
    shape, generation = request.param
    runs = tmp_path_factory.mktemp("runs") / f"{shape}-g{generation}.jsonl"
    with space_server(shape, generation, runs) as server:
        yield server


@pytest.fixture(scope="session")
def matrix_app(matrix_space: Any) -> Iterator[ServerProcess]:
    """The app (``python app.py``) in front of ``matrix_space``: ``--no-fallback``, so it never leaves it."""
    from app_server import start_app

    with start_app("--space-url", matrix_space.url, "--hub-url", no_hub(), "--no-fallback") as app:
        yield app


@pytest.fixture(scope="session", params=GENERATIONS, ids=[f"nochat-g{gen}" for gen in GENERATIONS])
def nochat_space(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The Space with no chat (a ``gr.Interface``) on one gradio generation."""
    runs = tmp_path_factory.mktemp("runs") / f"nochat-g{request.param}.jsonl"
    with space_server("nochat", request.param, runs) as server:
        yield server


if __name__ == "__main__":  # build (or find) the cached venvs ahead of a test run: scripts/install-test-deps.sh
    for gen in GENERATIONS:
        print(f"gradio {gen}: {python_of(gen)}", flush=True)
