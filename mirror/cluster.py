"""N app processes behind Debian's nginx, started and stopped together:

    python -m mirror.cluster --replicas 2 --port 8080 [app flags...]     # e.g. --space-url URL --concurrency 16
    python -m mirror.cluster --print-config --port 8080 --backends 127.0.0.1:7861,127.0.0.1:7862

Why more than one process: one app process is one event loop on one core. Why nginx in front: the app keeps each
visitor's state in its process and gradio's queue is per process, so a browser must stay on one process
(``deploy/nginx.conf`` says how), while ``/v1`` may go to any. Why a module rather than a shell script: it picks free
ports, waits until each process answers before nginx starts, reports a replica that dies, and on SIGTERM or Ctrl+C
stops nginx and every replica and removes its temporary directory (the filled-in config, nginx's pid and buffers).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from phi4_bridge.config import BridgeConfig
from phi4_standin.process import ChildProcess, ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "nginx.conf"
READY_TIMEOUT_S = 120.0  # an app process probes the Space (5 s) and builds its page; on 2 busy cores that takes a while
STOP_TIMEOUT_S = 10.0  # the app exits within 6 s of SIGTERM (mirror/serve/launch.py); then it is killed
# Flags that belong to the cluster, not to each replica: every replica gets its own loopback port from here.
REFUSED_APP_FLAGS = {"--host": "--host (use the cluster's --host)", "--port": "--port (use the cluster's --port)",
                     "--share": "--share (a share link would reach one replica only, not nginx)"}


def max_body() -> str:
    """nginx's client_max_body_size: the app's largest upload request (mirror/door/middleware.py: 8 files + 1 MB
    of form)."""
    limits = BridgeConfig().limits
    largest = max(limits.max_image_bytes, limits.max_audio_bytes) * limits.max_files + 1024 * 1024
    return f"{-(-largest // (1024 * 1024))}m"


def render(listen: str, backends: list[str], template: Path = TEMPLATE) -> str:
    """``deploy/nginx.conf`` filled in for these replicas (``host:port`` each, named r0, r1, ... in order)."""
    names = [f"r{i}" for i in range(len(backends))]
    servers = "".join(f"    server {b} max_fails=1 fail_timeout=10s;\n" for b in backends)
    upstreams = [f"upstream mirror_any {{\n{servers}    keepalive 16;\n}}"]
    for name, own in zip(names, backends):
        backups = "".join(f"    server {b} backup;\n" for b in backends if b != own)
        upstreams.append(f"upstream mirror_{name} {{\n    server {own} max_fails=1 fail_timeout=10s;\n{backups}"
                         f"    keepalive 16;\n}}")
    served = "\n".join(f'    "~(^|, ){_regex(b)}$" {n};' for n, b in zip(names, backends))
    cookies = "\n".join(f"    {n} mirror_{n};" for n in names)
    text = template.read_text(encoding="utf-8")
    for marker, value in (("@COOKIE_MAP@", cookies), ("@SERVED_MAP@", served), ("@UPSTREAMS@", "\n".join(upstreams)),
                          ("@LISTEN@", listen), ("@MAX_BODY@", max_body())):
        text = text.replace(marker, value)
    return text


def _regex(backend: str) -> str:
    return backend.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")


def main_config(site: Path, work: Path) -> str:
    """The nginx.conf that runs ``site`` in the foreground, everything it writes kept in ``work``."""
    temps = "".join(f"    {kind}_temp_path {work / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                           "scgi"))
    return (f"daemon off;\nworker_processes 1;\npid {work / 'nginx.pid'};\nerror_log stderr warn;\n"
            f"events {{ worker_connections 4096; }}\nhttp {{\n    access_log off;\n{temps}    include {site};\n}}\n")


def answers(url: str) -> bool:
    """Whether an HTTP server answers at ``url`` (any status: a login page still means it is up)."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def start_replica(cmd: list[str], env: dict[str, str]) -> ChildProcess:
    """A new interpreter in a session of its own (``Cluster`` says why), writing where the cluster writes. When the
    project's servers start through a launcher (``ServerProcess.launcher``: the test suite forks them from a process
    that has imported gradio once) and the cluster writes to a file, the replica starts through it, to that file."""
    launcher = ServerProcess.launcher
    out = Path(os.readlink("/proc/self/fd/1")) if os.path.islink("/proc/self/fd/1") else None
    if launcher is not None and out is not None and out.is_file() and launcher.takes(cmd, env):
        return launcher.start(cmd, out, env, ROOT)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)


@dataclass
class Child:
    """A child process and what the reports name it by."""

    name: str
    proc: ChildProcess
    port: int = 0
    reported: bool = False


