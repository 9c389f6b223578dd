"""A server as a child process on a loopback port, started and stopped one way: the stand-in Space (which the app
starts when it falls back to it), and the app itself for tests and benchmarks.

A child process has its own event loop and server, as a remote Space has: whatever crosses the network is then
exercised for real, and the caller's own event loop cannot starve the server or be starved by it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Protocol

STARTUP_TIMEOUT_S = 90.0
PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])  # the folder that holds ``phi4_bridge`` and ``phi4_standin``


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A server child's environment: ours without ``HF_TOKEN`` (never a real token), gradio's analytics off,
    unbuffered output, this copy of the packages first on the path, then ``env``."""
    child_env = {key: value for key, value in os.environ.items() if key != "HF_TOKEN"}
    child_env.update({"GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"})
    # so ``python -m phi4_standin`` (or ``phi4_bridge``) finds this copy of the packages, from any folder (once: a
    # child's own children, such as the app's stand-in, have it first already)
    paths = [path for path in child_env.get("PYTHONPATH", "").split(os.pathsep) if path and path != PACKAGE_PARENT]
    child_env["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT, *paths])
    child_env.update(env or {})
    return child_env


class ChildProcess(Protocol):
    """What ``ServerProcess`` (and a test) uses of its child: ``subprocess.Popen``'s view of a process."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


class Launcher(Protocol):
    """Another way to start the same command (the tests' fork server, tests/forkserver.py), for the commands it
    ``takes``; ``ServerProcess`` starts the others with ``subprocess.Popen``."""

    def takes(self, args: Sequence[str], env: Mapping[str, str]) -> bool: ...
    def start(self, args: Sequence[str], log_path: Path, env: Mapping[str, str],
              cwd: str | os.PathLike[str] | None) -> ChildProcess: ...


class ServerProcess:
    """A child process serving HTTP on a loopback port: the stand-in, the app, a benchmark's servers.

    Its output goes to a log file (``log_text()``); ``stop()`` terminates it (then kills it if it lingers) and
    removes the log. One class for all of them, so every test and benchmark starts and stops servers alike.
    """

    launcher: ClassVar[Launcher | None] = None  # None: every child is a new ``subprocess.Popen``

    def __init__(self, name: str, args: Sequence[str], port: int, *, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, new_interpreter: bool = False) -> None:
        """``new_interpreter``: never through ``launcher`` (whose child's ``/proc/<pid>/cmdline`` is its own)."""
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.hub_url = self.url
        log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(log.name)
        child_env = child_environment(env)
        launcher = ServerProcess.launcher
        self.proc: ChildProcess
        if launcher is not None and not new_interpreter and launcher.takes(args, child_env):
            log.close()
            self.proc = launcher.start(args, self.log_path, child_env, cwd)
        else:
            self.proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=cwd)
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
