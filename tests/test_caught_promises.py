"""Promises of the manual (docs/) that no test checked (issue 23's list), one test each, cheapest first.

Where the behaviour lives behind a server it is driven through the real app (the login lockout's sentence, the
heartbeat cap, ``/v1``'s 64 MB); where it is a pure part (the lockout's window, the visitor cap, the saved chat's
missing file, the image fetcher's size and time bounds) that part is driven directly, against a real local HTTP
server for the fetcher. The defaults themselves are read from the app's own settings (``parse_settings``), as the
app reads them at start. Each test was checked by breaking the code it guards and seeing it fail: each default
changed; the lockout at ``>`` for ``>=``; the deleted-file check and the visitor cap's prune removed; the fetcher's
size check at ``>=`` and ``+ 1``, its timeout five-fold; 65 heartbeats; the lockout's sentence without its seconds;
``/v1``'s cap at 68 MB; the cluster returning 0 when its replica or nginx is gone.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import httpx
import pytest
from app_server import start_app

from mirror.chat.chat_values import safe_history
from mirror.chat.handlers import Visitors
from mirror.door.guard import LoginThrottle
from mirror.settings import AppSettings, parse_settings
from mirror.visitors.budget import Rule
from phi4_bridge.config import Limits
from phi4_bridge.openai_api.fetch import TIMEOUT_S, FetchRefused, fetch
from phi4_standin.process import ServerProcess

MB = 1024 * 1024
API_KEY = "sk-caught-5e1f"  # the app's /v1 key (behind --auth, /v1 asks for a key of its own)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings as a fresh shell gives them: none of the app's environment variables set."""
    import os

    for name in list(os.environ):
        if name.startswith(("PHI4_", "GRADIO_")) or name in ("SYSTEM", "SPACE_ID"):
            monkeypatch.delenv(name)


# ---- defaults (docs/app.md, docs/security.md, docs/sharing.md), read as the app reads them --------------------

def test_the_documented_defaults(no_env: None) -> None:
    """docs/app.md: --concurrency 32 with up to 1,024 waiting; --turns-per-client 4; docs/security.md: 2,000
    visitors, 5 failed logins a minute lock out for 30 s."""
    settings = parse_settings([])
    assert (settings.concurrency_total, settings.queue_max_size) == (32, 1024)
    assert settings.turns_per_client == 4
    assert settings.max_visitors == 2000
    assert (settings.login_failures, settings.login_window_s, settings.login_lockout_s) == (5, 60.0, 30.0)


def test_share_sets_30_turns_an_hour_and_a_local_run_none(no_env: None) -> None:
    """docs/sharing.md: --visitor-turns defaults to 30/hour with --share, none for a local run; a given rule wins."""
    assert parse_settings([]).visitor_turns is None
    shared = parse_settings(["--share"]).visitor_turns
    assert isinstance(shared, Rule) and (shared.turns, shared.period_s) == (30, 3600.0)
    given = parse_settings(["--share", "--visitor-turns", "5/minute"]).visitor_turns
    assert given is not None and (given.turns, given.period_s) == (5, 60.0)


# ---- the login lockout's window (pure) -------------------------------------------------------------------------

