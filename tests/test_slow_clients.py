"""Issue 14: requests slow on purpose do not hold a connection forever (mirror/door/slow_clients.py). Raw sockets over
loopback against the real app (``--slow-client-timeout 2``), with the real stand-in behind it.

Each test fails on the hole it names: without the deadlines uvicorn keeps a silent connection, a trickled head or
body, and an unread download open for as long as the client likes (the test then runs into its own bound)."""

from __future__ import annotations

import os
import re
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from app_server import start_app
from gradio_client import Client

from mirror.door.slow_clients import TIMEOUT_408
from phi4_standin.process import ServerProcess

TRICKLE_S = 0.25  # a byte this often: the pace of a trickling client (the app allows 2 s plus 1 s per 500 bytes)
BOUND_BYTES = 240  # 60 s of trickle: far past the deadline; reaching it means the server never cut the client off
LIMIT_S = 2.0  # the app's --slow-client-timeout here; a deadline is asserted with room: twice what it promises


@pytest.fixture(scope="module")
def app(standin: ServerProcess) -> Iterator[ServerProcess]:
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback",
                   "--slow-client-timeout", f"{LIMIT_S:g}") as server:
        yield server


def connect(app: ServerProcess, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect: the window the server sees stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", app.port))
    return sock


def read_to_end(sock: socket.socket, timeout: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection (ConnectionResetError counts as closed)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def trickle(sock: socket.socket, payload: bytes) -> int:
    """Send ``payload`` a byte every ``TRICKLE_S`` until the server answers or closes; how many bytes went."""
    for sent, byte in enumerate(payload):
        readable, _, _ = select.select([sock], [], [], TRICKLE_S)
        if readable:
            return sent
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return sent
    return len(payload)


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(app: ServerProcess) -> None:
    with connect(app) as sock:
        started = time.monotonic()
        assert read_to_end(sock) == TIMEOUT_408
        waited = time.monotonic() - started
    # the promise: a request must arrive within the limit; with room for a loaded machine, twice that
    assert waited <= 2 * LIMIT_S, f"a silent connection was held {waited:.1f} s for a {LIMIT_S:g} s deadline"
    assert TIMEOUT_408.endswith(b"\r\n\r\nThe request took too long to arrive; retry.\n")
    assert int(re.search(rb"content-length: (\d+)", TIMEOUT_408).group(1)) == len(TIMEOUT_408.split(b"\r\n\r\n")[1])


def test_a_request_head_trickled_in_is_cut_off_with_408(app: ServerProcess) -> None:
    with connect(app) as sock:
        sock.sendall(b"GET /config HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sent = trickle(sock, b"a" * BOUND_BYTES)
        assert sent < BOUND_BYTES, "the server still waits for a head trickled in for a minute"
        assert read_to_end(sock) == TIMEOUT_408
    # headers alone get at most twice the limit: with room, twice that again (a byte every TRICKLE_S)
    assert sent * TRICKLE_S <= 2 * (2 * LIMIT_S), f"a trickled head was read for {sent * TRICKLE_S:.1f} s"


def test_a_queue_join_body_trickled_in_is_dropped_and_holds_nothing(app: ServerProcess) -> None:
    body = b'{"data": [{"text": "slow", "files": []}, []], "fn_index": 0, "session_hash": "slowjoin01"}'
    body += b" " * 4000
    with connect(app) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:40])
        sent = trickle(sock, body[40:40 + BOUND_BYTES])
        assert sent < BOUND_BYTES, "the server still reads a body trickled in for a minute"
        assert read_to_end(sock) == b""  # dropped: no answer to a request that never arrived
    log_line = f"dropped a slow client 127.0.0.1:{local_port}: its request body did not arrive in time"
    deadline = time.monotonic() + 10
    while log_line not in app.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log_line in app.log_text()
    # the app goes on: a visitor's turn runs (the trickled join never reached the queue)
    client = Client(app.url, verbose=False)
    assert client.predict({"text": "still here", "files": []}, api_name="/chat").startswith('You said: "still here".')


def test_a_download_never_read_is_dropped(app: ServerProcess) -> None:
    blob = os.urandom(12 * 1024 * 1024)  # more than the kernel's and uvicorn's buffers hold together
    uploaded = httpx.post(app.url + "/gradio_api/upload", files={"files": ("big.bin", blob)}, timeout=60)
    assert uploaded.status_code == 200, uploaded.text
    path = uploaded.json()[0]
    with connect(app, rcvbuf=4096) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(f"GET /gradio_api/file={path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        poller = select.poll()
        poller.register(sock, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
        assert poller.poll(30_000), "the server still holds a download nobody reads after 30 s"
        received = read_to_end(sock)
    assert len(received) < len(blob), "the download was dropped before it was complete"
    assert f"dropped a client 127.0.0.1:{local_port} that left its reply unread for 2 s" in app.log_text()
    # a reader that keeps up gets the whole file
    assert httpx.get(app.url + f"/gradio_api/file={path}", timeout=60).content == blob
