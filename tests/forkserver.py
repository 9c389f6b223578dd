"""A fork server for the tests' Python servers: ``python app.py ...`` and ``python -m phi4_standin ...`` started by
forking a process that has already imported gradio, instead of a new interpreter importing it again.

Why: the suite starts well over a hundred apps and stand-ins, and each new interpreter spends about 4 s of CPU
importing gradio (and pandas, fastapi, huggingface_hub...) before it runs a line of ours: on these two cores that
was a large share of the whole run. A forked child is still its own process with its own server, port, event loop
and log, started from the same ``argv`` with the same environment, and it is stopped, signalled and waited for as
before (``ForkedProcess`` answers the part of ``subprocess.Popen`` that ``ServerProcess`` and the tests use).

What a fork cannot give is a fresh import of the preloaded libraries, and some of them read the environment when
imported (gradio's ``GRADIO_SERVER_PORT`` and ``GRADIO_TEMP_DIR``, huggingface_hub's ``HF_HOME``, ``HF_ENDPOINT``,
``HF_TOKEN_PATH``, ``HOME``). So a start is forked only when its environment differs from the server's in variables
that none of the preloaded libraries has read: ``PHI4_*`` (and pytest's ``PYTEST_CURRENT_TEST``), ``HF_TOKEN``
(huggingface_hub and gradio look it up when they need a token), ``MPLBACKEND`` (matplotlib is not preloaded), or
in variables the child reads again as a new interpreter would: huggingface_hub's paths and telemetry switch (``HOME``,
``HF_HOME``, ``HF_TOKEN_PATH``, ``XDG_CACHE_HOME``, ``HF_HUB_DISABLE_TELEMETRY``: it reloads
``huggingface_hub.constants``, and gradio's one copy of ``HF_HOME``) and ``GRADIO_TEMP_DIR`` (gradio's four copies
of it). Anything else (another Python, another variable) starts a new interpreter as before. A forked child that
starts a server in its turn (the app's own stand-in) has it forked by the same server, by the same rule.
``PHI4_TEST_FORKSERVER=0`` turns it off for a run.

The server is one thread (a fork of a threaded process may inherit a held lock): a ``select`` loop that forks on a
request, answers the child's pid, and later that child's exit status on the same connection.
"""

from __future__ import annotations

import gc
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Variables a child may have of its own: ours, and pytest's name of the running test (it changes every test) ...
FREE_TO_DIFFER = ("PHI4_", "PYTEST_CURRENT_TEST")
# ... the token, which huggingface_hub (``get_token``) and gradio read when they look for one, never when imported,
# and matplotlib's backend, which app.py and the stand-in set (so their own children have it) and matplotlib reads
# when imported, which no preloaded module does (tests/test_forkserver.py checks) ...
READ_WHEN_USED = frozenset({"HF_TOKEN", "MPLBACKEND"})
# ... and what the libraries read when imported that the child reads again (``_reread``): huggingface_hub's paths
# and telemetry switch (gradio turns it off in ``os.environ`` when an app starts, so an app's own children have it),
# and gradio's upload folder (the app points ``GRADIO_TEMP_DIR`` at its work folder, so its stand-in has it too)
HUB_READ_WHEN_IMPORTED = frozenset({"HOME", "HF_HOME", "HF_TOKEN_PATH", "XDG_CACHE_HOME", "HF_HUB_DISABLE_TELEMETRY"})
REREAD_IN_CHILD = HUB_READ_WHEN_IMPORTED | {"GRADIO_TEMP_DIR"}
# gradio's modules that keep ``GRADIO_TEMP_DIR`` as read when imported (the rest read it when used)
GRADIO_TEMP_DIR_COPIES = ("gradio.route_utils", "gradio.routes", "gradio.mcp", "gradio.screen_recording_utils")
# What the fork server imports before it forks: the libraries ...
PRELOAD = ("gradio", "gradio_client", "aiohttp", "huggingface_hub", "PIL.Image", "uvicorn")
# ... and this checkout's own modules, which every app, stand-in and CLI run imports (about 0.1 s of CPU a start): none
# of them reads the environment or changes another module when imported (the app and the CLIs read it in ``main``)
PRELOAD_OURS = ("app", "phi4_standin.cli", "phi4_bridge.cli.main")


