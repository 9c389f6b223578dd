"""Start the servers a run measures (the tapped stand-in, the app) as child processes on loopback ports.

Why subprocesses: each server then has its own event loop and CPU accounting, so the app's CPU seconds and
memory can be read from /proc/<pid> without the benchmark's own work mixed in, exactly as in production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi4_bridge.standin.launcher import free_port

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 90.0


def get_json(url: str, timeout: float = 10.0) -> Any:
    """GET a JSON document (control routes on loopback only)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read().decode() or "null")


def try_json(url: str, timeout: float = 10.0) -> Any:
    """Like ``get_json`` but None when the route is missing (another Space, an older stand-in)."""
    try:
        return get_json(url, timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return None


class Server:
    """A child process serving HTTP at ``url``; ``stop()`` ends it (terminate, then kill)."""

    def __init__(self, name: str, args: Sequence[str], port: int) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.hub_url = self.url
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        extra = os.environ.get("PYTHONPATH")
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": str(ROOT) + (os.pathsep + extra if extra else "")}
        env.pop("HF_TOKEN", None)  # anonymous tokens: the same kind for every path
        self.proc = subprocess.Popen(list(args), stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        self._log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, path: str = "/config", timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before serving:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"{self.name} did not serve {path} within {timeout:.0f}s:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_tapped_standin(pace_ms: float, chunks: int, gpus: int, token_ttl: float = 3600) -> Server:
    """The stand-in (with the session tap) and quotas too large to run out during a benchmark."""
    port = free_port()
    args = [sys.executable, "-m", "benchmarks.standin_tap", "--host", "127.0.0.1", "--port", str(port),
            "--pace-ms", str(pace_ms), "--chunks", str(chunks), "--gpus", str(gpus), "--token-ttl", str(token_ttl),
            "--anon-quota-seconds", "1e9", "--quota-seconds", "1e9"]
    server = Server("standin", args, port)
    server.wait_ready()
    return server


def app_available() -> bool:
    return (ROOT / "app.py").exists()


def start_app(space_url: str, hub_url: str, concurrency: int | None) -> Server:
    """``python app.py --space-url URL --hub-url URL --port P`` (and ``--concurrency N`` when asked)."""
    port = free_port()
    args = [sys.executable, str(ROOT / "app.py"), "--space-url", space_url, "--hub-url", hub_url,
            "--port", str(port), "--host", "127.0.0.1"]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    server = Server("app", args, port)
    server.wait_ready("/config")
    return server
