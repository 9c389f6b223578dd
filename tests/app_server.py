"""Start ``python app.py ...`` as a real subprocess on a free loopback port and wait until it answers.

    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url) as app:
        Client(app.url)...

The child's output goes to a log file (``app.log_text()``); ``stop()`` sends SIGTERM (the app then stops its own
stand-in child and closes the bridge) and kills it if it lingers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from phi4_bridge.standin.launcher import free_port

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 90.0


class AppServer:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with code {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:  # noqa: S310 - loopback
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"app did not answer within {timeout:.0f}s:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_app(*args: str, timeout: float = STARTUP_TIMEOUT_S, env: dict[str, str] | None = None) -> AppServer:
    """``python app.py --host 127.0.0.1 --port <free> *args``, ready to serve."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="app-", suffix=".log", delete=False)  # noqa: SIM115
    child_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **(env or {})}
    child_env.pop("HF_TOKEN", None)  # tests never use a real token
    cmd = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=ROOT)
    log.close()
    server = AppServer(proc, port, Path(log.name))
    server.wait_ready(timeout)
    return server