class Cluster:
    """The replicas and nginx: ``start()``, then ``watch()`` until stopped; ``stop()`` ends all of them.

    Each child runs in a session of its own, so a terminal's Ctrl+C reaches the cluster alone, which then stops
    nginx before the replicas (a replica signalled twice would cut its own shutdown short). The price: a cluster
    killed with SIGKILL leaves its children running."""

    def __init__(self, replicas: int, host: str, port: int, app_args: list[str], nginx: str) -> None:
        self.replicas, self.host, self.port, self.app_args, self.nginx = replicas, host, port, app_args, nginx
        self.work = Path(tempfile.mkdtemp(prefix="phi4-cluster-"))
        self.work.chmod(0o755)  # nginx's workers (user nobody when started as root) write their buffers in here
        self.apps: list[Child] = []
        self.proxy: Child | None = None
        self.stopping = threading.Event()

    def start(self) -> None:
        # One secret for the chat every browser keeps (gr.BrowserState): a page served by another replica after a
        # failover can still read it. It is not confidential (each page's /config carries it).
        env = {**os.environ, "PHI4_BROWSER_SECRET": os.environ.get("PHI4_BROWSER_SECRET") or secrets.token_hex(16)}
        # One turn budget for all of them (mirror/visitors/shared_budget.py): a visitor gets the host's turns, not N
        # times.
        env.setdefault("PHI4_BUDGET_DB", str(self.work / "budget.sqlite3"))
        for i in range(self.replicas):
            port = free_port()
            cmd = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port), *self.app_args]
            self.apps.append(Child(f"r{i}", start_replica(cmd, env), port))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for app in self.apps:
            while not answers(f"http://127.0.0.1:{app.port}/"):
                if self.stopping.is_set():
                    raise RuntimeError("stopped while the replicas were starting")
                if app.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"replica {app.name} (port {app.port}) did not start: "
                                       + (f"it exited with code {app.proc.returncode}" if app.proc.poll() is not None
                                          else f"it did not answer within {READY_TIMEOUT_S:.0f} s"))
                self.stopping.wait(0.2)
        site = self.work / "mirror.conf"
        site.write_text(render(f"{self.host}:{self.port}", [f"127.0.0.1:{a.port}" for a in self.apps]))
        conf = self.work / "nginx.conf"
        conf.write_text(main_config(site, self.work))
        cmd = [self.nginx, "-e", "stderr", "-p", str(self.work), "-c", str(conf)]
        self.proxy = Child("nginx", subprocess.Popen(cmd, start_new_session=True), self.port)
        public = f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}/"
        while not answers(public):
            if self.proxy.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start (exit code {self.proxy.proc.poll()}); see its message above")
            self.stopping.wait(0.1)
        where = ", ".join(f"{a.name} 127.0.0.1:{a.port} (pid {a.proc.pid})" for a in self.apps)
        print(f"* Phi-4 Mirror cluster ready at {public} : {self.replicas} app processes behind nginx: {where}; "
              f"nginx {self.proxy.proc.pid} runs {site}", flush=True)

    def watch(self) -> int:
        """Until stopped: report each replica that dies (nginx sends its visitors to the others). Ends with 1 when
        nginx or every replica is gone, 0 when asked to stop."""
        while not self.stopping.wait(0.25):
            for app in self.apps:
                if app.proc.poll() is not None and not app.reported:
                    app.reported = True
                    alive = sum(a.proc.poll() is None for a in self.apps)
                    print(f"* replica {app.name} (port {app.port}, pid {app.proc.pid}) exited with code "
                          f"{app.proc.returncode}; {alive} of {len(self.apps)} replicas serve on. Its visitors move "
                          "to another replica on their next page load (their chat is kept in the browser).",
                          file=sys.stderr, flush=True)
            if all(a.proc.poll() is not None for a in self.apps):
                print("* every replica has exited; stopping nginx", file=sys.stderr, flush=True)
                return 1
            if self.proxy and self.proxy.proc.poll() is not None:
                print(f"* nginx exited with code {self.proxy.proc.returncode}; stopping the replicas", file=sys.stderr,
                      flush=True)
                return 1
        return 0

    def stop(self) -> None:
        """nginx first (no new requests), then every replica with SIGTERM (each cancels its running turns on the
        Space), killed after STOP_TIMEOUT_S; then the temporary directory."""
        self.stopping.set()
        children = ([self.proxy] if self.proxy else []) + self.apps
        for child in children:
            if child is self.proxy:
                self._signal_nginx(signal.SIGTERM)
            elif child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"* {child.name} did not stop in {STOP_TIMEOUT_S:.0f} s; killing it", file=sys.stderr, flush=True)
                child.proc.kill()
                child.proc.wait()
        self._signal_nginx(signal.SIGKILL)  # a worker whose master was killed outlives it, holding the port
        shutil.rmtree(self.work, ignore_errors=True)

    def _signal_nginx(self, sig: int) -> None:
        """nginx's whole process group (its own session, so its id is the master's pid): its workers too, even
        when the master is already gone (killed with SIGKILL, its worker kept serving the port)."""
        if self.proxy is not None:
            try:
                os.killpg(self.proxy.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def find_nginx(given: str | None) -> str:
    for candidate in (given, shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("nginx is not installed: apt-get install -y nginx (or give --nginx PATH)")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m mirror.cluster", description=__doc__.split("\n\n")[0],
                                epilog="Every other flag goes to each app process (see python app.py --help).")
    p.add_argument("--replicas", type=int, default=2, help="app processes to start (default 2)")
    p.add_argument("--host", default="127.0.0.1", help="where nginx listens (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="nginx's port (default 8080)")
    p.add_argument("--nginx", help="the nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
    p.add_argument("--print-config", action="store_true", help="print deploy/nginx.conf filled in and exit")
    p.add_argument("--backends", help="with --print-config: the app processes, HOST:PORT,HOST:PORT,...")
    args, app_args = p.parse_known_args(argv)
    for flag in app_args:
        name = flag.split("=", 1)[0]
        if name in REFUSED_APP_FLAGS:
            p.error(f"{REFUSED_APP_FLAGS[name]} cannot be given to the replicas")
    if args.replicas < 1:
        p.error("--replicas must be at least 1")
    return args, app_args


def main(argv: list[str] | None = None) -> int:
    args, app_args = parse(argv)
    if args.print_config:
        backends = (args.backends or "").split(",") if args.backends else [
            f"127.0.0.1:{7861 + i}" for i in range(args.replicas)]
        print(render(f"{args.host}:{args.port}", backends), end="")
        return 0
    cluster = Cluster(args.replicas, args.host, args.port, app_args, find_nginx(args.nginx))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: cluster.stopping.set())
    try:
        cluster.start()
        return cluster.watch()
    except RuntimeError as exc:
        print(f"* {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