class Clock:
    """``time.monotonic`` for the throttle, moved by hand: a minute's window is tested without waiting a minute."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failed_logins_within_a_minute_lock_out_for_30_s(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr("mirror.door.guard.time.monotonic", clock)
    s = AppSettings()
    throttle = LoginThrottle(s.login_failures, s.login_window_s, s.login_lockout_s)
    for _ in range(4):  # four failures: not yet
        throttle.record("10.0.0.1", ok=False)
        clock.now += 14.0
    assert throttle.locked_for("10.0.0.1") == 0.0
    clock.now += 60.0 - 4 * 14.0 + 0.5  # the first failure is now just over a minute old: out of the window
    throttle.record("10.0.0.1", ok=False)
    assert throttle.locked_for("10.0.0.1") == 0.0, "a failure older than the minute still counted"
    throttle.record("10.0.0.1", ok=False)  # the fifth within one minute
    assert throttle.locked_for("10.0.0.1") == pytest.approx(30.0)
    assert throttle.locked_for("10.0.0.2") == 0.0, "another address was locked out too"
    clock.now += 29.5
    assert throttle.locked_for("10.0.0.1") == pytest.approx(0.5)
    clock.now += 0.5
    assert throttle.locked_for("10.0.0.1") == 0.0, "still locked after the 30 s"


# ---- visitors capped at 2,000 (pure) ---------------------------------------------------------------------------

def test_at_most_2000_visitors_are_kept_the_longest_idle_dropped_first() -> None:
    visitors = Visitors(1, idle_s=3600.0, max_items=AppSettings().max_visitors)
    first, _ = visitors.get("visitor-0")
    for n in range(1, 2000):
        visitors.get(f"visitor-{n}")
    assert len(visitors) == 2000
    assert visitors.get("visitor-0")[0] is first, "a visitor was dropped below the cap"
    visitors.get("visitor-2000")  # one more: the longest idle (visitor-1, since visitor-0 was just used) goes
    assert len(visitors) == 2000
    assert visitors.get("visitor-0")[0] is first
    assert len(visitors) == 2000
    assert "visitor-1" not in visitors._items and "visitor-2000" in visitors._items


# ---- a saved chat that names a deleted file (pure) -------------------------------------------------------------

def test_a_saved_chat_naming_a_deleted_upload_shows_it_as_no_longer_available(tmp_path: Path) -> None:
    """docs/security.md: a chat saved in the browser that refers to a deleted file shows "📎 name (no longer
    available)"; a file still there stays a file."""
    kept, gone = tmp_path / "kept.png", tmp_path / "gone.png"
    kept.write_bytes(b"x")
    gone.write_bytes(b"x")

    def saved(path: Path, name: str) -> list[dict[str, object]]:
        return [{"role": "user", "content": [{"type": "file", "file": {"path": str(path), "orig_name": name}}]}]

    assert safe_history(saved(kept, "cat.png"), [tmp_path])[0]["content"][0]["type"] == "file"
    gone.unlink()
    assert safe_history(saved(gone, "cat.png"), [tmp_path])[0]["content"] == [
        {"type": "text", "text": "📎 cat.png (no longer available)"}]


# ---- image URLs: at most 10 MB and 10 s (the fetcher, against a real local server) ----------------------------

class ImageServer:
    """Serves ``/size/N`` (N bytes of a PNG's head and zeros, with a Content-Length), ``/chunked/N`` (the same
    without one) and ``/stall`` (headers, then nothing)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        release = self.release

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                kind, _, size = self.path.strip("/").partition("/")
                self.send_response(200)
                self.send_header("content-type", "image/png")
                if kind == "stall":
                    self.send_header("content-length", "100")
                    self.end_headers()
                    self.wfile.flush()
                    release.wait(60)
                    return
                body = b"\x89PNG\r\n\x1a\n" + b"\0" * (int(size) - 8)
                if kind == "size":
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for at in range(0, len(body), MB):
                    piece = body[at:at + MB]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


def loopback(address: str) -> bool:
    """The fetcher refuses loopback addresses; only this test's own server is let through."""
    return address == "127.0.0.1"


async def test_an_image_url_of_10_mb_is_fetched_and_one_byte_more_is_refused(images: ImageServer) -> None:
    most = Limits().max_image_bytes
    assert most == 10 * MB
    for kind in ("size", "chunked"):  # the server's Content-Length, and none (counted as it arrives)
        body, mime = await fetch(f"{images.url}/{kind}/{most}", most, allowed=loopback)
        assert (len(body), mime) == (most, "image/png")
        with pytest.raises(FetchRefused, match=r"larger than 10,485,760 bytes|10,485,761 bytes; the most taken is"):
            await fetch(f"{images.url}/{kind}/{most + 1}", most, allowed=loopback)


async def test_an_image_url_that_does_not_arrive_in_10_s_is_given_up_within_twice_that(images: ImageServer) -> None:
    """The default the server uses (``materialize`` passes none): 10 s, asserted with room (20 s)."""
    assert TIMEOUT_S == 10.0
    started = time.monotonic()
    with pytest.raises(FetchRefused, match=r"the image did not arrive within 10 s\."):
        await fetch(f"{images.url}/stall", 10 * MB, allowed=loopback)
    took = time.monotonic() - started
    assert TIMEOUT_S - 0.5 <= took <= 2 * TIMEOUT_S, f"gave up after {took:.1f} s"


# ---- through the real app --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(standin: ServerProcess) -> Iterator[ServerProcess]:
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback",
                   "--auth", "alice:right-horse", "--api-key", API_KEY) as server:
        yield server


