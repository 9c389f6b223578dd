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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT_S = 90.0
ROOT = str(Path(__file__).resolve().parents[2])


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
    answer: dict[str, Any] = _request(f"{url}/standin/fault", "POST", {"fault": name, "times": times})
    return answer


def reset(url: str) -> dict[str, Any]:
    """Clear quotas, counters, stamps and the fault."""
    answer: dict[str, Any] = _request(f"{url}/standin/reset", "POST", {})
    return answer


def stats(url: str) -> dict[str, Any]:
    """The counters of ``GET /standin/stats``."""
    answer: dict[str, Any] = _request(f"{url}/standin/stats")
    return answer


def seen(url: str, session_hash: str) -> dict[str, Any] | None:
    """What the session's last bot step received (``GET /standin/seen``), or None."""
    answer: dict[str, Any] | None = _request(f"{url}/standin/seen?session_hash={session_hash}")
    return answer


def stamps(url: str, session_hash: str) -> list[list[float]]:
    """``[unix_time_sent, cumulative_reply_chars]`` per chunk the bot step yielded for a session."""
    answer: list[list[float]] = _request(f"{url}/standin/stamps?session_hash={session_hash}")
    return answer


def configure(url: str, **settings: Any) -> dict[str, Any]:
    """Change pace_ms / chunks / slow_start_s / drop_after while the server runs."""
    answer: dict[str, Any] = _request(f"{url}/standin/config", "POST", settings)
    return answer


class ServerProcess:
    """A child process serving HTTP on a loopback port: the stand-in, the app, a benchmark's servers.

    Its output goes to a log file (``log_text()``); ``stop()`` terminates it (then kills it if it lingers) and
    removes the log. One class for all of them, so every test and benchmark starts and stops servers alike.
    """

    def __init__(self, name: str, args: Sequence[str], port: int, *, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.hub_url = self.url
        log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(log.name)
        child_env = {key: value for key, value in os.environ.items() if key != "HF_TOKEN"}  # never a real token
        child_env.update({"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"})
        child_env["PYTHONPATH"] = ROOT + (os.pathsep + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else "")
        child_env.update(env or {})
        self.proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=ROOT)
        log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_ready(self, path: str = "/config", timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Block until ``path`` gets an HTTP answer (any status: a login wall or a sleeping fault still means the
        server is up); RuntimeError with the child's output if it dies or hangs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode} before serving:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2):  # noqa: S310 - loopback only
                    return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {path} within {timeout:.0f}s:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


StandinProcess = ServerProcess


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
    layout: str | None = None,
) -> StandinProcess:
    """Start a stand-in on a free loopback port and wait until it answers ``/config``.

    ``layout``: "classic", "official" or "chatinterface"; None serves the CLI's default (``space.DEFAULT_LAYOUT``).
    """
    port = port or free_port()
    args = [
        sys.executable, "-m", "phi4_bridge.standin",
        "--host", "127.0.0.1", "--port", str(port),
        "--pace-ms", str(pace_ms), "--chunks", str(chunks),
        "--gpus", str(gpus), "--token-ttl", str(token_ttl),
    ]  # fmt: skip
    if fault:
        args += ["--fault", fault]
    if layout:
        args += ["--layout", layout]
    args += list(extra_args)
    standin = ServerProcess("stand-in", args, port)
    standin.wait_ready("/config", timeout)
    return standin
