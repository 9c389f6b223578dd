"""A real Redis for the tests: Debian's ``redis-server`` on a free loopback port, with a password, nothing on disk.

Without ``redis-server`` a test that needs it is skipped, except under CI (``CI=true``), where it fails: a broken
install step (scripts/install-test-deps.sh installs it) must not pass unseen, as with Chromium and nginx.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from phi4_standin.process import ServerProcess, free_port

PASSWORD = "redis-test-password-7f3a"


def redis_server_or_skip() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                             else None)
    if found is None:
        message = "Debian's redis-server is not installed (bash scripts/install-test-deps.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class RedisServer(ServerProcess):
    """One ``redis-server`` child: ``url`` (with the password), ``client()``; started, logged and stopped as every
    other test server is (``phi4_standin.process.ServerProcess``), but ready when it answers PING, not HTTP."""

    def __init__(self, workdir: Path) -> None:
        binary = redis_server_or_skip()
        port = free_port()
        super().__init__("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--requirepass", PASSWORD, "--dir", str(workdir)], port)
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client().ping()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise AssertionError(f"redis-server did not start: {tail}") from None
                time.sleep(0.05)

    def client(self):  # noqa: ANN201 - redis.Redis
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5, decode_responses=True)


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    try:
        yield server
    finally:
        server.stop()
