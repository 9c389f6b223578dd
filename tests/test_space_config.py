"""``phi4_bridge.space_config``: the async and the sync fetch of a Space's ``/config`` answer alike (the JSON, None
for an answer that is not JSON, the status's error), and the sync one keeps its time limit for the whole answer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest

from phi4_bridge.errors import AuthError, SpaceUnavailable, UnavailableState
from phi4_bridge.space_config import chat_chain, fetch_config, fetch_config_sync
from phi4_standin.process import free_port

ANSWERS: dict[str, tuple[int, bytes]] = {
    "/json": (200, b'{"version": "5.0.0", "dependencies": []}'),
    "/html": (200, b"<html>a login page</html>"),
    "/gone": (404, b"Not Found"),
    "/private": (401, b"Unauthorized"),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        root = self.path.removesuffix("/config")
        if root == "/trickle":  # the headers at once, then a byte a second
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1.0)
            return
        status, body = ANSWERS[root]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def fetch_async(url: str) -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        return await fetch_config(session, url)


@pytest.mark.parametrize("fetch", [lambda url: asyncio.run(fetch_async(url)),
                                   lambda url: fetch_config_sync(url, 5.0)], ids=["async", "sync"])
def test_both_fetches_answer_alike(server: str, fetch: Any) -> None:
    assert fetch(f"{server}/json") == {"version": "5.0.0", "dependencies": []}
    assert fetch(f"{server}/html") is None  # 200, not JSON
    with pytest.raises(SpaceUnavailable) as gone:
        fetch(f"{server}/gone")
    assert gone.value.state is UnavailableState.NOT_FOUND and gone.value.status == 404
    with pytest.raises(AuthError) as private:
        fetch(f"{server}/private")
    assert private.value.status == 401


def test_the_sync_fetch_of_no_server_is_unreachable() -> None:
    with pytest.raises(SpaceUnavailable, match="Cannot reach the Space at") as error:
        fetch_config_sync(f"http://127.0.0.1:{free_port()}", 2.0)
    assert error.value.state is UnavailableState.UNREACHABLE


def test_the_sync_fetch_gives_up_on_a_trickled_answer_within_twice_its_limit(server: str) -> None:
    """Each byte comes within the socket's timeout, so only the fetch's own limit on the whole answer stops it."""
    started = time.monotonic()
    with pytest.raises(SpaceUnavailable, match="TimeoutError"):
        fetch_config_sync(f"{server}/trickle", 2.0)
    assert time.monotonic() - started <= 2 * 2.0


def test_chat_chain_reads_no_chat_from_what_is_no_gradio_config() -> None:
    for raw in (None, [], "text", {"dependencies": "not a list"}, {"components": [], "dependencies": []}):
        assert chat_chain(raw) is None
