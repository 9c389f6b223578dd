"""Start a stand-in Space as a subprocess, and talk to its control routes (sync, stdlib only).

Why a subprocess: the stand-in then has its own event loop, gradio queue and uvicorn server, exactly as a
real remote Space would, so whatever the bridge does over the network is exercised for real (and a test's
own event loop cannot starve or be starved by the server).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT_S = 60.0


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _request(url: str, method: str = "GET", body: Any = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback control routes only
        return json.loads(resp.read().decode() or "null")


def set_fault(url: str, name: str | None, times: int | None = None) -> dict[str, Any]:
    """Switch a fault on (optionally for the next ``times`` uses only) or off (``None``)."""
    return _request(f"{url}/standin/fault", "POST", {"fault": name, "times": times})


def reset(url: str) -> dict[str, Any]:
    """Clear quotas, counters, stamps and the fault."""
    return _request(f"{url}/standin/reset", "POST", {})


def stats(url: str) -> dict[str, Any]:
    """The counters of ``GET /standin/stats``."""
    return _request(f"{url}/standin/stats")


def stamps(url: str, session_hash: str) -> list[list[float]]:
    """``[unix_time_sent, cumulative_reply_chars]`` per chunk the bot step yielded for a session."""
    return _request(f"{url}/standin/stamps?session_hash={session_hash}")


def configure(url: str, **settings: Any) -> dict[str, Any]:
    """Change pace_ms / chunks / slow_start_s / drop_after while the server runs."""
    return _request(f"{url}/standin/config", "POST", settings)


class StandinProcess:
    """A running ``python -m phi4_bridge.standin``; ``.url`` is both the Space and the Hub origin."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.hub_url = self.url
        self.log_path = log_path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Block until ``/config`` answers 200; RuntimeError with the child's output if it dies or hangs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"stand-in exited with code {self.proc.returncode} before serving:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/config", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"stand-in did not answer /config within {timeout:.0f}s:\n{tail}")

    def stop(self) -> None:
        """Terminate the child (then kill it if it lingers) and remove its log file."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> StandinProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_standin(
    *,
    pace_ms: float = 20,
    chunks: int = 12,
    fault: str | None = None,
    gpus: int = 2,
    token_ttl: float = 600,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    timeout: float = STARTUP_TIMEOUT_S,
) -> StandinProcess:
    """Start a stand-in on a free loopback port and wait until it serves ``/config``."""
    port = port or free_port()
    args = [
        sys.executable, "-m", "phi4_bridge.standin",
        "--host", "127.0.0.1", "--port", str(port),
        "--pace-ms", str(pace_ms), "--chunks", str(chunks),
        "--gpus", str(gpus), "--token-ttl", str(token_ttl),
    ]  # fmt: skip
    if fault:
        args += ["--fault", fault]
    args += list(extra_args)
    log = tempfile.NamedTemporaryFile(prefix="standin-", suffix=".log", delete=False)  # noqa: SIM115
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    log.close()
    standin = StandinProcess(proc, port, Path(log.name))
    standin.wait_ready(timeout)
    return standin
