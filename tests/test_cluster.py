"""``python -m mirror.cluster``: real app processes behind Debian's real nginx, driven by a real headless Chromium,
with a stand-in Space behind them.

Which process served a request is read from the header ``X-Mirror-Replica`` that nginx adds from ``$upstream_addr``
(the replica it actually connected to), so "each browser stays on its process" is what nginx did, not what the app
says about itself. Without nginx the module is skipped, except under CI (``CI=true``), where it fails: a broken
install step must not pass unseen (scripts/install-test-deps.sh installs it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import CHAT_STORAGE_KEY, SHOTS, _cryptojs_decrypt, wait_for
from PIL import Image

from mirror.cluster import find_nginx, main_config, render
from phi4_standin.launcher import start_standin
from phi4_standin.process import ServerProcess, free_port

READY_S = 240.0  # two app processes starting at once on two shared cores, then nginx
COOKIE = "mirror_replica"
# what a visitor whose replica stops reads (app.py's LOST_SENTENCE, written out: a change of it shows here)
LOST = ("The server answering this page has stopped: the page will reload by itself as soon as a server answers again "
        "(within seconds when another one is running), with your chat up to the last finished reply; a reply that was "
        "still coming in is lost (it counted as a turn), so send that message again.")
BACK = ("This page reloaded because the server answering it stopped: your chat is back up to the last finished reply, "
        "and a reply that was still coming in was lost (it counted as a turn), so send that message again.")
SETTINGS = "Settings: top_p=0.95, top_k=50, temperature=0.8, repetition_penalty=1.05, max_new_tokens=512."


def nginx_or_skip() -> str:
    try:
        return find_nginx(None)
    except SystemExit as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


class RunningCluster:
    """``python -m mirror.cluster`` as a subprocess, and what its ready line says (replica pids, nginx, config)."""

    def __init__(self, standin: ServerProcess, replicas: int = 2, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        nginx_or_skip()
        port = free_port()
        self.server = ServerProcess("cluster", [sys.executable, "-m", "mirror.cluster", "--replicas", str(replicas),
                                                "--port", str(port), "--space-url", standin.url,
                                                "--hub-url", standin.hub_url, *extra], port, env=env)
        self.url = self.server.url
        self.server.wait_ready("/", READY_S)
        ready = self.wait_log(r"cluster ready at .*")
        self.pids = {name: int(pid) for name, pid in re.findall(r"(r\d+) 127\.0\.0\.1:\d+ \(pid (\d+)\)", ready)}
        found = re.search(r"nginx (\d+) runs (\S+)", ready)
        assert found, ready
        self.nginx_pid, self.config = int(found.group(1)), Path(found.group(2))

    def wait_log(self, pattern: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.server.log_text())
            if found:
                return found.group(0)
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not in the cluster's output:\n{self.server.log_tail(40)}")

    def stop(self) -> None:
        self.server.stop()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def get(url: str, cookie: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One plain request (urllib keeps no cookies: each call is a new visitor unless ``cookie`` is given)."""
    request = urllib.request.Request(url, headers={"cookie": f"{COOKIE}={cookie}"} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:  # noqa: S310 - loopback
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


# ---- the config itself ----------------------------------------------------------------------------------------------

def test_the_rendered_config_is_valid_nginx(tmp_path: Path) -> None:
    nginx = nginx_or_skip()
    site = tmp_path / "mirror.conf"
    site.write_text(render("127.0.0.1:18080", ["127.0.0.1:17861", "127.0.0.1:17862", "127.0.0.1:17863"]))
    (tmp_path / "nginx.conf").write_text(main_config(site, tmp_path))
    text = site.read_text()
    assert "upstream mirror_r2 {\n    server 127.0.0.1:17863 max_fails=1 fail_timeout=10s;\n" \
           "    server 127.0.0.1:17861 backup;\n    server 127.0.0.1:17862 backup;\n" in text
    assert "client_max_body_size 201m;" in text and "@" + "MAX_BODY@" not in text
    checked = subprocess.run([nginx, "-e", "stderr", "-p", str(tmp_path), "-t", "-c", str(tmp_path / "nginx.conf")],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_flags_that_belong_to_the_cluster_are_refused_for_the_replicas() -> None:
    done = subprocess.run([sys.executable, "-m", "mirror.cluster", "--replicas", "2", "--share"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--share (a share link would reach one replica only, not nginx) cannot be given to the replicas" \
        in done.stderr


# ---- one cluster for the visitors that do not break anything --------------------------------------------------------

@pytest.fixture(scope="module")
def slow_standin() -> Iterator[ServerProcess]:
    with start_standin(pace_ms=60, chunks=24) as proc:
        yield proc


@pytest.fixture(scope="module")
def cluster(slow_standin: ServerProcess) -> Iterator[RunningCluster]:
    running = RunningCluster(slow_standin)
    yield running
    running.stop()


class Visitor:
    """A browser context on the cluster, and the replica (``X-Mirror-Replica``) of every response it got."""

    def __init__(self, browser: Any, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 1000})
        self.page = self.context.new_page()
        self.served: list[tuple[str, str | None]] = []
        self.loads = 0  # page loads, the first and any the page does by itself
        self.page.on("response", lambda r: self.served.append((r.url, r.headers.get("x-mirror-replica"))))
        self.page.on("load", lambda _: setattr(self, "loads", self.loads + 1))
        self.page.goto(url, timeout=90_000)
        self.page.wait_for_selector("#prompt textarea", timeout=90_000)  # a crowded 2-core machine can be slow

    @property
    def cookie(self) -> str:
        return next(c["value"] for c in self.context.cookies() if c["name"] == COOKIE)

    def replicas(self, since: int = 0) -> set[str | None]:
        return {replica for _, replica in self.served[since:]}

    def send(self, text: str, image: Path | None = None) -> None:
        if image is not None:
            self.page.locator("#prompt input[type=file]").set_input_files(str(image))
            self.page.wait_for_selector("#prompt img", timeout=15_000)  # the thumbnail: the upload went through
        self.page.locator("#prompt textarea").fill(text)
        self.page.locator("#prompt textarea").press("Enter")

    def close(self) -> None:
        self.context.close()


NOTED = "test-noted"  # the tab's sessionStorage key where note_shown keeps what it saw (it lives over a reload)


def note_shown(page: Any) -> None:
    """From now on, keep the text of every element of ours (``mirror-...`` ids, role alert) that the page shows,
    in the tab's sessionStorage: the page may reload before a poll would see it."""
    page.evaluate("""key => new MutationObserver(() => {
        for (const el of document.querySelectorAll("[id^=mirror-][role=alert]")) {
            const seen = JSON.parse(sessionStorage.getItem(key) || "{}");
            if (!(el.id in seen)) { seen[el.id] = el.innerText; sessionStorage.setItem(key, JSON.stringify(seen)); }
        }
    }).observe(document.body, {childList: true, subtree: true})""", NOTED)


def wait_noted(page: Any, element_id: str, timeout: float = 30.0) -> str:
    """The text the page showed in ``#element_id`` (recorded by ``note_shown``), waiting for it up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen = json.loads(page.evaluate("key => sessionStorage.getItem(key) || '{}'", NOTED))
        except Exception:  # noqa: BLE001 - the page is reloading: ask again
            seen = {}
        if element_id in seen:
            return str(seen[element_id])
        page.wait_for_timeout(100)
    try:
        shows = page.locator("body").inner_text()[:800]
    except Exception:  # noqa: BLE001
        shows = "(the page did not answer)"
    raise AssertionError(f"the page never showed #{element_id}; it shows:\n{shows}")


def saved_chat(page: Any) -> Any:
    """The chat this browser saved (gr.BrowserState), read with the secret of the replica that serves this browser:
    the page fetches /config itself, with its cookie (tests/browser.py's reader asks without one, so any replica)."""
    config = page.evaluate("() => fetch('/config').then(r => r.json())")
    secret = next(c["props"]["secret"] for c in config["components"]
                  if (c.get("props") or {}).get("storage_key") == CHAT_STORAGE_KEY)
    stored = page.evaluate("key => window.localStorage.getItem(key)", CHAT_STORAGE_KEY)
    return None if stored is None else json.loads(_cryptojs_decrypt(stored, secret))


def wait_saved(page: Any, turns: int, what: str, timeout: float = 15.0) -> None:
    """Until the browser saved ``turns`` finished turns (a question and its whole reply each)."""
    deadline = time.monotonic() + timeout
    while True:
        chat = saved_chat(page)
        replies = [m for m in chat or [] if m["role"] == "assistant"]
        if len(replies) == turns and "Settings:" in json.dumps(replies[-1]["content"]):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the browser did not save {what}; it holds {chat!r}")
        page.wait_for_timeout(100)


def two_visitors(browser: Any, url: str) -> tuple[Visitor, Visitor]:
    """Two browsers on different replicas: new visitors go round robin, so the next new one is normally on the other
    replica; other cookie-less requests in between (none in these tests) could shift that, hence a few tries."""
    first = Visitor(browser, url)
    for _ in range(6):
        second = Visitor(browser, url)
        if second.cookie != first.cookie:
            return first, second
        second.close()
    raise AssertionError(f"six new visitors in a row landed on {first.cookie}: new visitors are not spread")


@pytest.mark.browser
def test_two_browsers_chat_through_nginx_and_each_stays_on_its_process(browser, cluster, tmp_path: Path) -> None:
    a, b = two_visitors(browser, cluster.url)
    try:
        assert {a.cookie, b.cookie} == {"r0", "r1"}
        image = tmp_path / "teal.png"
        Image.new("RGB", (37, 23), "teal").save(image)
        a.send("What is in this picture?", image)
        b.send("Hello from B")
        wait_for(a.page, re.escape('You said: "What is in this picture?". Image 1: PNG, 37x23. Earlier turns: 0.'))
        wait_for(b.page, re.escape('You said: "Hello from B". Earlier turns: 0.'))
        # the picture the visitor sent shows in the chat: its URL (built by gradio from the forwarded host) works
        # through nginx's port
        a.page.wait_for_function("() => [...document.querySelectorAll('#chatbot .user-row img')]"
                                 ".some(i => i.complete && i.naturalWidth === 37)", timeout=15_000)
        wait_saved(a.page, 1, "A's first turn")
        wait_saved(b.page, 1, "B's first turn")
        a.send("And its colour?")
        b.send("Second from B")
        # the second turns go on from the first: the same process kept each visitor's conversation
        wait_for(a.page, re.escape('You said: "And its colour?". Earlier turns: 1. Seen: turn 1 image PNG 37x23; '
                                   'turn 1 text "What is in"; turn 2 text "And its colour?".'))
        wait_for(b.page, re.escape('You said: "Second from B". Earlier turns: 1. Seen: turn 1 text "Hello from B";'
                                   ' turn 2 text "Second from B".'))
        a.page.screenshot(path=str(SHOTS / "cluster-visitor-a.png"), full_page=True)
        for visitor in (a, b):
            turns = [url for url, _ in visitor.served if "/gradio_api/queue/join" in url]
            assert len(turns) >= 2, f"the page should have joined the queue for its turns: {visitor.served}"
            assert visitor.replicas() == {visitor.cookie}, (
                f"every response to this browser should come from {visitor.cookie}: {visitor.served}")
    finally:
        a.close()
        b.close()


def test_an_api_client_keeps_nginx_s_cookie_and_so_its_conversation(cluster) -> None:
    """gradio_client keeps the cookies of its first /config answer (for replicas behind a sticky balancer): without
    that, its second turn would reach a replica that never saw the first and answer "Earlier turns: 0"."""
    from gradio_client import Client

    clients = [Client(cluster.url, verbose=False) for _ in range(2)]
    assert {c.cookies.get(COOKIE) for c in clients} == {"r0", "r1"}, [c.cookies for c in clients]
    for i, client in enumerate(clients):
        first = client.predict({"text": f"API {i} one", "files": []}, api_name="/chat")
        second = client.predict({"text": f"API {i} two", "files": []}, api_name="/chat")
        assert first.startswith(f'You said: "API {i} one". Earlier turns: 0.'), first
        assert second.startswith(f'You said: "API {i} two". Earlier turns: 1. Seen: turn 1 text "API {i} one";'
                                 f' turn 2 text "API {i} two".'), second


def test_new_visitors_and_stateless_requests_spread_over_both(cluster) -> None:
    served = []
    for _ in range(6):
        status, headers, body = get(cluster.url + "/gradio_api/info")
        assert status == 200 and b"/chat" in body
        served.append(headers["x-mirror-replica"])
        # each new visitor is told to come back to the replica that answered it
        assert headers["set-cookie"] == f"{COOKIE}={served[-1]}; Path=/; HttpOnly; SameSite=Lax"
    assert set(served) == {"r0", "r1"}, served
    # a visitor with a cookie stays put, and is not told again
    for _ in range(4):
        status, headers, _ = get(cluster.url + "/gradio_api/info", cookie="r1")
        assert (status, headers["x-mirror-replica"], "set-cookie" in headers) == (200, "r1", False)
    # a cookie that names no replica is a new visitor
    status, headers, _ = get(cluster.url + "/gradio_api/info", cookie="r7")
    assert status == 200 and headers["set-cookie"].startswith(f"{COOKIE}={headers['x-mirror-replica']};")


def test_v1_goes_round_robin_whatever_the_cookie(cluster) -> None:
    """nginx's rule for /v1: round robin, whatever replica the browser's cookie names."""
    served = []
    for _ in range(6):
        status, headers, _ = get(cluster.url + "/v1/models", cookie="r0")
        assert status == 200, status
        assert "set-cookie" not in headers, "the API keeps no session: nginx sets no cookie there"
        served.append(headers["x-mirror-replica"])
    assert set(served) == {"r0", "r1"}, served


def test_v1_models_answers_through_nginx_from_both_replicas(cluster) -> None:
    answered = {}
    for _ in range(4):
        status, headers, body = get(cluster.url + "/v1/models")
        assert status == 200, f"/v1/models answered {status}: {body[:200]!r}"
        assert json.loads(body)["object"] == "list"
        answered[headers["x-mirror-replica"]] = status
    assert set(answered) == {"r0", "r1"}


def test_an_upload_larger_than_the_app_takes_gets_a_sentence_from_nginx(cluster) -> None:
    host, port = "127.0.0.1", int(cluster.url.rsplit(":", 1)[1])
    with socket.create_connection((host, port), timeout=15) as sock:
        sock.sendall(f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: multipart/form-data; "
                     f"boundary=x\r\nContent-Length: {300 * 1024 * 1024}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert body.decode() == ("That upload is larger than 201m, the most this app accepts in one request (8 files of at "
                             "most 25 MB).\n")


# ---- a replica stopped mid-conversation, then the whole cluster ---------------------------------------------------

@pytest.mark.browser
def test_stopping_a_replica_mid_turn_tells_its_visitor_and_the_next_page_load_works_on_the_other(
        browser, slow_standin) -> None:
    running = RunningCluster(slow_standin)
    a = b = None
    try:
        a, b = two_visitors(browser, running.url)
        doomed, survivor = a.cookie, b.cookie
        a.send("first from A")
        b.send("first from B")
        wait_for(a.page, re.escape(f'You said: "first from A". Earlier turns: 0. Seen: turn 1 text "first from A". '
                                   f"{SETTINGS}"))
        wait_for(b.page, re.escape('You said: "first from B". Earlier turns: 0.'))
        wait_saved(a.page, 1, "A's first turn")
        wait_saved(b.page, 1, "B's first turn")

        a.send("second from A, a long answer please")
        wait_for(a.page, re.escape('You said: "second from A'))  # streaming, not finished (24 chunks of 60 ms)
        before, loads = len(a.served), a.loads
        note_shown(a.page)
        os.kill(running.pids[doomed], signal.SIGTERM)  # what a stopped or restarted process gets

        # One sentence of ours, at the top of the page, saying what happens now and what became of the turn (app.py
        # shows it as gradio's own toast appears: "Connection to the server was lost. Attempting reconnection...").
        # The page may reload within two seconds of it, so what the page showed is recorded as it shows it.
        lost = wait_noted(a.page, "mirror-connection-lost")
        assert lost == LOST
        a.page.wait_for_selector("text=Connection to the server was lost. Attempting reconnection...",
                                 timeout=30_000)
        a.page.screenshot(path=str(SHOTS / "cluster-replica-stopped.png"), full_page=True)
        running.wait_log(rf"replica {doomed} \(port \d+, pid {running.pids[doomed]}\) exited with code 0; 1 of 2 "
                         r"replicas serve on\.")
        # ... then it loads itself again, from the other replica, with the chat this browser kept
        deadline = time.monotonic() + 30
        while a.loads < loads + 1 and time.monotonic() < deadline:
            a.page.wait_for_timeout(100)  # playwright's own wait: it lets the page's events through
        assert a.loads == loads + 1, "the page should have loaded itself again once an app answered"
        a.page.wait_for_selector("#prompt textarea", timeout=30_000)
        wait_for(a.page, re.escape('You said: "first from A". Earlier turns: 0.'), timeout=30)
        # ... and says once more, until closed, what happened (the sentence above may have shown for a moment only)
        back = a.page.wait_for_selector("#mirror-reconnected", state="visible", timeout=30_000)
        assert back.inner_text() == BACK and back.get_attribute("role") == "alert"
        back.click()
        a.page.wait_for_selector("#mirror-reconnected", state="detached", timeout=10_000)
        deadline = time.monotonic() + 30
        while a.cookie != survivor and time.monotonic() < deadline:
            a.page.wait_for_timeout(100)
        assert a.cookie == survivor, "the cookie should have moved to the replica that answered"

        moved = len(a.served)
        a.send("third from A")
        wait_for(a.page, re.escape('You said: "third from A". Earlier turns: 1. Seen: turn 1 text "first from A"; '
                                   'turn 2 text "third from A".'))
        assert a.replicas(moved) == {survivor}, a.served[moved:]
        assert survivor in a.replicas(before)

        # the other visitor never noticed
        assert b.page.locator("#mirror-connection-lost, #mirror-reconnected").count() == 0
        b_before = len(b.served)
        b.send("second from B")
        wait_for(b.page, re.escape('You said: "second from B". Earlier turns: 1. Seen: turn 1 text "first from B";'
                                   ' turn 2 text "second from B".'))
        assert b.replicas() == {survivor}, b.served
        assert b.replicas(b_before) == {survivor}
    finally:
        for visitor in (a, b):
            if visitor is not None:
                visitor.close()
        running.stop()


def test_sigterm_stops_nginx_and_every_replica_and_removes_the_temporary_directory(slow_standin) -> None:
    running = RunningCluster(slow_standin)
    try:
        pids = [running.nginx_pid, *running.pids.values()]
        assert all(alive(pid) for pid in pids) and running.config.exists()
        running.server.proc.send_signal(signal.SIGTERM)
        assert running.server.proc.wait(timeout=30) == 0
        left = [pid for pid in pids if alive(pid)]
        assert left == [], f"still running after the cluster exited: {left}"
        assert not running.config.parent.exists(), f"{running.config.parent} was left behind"
        status = None
        try:
            status, _, _ = get(running.url + "/")
        except OSError:
            pass
        assert status is None, "nothing should answer on the cluster's port any more"
    finally:
        running.stop()
