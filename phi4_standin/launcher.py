"""Start a stand-in Space as a subprocess, and talk to its control routes (sync, stdlib only).

Why a subprocess: the stand-in then has its own event loop, gradio queue and uvicorn server, exactly as a
real remote Space would, so whatever the bridge does over the network is exercised for real (and a test's
own event loop cannot starve or be starved by the server).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from .process import STARTUP_TIMEOUT_S, ServerProcess, free_port


def control(url: str, method: str = "GET", body: Any = None, timeout: float = 10.0) -> Any:
    """Call one of the stand-in's control routes (``/standin/...``) and return its JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback control routes only
        return json.loads(resp.read().decode() or "null")


def set_fault(url: str, name: str | None, times: int | None = None, *, title: str | None = None,
              text: str | None = None) -> dict[str, Any]:
    """Switch a fault on (optionally for the next ``times`` uses only) or off (``None``); ``says`` raises the
    ZeroGPU error ``text`` (HTML and all) under ``title``."""
    body = {"fault": name, "times": times, "title": title, "text": text}
    answer: dict[str, Any] = control(f"{url}/standin/fault", "POST", body)
    return answer


def reset(url: str) -> dict[str, Any]:
    """Clear quotas, counters, stamps and the fault."""
    answer: dict[str, Any] = control(f"{url}/standin/reset", "POST", {})
    return answer


def stats(url: str) -> dict[str, Any]:
    """The counters of ``GET /standin/stats``."""
    answer: dict[str, Any] = control(f"{url}/standin/stats")
    return answer


def seen(url: str, session_hash: str) -> dict[str, Any] | None:
    """What the session's last bot step received (``GET /standin/seen``), or None."""
    answer: dict[str, Any] | None = control(f"{url}/standin/seen?session_hash={session_hash}")
    return answer


def stamps(url: str, session_hash: str) -> list[list[float]]:
    """``[unix_time_sent, cumulative_reply_chars]`` per chunk the bot step yielded for a session."""
    answer: list[list[float]] = control(f"{url}/standin/stamps?session_hash={session_hash}")
    return answer


def configure(url: str, **settings: Any) -> dict[str, Any]:
    """Change pace_ms / chunks / slow_start_s / drop_after while the server runs."""
    answer: dict[str, Any] = control(f"{url}/standin/config", "POST", settings)
    return answer


def start_standin(
    *,
    pace_ms: float | None = None,
    chunks: int | None = None,
    fault: str | None = None,
    gpus: int | None = None,
    token_ttl: float | None = None,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    timeout: float = STARTUP_TIMEOUT_S,
    layout: str | None = None,
) -> ServerProcess:
    """Start a stand-in on a free loopback port and wait until it answers ``/config``. What is not given here
    takes the stand-in's own default (``server.StandinSettings``, the one place they are written).

    ``layout``: "classic", "official" or "chatinterface"; None serves the default (``space.DEFAULT_LAYOUT``).
    """
    port = port or free_port()
    args = [sys.executable, "-m", "phi4_standin", "--host", "127.0.0.1", "--port", str(port)]
    for flag, value in (("--pace-ms", pace_ms), ("--chunks", chunks), ("--gpus", gpus), ("--token-ttl", token_ttl),
                        ("--fault", fault), ("--layout", layout)):
        if value is not None:
            args += [flag, str(value)]
    args += list(extra_args)
    standin = ServerProcess("stand-in", args, port)
    standin.wait_ready("/config", timeout)
    return standin
