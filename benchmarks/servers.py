"""Start the servers a run measures (the tapped stand-in, the app) as child processes on loopback ports.

Why subprocesses: each server then has its own event loop and CPU accounting, so the app's CPU seconds and
memory can be read from /proc/<pid> without the benchmark's own work mixed in, exactly as in production.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi4_standin.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


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


def start_tapped_standin(pace_ms: float, chunks: int, gpus: int, token_ttl: float = 3600) -> ServerProcess:
    """The stand-in (with the session tap) and quotas too large to run out during a benchmark. Its classic layout:
    the known client hard-codes that layout's fn 10/11, and the reference calls its ``/bot`` (the other layouts
    are compared in ``benchmarks.fidelity``)."""
    port = free_port()
    args = [sys.executable, "-m", "benchmarks.standin_tap", "--layout", "classic", "--host", "127.0.0.1",
            "--port", str(port),
            "--pace-ms", str(pace_ms), "--chunks", str(chunks), "--gpus", str(gpus), "--token-ttl", str(token_ttl),
            "--anon-quota-seconds", "1e9", "--quota-seconds", "1e9"]
    server = ServerProcess("standin", args, port)
    server.wait_ready()
    return server


def app_available() -> bool:
    return (ROOT / "app.py").exists()


def start_app(space_url: str, hub_url: str, concurrency: int | None, extra: Sequence[str] = (),
              app_py: Path = ROOT / "app.py") -> ServerProcess:
    """``python app.py --space-url URL --hub-url URL --port P`` (and ``--concurrency N`` when asked, then
    ``extra``); ``app_py`` may be another checkout's, which then runs its own packages (its folder comes first)."""
    port = free_port()
    args = [sys.executable, str(app_py), "--space-url", space_url, "--hub-url", hub_url,
            "--port", str(port), "--host", "127.0.0.1", *extra]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    # every simulated visitor comes from loopback: one client address, which the app otherwise caps at 4 turns
    args += ["--turns-per-client", "100000"]
    # each turn's parts (queue hop, stream wait and budget, bridge, usage write) in its log: see turn_parts()
    server = ServerProcess("app", args, port, env={"PHI4_TURN_PARTS": "1"})
    server.wait_ready("/config")
    return server


def turn_parts(log_text: str, skip: int = 0) -> tuple[list[dict[str, float]], int]:
    """The app's "turn parts" log lines after the first ``skip`` of them, and how many there are in all."""
    rows = [json.loads(line.split("turn parts ", 1)[1]) for line in log_text.splitlines() if "turn parts {" in line]
    return rows[skip:], len(rows)