def fixed(name: str) -> bool:
    """Whether a child must have this variable as its fork server has it."""
    return not name.startswith(FREE_TO_DIFFER) and name not in READ_WHEN_USED and name not in REREAD_IN_CHILD


# ---- the client side (in the test process) ---------------------------------------------------------------------

class ForkedProcess:
    """A child of the fork server, seen as ``subprocess.Popen`` shows a child: pid, poll, wait, signals, returncode.
    Its exit status comes over the connection the start was asked on (the server is its parent, not us)."""

    def __init__(self, conn: socket.socket, reader: Any, pid: int, args: Sequence[str]) -> None:
        self._conn = conn
        self._reader = reader
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None

    def _read_status(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        ready, _, _ = select.select([self._conn], [], [], timeout)
        if not ready:
            return
        line = self._reader.readline()
        self.returncode = int(json.loads(line)["status"]) if line else -9  # a lost server: its children are gone too
        self._conn.close()

    def poll(self) -> int | None:
        self._read_status(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self._read_status(left)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The running fork server, and the rule for which starts it takes."""

    def __init__(self, env: Mapping[str, str], cwd: str, python: str = sys.executable,
                 running_at: Path | None = None) -> None:
        """``running_at``: the socket of a fork server already running (this process's own parent)."""
        self.env = dict(env)
        self.python = python  # the interpreter it runs in, and so the only one whose starts it takes
        self.path = running_at or Path(f"/tmp/phi4-forkserver-{os.getpid()}-{time.monotonic_ns()}.sock")
        self.running = running_at is not None
        self.forked = 0  # children forked, and why others were not, for the run's last lines (tests/conftest.py)
        self.declined: Counter[str] = Counter()
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None  # started at the first start: a run of unit tests (the
        # quick subset, each mutant of the mutation check) starts no server and so pays for no import

    def _wait_ready(self) -> None:
        if self.running:
            return
        if self.proc is None:
            self.proc = subprocess.Popen([self.python, __file__, str(self.path)], env=self.env, cwd=self.cwd,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not self.path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fork server did not start (exit {self.proc.poll()})")
            time.sleep(0.05)

    def reasons_not_to_fork(self, args: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """Why this start cannot be forked: another program, or the variables it has that the server has not."""
        if len(args) < 2 or args[0] != self.python or (args[1].startswith("-") and args[1] != "-m"):
            return ["another program"]
        keys = set(env) | set(self.env)
        return sorted(name for name in keys if env.get(name) != self.env.get(name) and fixed(name))

    def takes(self, args: Sequence[str], env: Mapping[str, str]) -> bool:
        """A start of this Python whose environment differs from the server's in variables a child may have of its
        own only (``fixed``)."""
        reasons = self.reasons_not_to_fork(args, env)
        self.declined.update(reasons)
        return not reasons

    def start(self, args: Sequence[str], log_path: Path, env: Mapping[str, str],
              cwd: str | os.PathLike[str] | None, err_path: Path | None = None) -> ForkedProcess:
        self._wait_ready()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(self.path))
        request = {"argv": list(args), "env": dict(env), "cwd": str(cwd or os.getcwd()), "log": str(log_path),
                   "err": str(err_path or log_path)}
        conn.sendall(json.dumps(request).encode() + b"\n")
        reader = conn.makefile("r")
        line = reader.readline()
        if not line:
            raise RuntimeError("the fork server closed the connection before forking")
        self.forked += 1
        return ForkedProcess(conn, reader, int(json.loads(line)["pid"]), args)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.path.unlink(missing_ok=True)


class ForkServers:
    """What the session installs as ``ServerProcess.launcher``: the fork server of the session's Python and
    environment, and one more for each family of starts a test module declares (``serve``: the test matrix's Spaces
    of each gradio generation, run by another venv's Python or with ``HF_HUB_OFFLINE``), each started at its
    family's first start, so each family imports its gradio once per process, not once per Space."""

    def __init__(self, env: Mapping[str, str], cwd: str) -> None:
        self.main = ForkServer(env, cwd)
        self.cwd = cwd
        self.families: dict[tuple[str, frozenset[tuple[str, str]]], ForkServer] = {}

    @staticmethod
    def _family(python: str, env: Mapping[str, str]) -> tuple[str, frozenset[tuple[str, str]]]:
        return python, frozenset((k, v) for k, v in env.items() if fixed(k))

    def serve(self, python: str, env: Mapping[str, str]) -> None:
        """Fork the starts of ``python`` with ``env`` (give or take the variables a child may have of its own) from a
        server of theirs."""
        family = self._family(python, env)
        if family not in self.families:
            self.families[family] = ForkServer(env, self.cwd, python)

    def _server_for(self, args: Sequence[str], env: Mapping[str, str]) -> ForkServer | None:
        if not self.main.reasons_not_to_fork(args, env):
            return self.main
        server = self.families.get(self._family(args[0], env)) if args else None
        return server if server is not None and not server.reasons_not_to_fork(args, env) else None

    def takes(self, args: Sequence[str], env: Mapping[str, str]) -> bool:
        if self._server_for(args, env) is not None:
            return True
        self.main.declined.update(self.main.reasons_not_to_fork(args, env))
        return False

    def start(self, args: Sequence[str], log_path: Path, env: Mapping[str, str],
              cwd: str | os.PathLike[str] | None, err_path: Path | None = None) -> ForkedProcess:
        server = self._server_for(args, env)
        if server is None:
            raise ValueError(f"no fork server takes {args[:2]}")
        return server.start(args, log_path, env, cwd, err_path)

    @property
    def servers(self) -> list[ForkServer]:
        return [self.main, *self.families.values()]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def environment_without(*names: str) -> dict[str, str]:
    """The servers' environment (``child_environment``: no ``HF_TOKEN``, this copy of the packages on the path) less
    ``names``: a command given it is forked, where a copy of ``os.environ`` differs in ``PYTHONPATH`` and is not."""
    from phi4_standin.process import child_environment  # noqa: PLC0415 - the tests' path

    env = child_environment()
    for name in names:
        env.pop(name, None)
    return env


def run_command(args: Sequence[str], *, timeout: float, cwd: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(args, capture_output=True, text=True, ...)`` for a short command of this Python (``python -m
    phi4_bridge chat ...``, ``doctor``, ``qa``): forked by the session's fork server when it takes the command (a
    CLI run spent about 0.8 s of CPU importing before its first line; the suite runs over a hundred), else run as
    before. Its stdin is empty either way; with no ``env``, it runs in the servers' environment (``child_environment``:
    no ``HF_TOKEN``, gradio's analytics off, unbuffered output, this copy of the packages on the path)."""
    from phi4_standin.process import ServerProcess, child_environment  # noqa: PLC0415 - the tests' path

    child_env = child_environment() if env is None else dict(env)
    launcher = ServerProcess.launcher
    if launcher is None or not launcher.takes(args, child_env):
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=child_env,
                              stdin=subprocess.DEVNULL)
    folder = Path(tempfile.mkdtemp(prefix="phi4-run-"))
    out, err = folder / "stdout", folder / "stderr"
    try:
        child = launcher.start(args, out, child_env, cwd, err)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
            raise
        read = lambda path: path.read_text(errors="replace") if path.exists() else ""  # noqa: E731
        return subprocess.CompletedProcess(list(args), code, read(out), read(err))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---- the server side (its own process) ---------------------------------------------------------------------------

def _reread(changed: set[str]) -> None:
    """What the preloaded libraries read from the environment when imported, as a new interpreter with this
    environment would have it. huggingface_hub's ``constants`` (its login file, token store, cache, telemetry) are
    read as ``constants.X`` when used, so reloading them is enough; gradio's tunnel module keeps a copy of ``HF_HOME``
    (where it looks for frpc), and a few of its modules one of ``GRADIO_TEMP_DIR``."""
    import importlib

    constants = sys.modules.get("huggingface_hub.constants")
    if changed & HUB_READ_WHEN_IMPORTED and constants is not None:
        importlib.reload(constants)
        tunneling = sys.modules.get("gradio.tunneling")
        if tunneling is not None and hasattr(tunneling, "HF_HOME"):
            tunneling.HF_HOME = constants.HF_HOME
    if "GRADIO_TEMP_DIR" in changed:
        folder = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
        for name in GRADIO_TEMP_DIR_COPIES:
            module = sys.modules.get(name)
            if module is not None and hasattr(module, "DEFAULT_TEMP_DIR"):
                module.DEFAULT_TEMP_DIR = folder


def _serve_siblings(path: str, server_env: Mapping[str, str], cwd: str) -> None:
    """A server this child starts in its turn (the app's own stand-in) is forked by the same fork server, by the
    same rule, as a test's start is."""
    try:
        from phi4_standin.process import ServerProcess
    except ImportError:  # another venv's Python (the test matrix's Spaces): they start no server of ours
        return
    ServerProcess.launcher = ForkServer(server_env, cwd, running_at=Path(path))


def _run_child(request: dict[str, Any], server_env: Mapping[str, str], path: str) -> None:
    """In the forked child: become ``argv`` run by a new interpreter in ``cwd`` with ``env``, output to ``log``."""
    import atexit
    import io
    import random
    import runpy
    import traceback

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # held since the fork: now it ends the child
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None
    _reread({name for name in REREAD_IN_CHILD if os.environ.get(name) != server_env.get(name)})
    _serve_siblings(path, server_env, request["cwd"])
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    err = os.open(request.get("err") or request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(err, 2)
    for fd in (log, err, null):
        os.close(fd)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True, line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True, line_buffering=True,
                                  errors="backslashreplace")
    random.seed()
    argv = request["argv"][1:]
    code: Any = 0
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path[0] = request["cwd"]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            script = os.path.abspath(argv[0])
            sys.argv = [argv[0], *argv[1:]]
            sys.path[0] = os.path.dirname(script)
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - as the interpreter does: the traceback on stderr, exit 1
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(path: str) -> None:
    server_env = dict(os.environ)  # what the preloaded libraries read when imported
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:  # another venv's Python (gradio 4's has no aiohttp): what it has is enough
            pass
    for name in PRELOAD_OURS:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - another venv's gradio: its Spaces do not import ours
            pass
    # the preloaded libraries' objects out of every child's garbage collector walks (Python's advice before forking
    # many children: ``gc.freeze``); the app and the stand-in freeze what they build themselves at start
    gc.collect()
    gc.freeze()
    gc.collect()  # so full collections come as often as before for what is not frozen (mirror/serve/launch.py)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(64)
    os.rename(path + ".tmp", path)  # the client waits for the path: it exists only once the server listens
    waiting: dict[int, socket.socket] = {}  # child pid -> the connection its start was asked on
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        try:
            ready, _, _ = select.select([listener], [], [], 0.05)
        except InterruptedError:
            continue
        if ready:
            conn, _ = listener.accept()
            line = conn.makefile("r").readline()
            if line:
                request = json.loads(line)
                # SIGTERM held until the child has dropped this server's handler: one sent just after the fork
                # (a test stopping an app at once) must end the child, not run ``stop`` in its copy of this loop
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    conn.close()
                    for other in waiting.values():
                        other.close()
                    _run_child(request, server_env, path)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                waiting[pid] = conn
            else:
                conn.close()
        while waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                except OSError:
                    pass
                conn.close()
    for conn in waiting.values():
        conn.close()
    os.unlink(path)


if __name__ == "__main__":
    serve(sys.argv[1])