async def test_a_locked_out_address_is_told_how_many_seconds_to_wait(app: ServerProcess) -> None:
    """docs/security.md: 5 wrong passwords lock the address out for 30 s, "…wait N s and try again…" (HTTP 429)."""
    address = {"X-Forwarded-For": "10.23.0.1"}  # an address of this test's own
    async with aiohttp.ClientSession() as session:
        for n in range(5):
            async with session.post(app.url + "/login", headers=address,
                                    data={"username": "alice", "password": f"wrong-{n}"}) as resp:
                assert resp.status == 400, await resp.text()
        async with session.post(app.url + "/login", headers=address,
                                data={"username": "alice", "password": "right-horse"}) as resp:
            status, text, retry = resp.status, await resp.text(), resp.headers.get("retry-after")
    assert status == 429, text
    import re

    said = re.search(r"Too many failed logins from your address; wait (\d+) s and try again\.", text)
    assert said, text
    assert 25 <= int(said.group(1)) <= 30 and retry == said.group(1), (text, retry)


async def test_an_address_holds_at_most_64_heartbeat_streams(app: ServerProcess) -> None:
    """docs/security.md: open heartbeat streams per address: 64, then 429; one closed makes room again."""
    address = {"X-Forwarded-For": "10.23.0.2"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        held: list[aiohttp.ClientResponse] = []
        try:
            for n in range(64):
                resp = await session.get(f"{app.url}/gradio_api/heartbeat/beat{n}", headers=address)
                assert resp.status == 200, (n, resp.status)
                held.append(resp)
            async with session.get(f"{app.url}/gradio_api/heartbeat/beat64", headers=address) as over:
                assert over.status == 429, over.status
                assert "Too many open pages from your address" in await over.text()
            async with session.get(f"{app.url}/gradio_api/heartbeat/other",
                                   headers={"X-Forwarded-For": "10.23.0.3"}) as other:
                assert other.status == 200, "another address was refused"
            held.pop().close()
            for _ in range(100):  # the app sees the closed stream a moment later
                async with session.get(f"{app.url}/gradio_api/heartbeat/again", headers=address) as again:
                    if again.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert again.status == 200, "a closed heartbeat stream still counts"
        finally:
            for resp in held:
                resp.close()


def raw_post(app: ServerProcess, path: str, head_length: int) -> bytes:
    """A POST whose headers say ``head_length`` bytes follow and that sends none: what the server answers."""
    with socket.create_connection(("127.0.0.1", app.port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Authorization: Bearer {API_KEY}\r\nContent-Length: {head_length}\r\n\r\n".encode())
        return sock.recv(65536)


def test_a_v1_body_of_64_mb_is_read_and_one_byte_more_is_refused(app: ServerProcess) -> None:
    """docs/openai-api.md: a request body may be at most 64 MB. Exactly 64 MB is read (and then refused for what
    it says: its prompt is too long); one byte more is 413, from the Content-Length unread, or as it arrives."""
    most = 64 * MB
    assert raw_post(app, "/v1/chat/completions", most + 1).startswith(b"HTTP/1.1 413")
    head, tail = b'{"model": "phi-4-multimodal", "messages": [{"role": "user", "content": "', b'"}]}'

    def body(size: int) -> Iterator[bytes]:  # streamed: chunked, no Content-Length
        yield head
        left = size - len(head) - len(tail)
        while left > 0:
            yield b"x" * min(MB, left)
            left -= MB
        yield tail

    url = f"{app.url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    at = httpx.post(url, content=body(most), headers=headers, timeout=120)
    assert at.status_code == 400 and "20,000" in at.text, (at.status_code, at.text[:300])
    over = httpx.post(url, content=body(most + 1), headers=headers, timeout=120)
    assert over.status_code == 413 and "request_too_large" in over.text, (over.status_code, over.text[:300])


# ---- the cluster (docs/cluster.md) -----------------------------------------------------------------------------

def group_of(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` (nginx's master and workers: the cluster starts it in a session of
    its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("gone", ["replica", "nginx"])
def test_the_cluster_stops_and_exits_1_when_every_replica_or_nginx_is_gone(standin: ServerProcess, gone: str) -> None:
    """docs/cluster.md: "When nginx or every replica is gone, the rest is stopped and the command exits 1." One
    replica, killed (SIGKILL: it cannot say goodbye), or nginx killed: the command ends with 1 and leaves nothing."""
    import os
    import signal

    from test_cluster import RunningCluster, alive

    running = RunningCluster(standin, replicas=1)
    try:
        (replica,) = running.pids.values()
        os.kill(replica if gone == "replica" else running.nginx_pid, signal.SIGKILL)
        assert running.server.proc.wait(timeout=60) == 1, running.server.log_tail(20)
        left = [pid for pid in (replica, running.nginx_pid, *group_of(running.nginx_pid)) if alive(pid)]
        assert left == [], f"still running after the cluster exited: {left}"  # nginx's worker too: it holds the port
    finally:
        running.stop()
