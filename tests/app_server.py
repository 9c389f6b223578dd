"""Start ``python app.py ...`` as a real subprocess on a free loopback port and wait until it answers.

    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url) as app:
        Client(app.url)...

The child's output goes to a log file (``app.log_text()``); ``stop()`` sends SIGTERM (the app then stops its own
stand-in child and closes the bridge) and kills it if it lingers. The child never inherits ``HF_TOKEN``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from phi4_standin.process import STARTUP_TIMEOUT_S, ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose app.py the tests run


def start_app(*args: str, timeout: float = STARTUP_TIMEOUT_S, env: dict[str, str] | None = None,
              new_interpreter: bool = False) -> ServerProcess:
    """``python app.py --host 127.0.0.1 --port <free> *args``, ready to serve (``/`` answers, login or not).
    ``new_interpreter``: not forked by the tests' fork server (tests/forkserver.py), for a test that reads the app's
    own command line."""
    port = free_port()
    app = ServerProcess("app", [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *args], port,
                        env=env, cwd=ROOT, new_interpreter=new_interpreter)
    app.wait_ready("/", timeout)
    return app


def standin_of(app: ServerProcess) -> str:
    """The URL of the stand-in Space an app started with ``--standin`` (its start-up line names it)."""
    import re

    found = re.search(r"\* Stand-in Space running at (\S+)", app.log_text())
    assert found, app.log_text()
    return found.group(1)
