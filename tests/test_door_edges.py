"""The door at its edges (mirror/door/middleware.py), as the mutation check (tests/README.md) asks: ``Door`` driven
in-process as an ASGI app, with a small real ASGI app behind it (``Behind``: it reads the body it is given and
answers) or gradio's own app for a page (the queue's real waiting turns), and the real ``guard.Guard`` bookkeeping
on the app's default settings. Each test asserts what a visitor sees (the status, the sentence, the headers),
whether the request reached the app behind, and what the bookkeeping holds afterwards; each names the break it
catches (made by hand, seen to fail, restored)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import httpx
import pytest
from guard_clock import Clock

from mirror.door.guard import BAD_SESSION, Guard
from mirror.door.middleware import Door, _chat_call
from mirror.settings import parse_settings
from mirror.visitors.budget import Budget, Rule

MB = 1024 * 1024  # the unit of every figure the app prints
EVENT_LIMIT = 4_507_776  # guard.event_body_limit of the default limits (test_guard_edges.py checks the sum)
UPLOAD_LIMIT = 81 * MB  # guard.upload_request_limit: 8 files of 10 MB and 1 MB of form
WHY = ("the most this app reads for one request is 4.3 MB, enough for a chat history within its limits (200,000 "
       "characters); files go through the upload.")
HERE, THERE = ("10.0.0.1", 5000), ("10.0.0.2", 5000)

pytestmark = pytest.mark.timeout(60)  # in-process: a test that takes a minute is hanging on a broken door


class Behind:
    """The app behind the door: counts the requests that reach it, reads the whole body it is handed (and then
    one more ``receive``, as a server's app waits for the client to go), waits at ``gate`` when one is set, and
    answers ``status`` with ``answer``."""

    def __init__(self, status: int = 200, answer: bytes = b"from the app") -> None:
        self.status, self.answer = status, answer
        self.reached: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []
        self.after_body: list[dict[str, Any]] = []
        self.inside = 0
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.headers: list[tuple[bytes, bytes]] | None = [(b"content-type", b"text/plain")]  # None: none sent

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.reached.append((scope["type"], scope.get("path", "")))
        if scope["type"] != "http":  # a lifespan: its startup answered as a server's app does
            if (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                self.after_body.append(await receive())
                break
        self.bodies.append(body)
        self.inside += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail:
                raise RuntimeError("the app behind failed")
            start: dict[str, Any] = {"type": "http.response.start", "status": self.status}
            if self.headers is not None:  # ASGI's headers are optional
                start["headers"] = self.headers
            await send(start)
            await send({"type": "http.response.body", "body": self.answer[:4], "more_body": True})
            await send({"type": "http.response.body", "body": self.answer[4:]})
        finally:
            self.inside -= 1


@dataclass
class Reply:
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    receives: int = 0  # how many times the request's body was asked for

    def header(self, name: bytes) -> bytes | None:
        found = [v for k, v in self.headers if k == name]
        assert len(found) <= 1, f"{name!r} sent {len(found)} times"
        return found[0] if found else None

    @property
    def detail(self) -> str:
        """The door's refusal as the visitor reads it (its JSON body's ``detail``, the same as its ``error``)."""
        data = json.loads(self.body)
        assert data == {"detail": data["detail"], "error": data["detail"]}
        assert self.header(b"content-type") == b"application/json"
        assert self.header(b"content-length") == str(len(self.body)).encode()
        return str(data["detail"])


async def call(app: Any, method: str = "GET", path: str = "/", *, query: bytes = b"", body: bytes = b"",
               chunks: list[bytes] | None = None, length: int | str | None = None,
               headers: tuple[tuple[bytes, bytes], ...] = (), client: tuple[str, int] | None = HERE,
               gone: bool = False) -> Reply:
    """One HTTP request through ``app``: the body as ``chunks`` (or one), ``Content-Length`` when ``length`` is
    given; ``gone``: the client goes away after the chunks, before the body is complete."""
    reply = Reply()
    parts = chunks if chunks is not None else [body]
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": chunk, "more_body": gone or i < len(parts) - 1}
                                      for i, chunk in enumerate(parts)]

    async def receive() -> dict[str, Any]:
        reply.receives += 1
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert reply.status is None, "two response starts"
            reply.status, reply.headers = message["status"], list(message.get("headers", []))
        else:
            assert message["type"] == "http.response.body", f"not an ASGI message: {message}"
            assert reply.status is not None, "a body before the response start"
            reply.body += message.get("body", b"")

    head = [*headers] + ([(b"content-length", str(length).encode())] if length is not None else [])
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": head,
             "client": client}
    await app(scope, receive, send)
    return reply


HELLO = {"text": "hi", "files": []}  # a /chat message within its limits


def join(fn_index: Any, data: Any = None, session: Any = "sess1", **more: Any) -> bytes:
    """A queue join's body, as gradio's page sends it."""
    return json.dumps({"data": data if data is not None else [HELLO], "fn_index": fn_index,
                       "session_hash": session, "event_data": None, "trigger_id": None, **more}).encode()


def echo(text: str) -> str:
    return text


def page() -> gr.Blocks:
    """A page like the app's: ``/chat``'s event (fn 0, ``api_name="chat"``), the page's own turn (fn 1), both in
    the ``"chat"`` concurrency group the door counts as turns, and one event that is no turn (fn 2)."""
    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(echo, box, out, api_name="chat", concurrency_id="chat")
        box.change(echo, box, out, api_name="turn", concurrency_id="chat")
        box.blur(echo, box, out, api_name="other")
    demo.queue()
    return demo


@pytest.fixture(scope="module")
def blocks() -> gr.Blocks:
    return page()


@pytest.fixture
def guard(blocks: gr.Blocks) -> Iterator[Guard]:
    guard = Guard(parse_settings([]))
    guard.attach(blocks, None)
    yield guard
    if guard._sweeper is not None:
        guard._sweeper.cancel()


@pytest.fixture
def behind() -> Behind:
    return Behind()


@pytest.fixture
def door(behind: Behind, guard: Guard) -> Door:
    return Door(behind, guard)


async def quick(request: Awaitable[Reply]) -> Reply:
    """A request the door must answer itself: at once, never by waiting on the held app behind (a broken door
    fails here in a second instead of hanging the test)."""
    return await asyncio.wait_for(request, timeout=2.0)


async def settle(check: Callable[[], bool]) -> None:
    """Let the tasks of the test run until ``check`` holds (everything is in this process: no waiting on a clock)."""
    for _ in range(10_000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never settled")


# --- what the door lets through -----------------------------------------------------------------------------------


async def test_a_page_or_a_lifespan_message_reaches_the_app_as_it_came(door: Door, behind: Behind,
                                                                       guard: Guard) -> None:
    """Caught: the non-HTTP branch reversed or dropped (lifespan would go through the HTTP checks and fail), the
    sweeper of unopened turns never started."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await door({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}]  # the app's own receive and send, untouched
    assert guard._sweeper is None  # nothing of HTTP ran
    reply = await call(door, "GET", "/", body=b"")
    assert (reply.status, reply.body) == (200, b"from the app")
    assert behind.reached == [("lifespan", ""), ("http", "/")]
    assert guard._sweeper is not None and not guard._sweeper.done()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/gradio_api/info"), ("POST", "/gradio_api/mcp/messages"), ("GET", "/gradio_api/upload"),
    ("GET", "/gradio_api/queue/join"), ("PUT", "/gradio_api/run/predict"), ("POST", "/chat"),
])
async def test_what_is_no_event_passes_whatever_its_size(door: Door, behind: Behind, method: str,
                                                          path: str) -> None:
    """Routes others mount under ``/gradio_api`` (an MCP server's messages), reads, and other methods are not
    capped (caught: ``method == "POST"`` reversed, the event routes widened)."""
    reply = await call(door, method, path, body=b"x" * 10, length=200 * MB)
    assert (reply.status, reply.body) == (200, b"from the app")
    assert behind.bodies == [b"x" * 10]


async def test_a_file_whose_path_holds_gradio_api_is_a_file(door: Door, behind: Behind, guard: Guard) -> None:
    """``/gradio_api/file=<path>`` may name any path: the route is read after the first ``/gradio_api/``
    (caught: read after the last, which took this file for a heartbeat with a bad session id)."""
    reply = await call(door, "GET", "/gradio_api/file=/srv/gradio_api/heartbeat/a.b")
    assert (reply.status, reply.body) == (200, b"from the app")
    assert guard.heartbeats == {}


# --- session ids ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [b"session_hash=a%2Fb", b"session_hash=" + b"a" * 65,
                                   b"x=1&session_hash=ok&session_hash=b%20c", b"session_hash=%C3%A9",
                                   b"session%5Fhash=a%2Fb", b"%73ession_hash=a.b"])
async def test_a_bad_session_id_in_the_query_is_refused_before_the_app(door: Door, behind: Behind,
                                                                        query: bytes) -> None:
    """On any route, every ``session_hash`` of the query, its name percent-encoded too (starlette decodes it, so
    gradio would read it). Caught: the query not read, only the first hash read, an encoded name let through (it
    was: the door looked for the bytes ``session_hash``), the status or sentence changed."""
    reply = await call(door, "GET", "/gradio_api/queue/data", query=query)
    assert (reply.status, reply.detail) == (400, BAD_SESSION)
    assert behind.reached == []


async def test_a_good_session_id_in_the_query_passes(door: Door, behind: Behind) -> None:
    reply = await call(door, "GET", "/gradio_api/queue/data", query=b"session_hash=" + b"a" * 64)
    assert reply.status == 200 and behind.reached == [("http", "/gradio_api/queue/data")]


# --- heartbeats -------------------------------------------------------------------------------------------------


async def test_a_heartbeat_with_a_bad_session_id_is_refused(door: Door, behind: Behind, guard: Guard) -> None:
    """Caught: the heartbeat's path not checked (all of it after ``heartbeat/``, not up to a second
    ``/gradio_api/``), or its trailing ``/`` not stripped (a good one refused)."""
    for path in ("/gradio_api/heartbeat/a.b", "/gradio_api/heartbeat/abc/gradio_api/x"):
        reply = await call(door, "GET", path)
        assert (reply.status, reply.detail) == (400, BAD_SESSION)
    assert (await call(door, "GET", "/gradio_api/heartbeat/abc/")).status == 200
    assert behind.reached == [("http", "/gradio_api/heartbeat/abc/")]
    assert guard.heartbeats == {}


async def test_64_open_heartbeats_per_address_and_the_65th_refused_until_one_ends(door: Door, behind: Behind,
                                                                                   guard: Guard) -> None:
    """docs/security.md: 64 open heartbeat streams per address, 429 beyond; another address is not held back;
    each stream's count is given back when it ends. Caught: ``>=`` made ``>`` (65 held), the count not kept or
    not released, the sentence changed."""
    behind.gate = asyncio.Event()
    held = [asyncio.create_task(call(door, "GET", f"/gradio_api/heartbeat/s{i}")) for i in range(64)]
    await settle(lambda: behind.inside == 64)
    assert guard.heartbeats == {"10.0.0.1": 64}
    refused = await quick(call(door, "GET", "/gradio_api/heartbeat/s64"))
    assert (refused.status, refused.detail) == (429, "Too many open pages from your address; close some and reload.")
    assert len(behind.reached) == 64
    other = asyncio.create_task(call(door, "GET", "/gradio_api/heartbeat/t0", client=THERE))
    await settle(lambda: behind.inside == 65)
    behind.gate.set()
    assert [r.status for r in await asyncio.gather(*held, other)] == [200] * 65
    assert guard.heartbeats == {}
    behind.gate = None
    assert (await call(door, "GET", "/gradio_api/heartbeat/s64")).status == 200


async def test_a_heartbeat_whose_app_fails_gives_its_count_back(door: Door, behind: Behind, guard: Guard) -> None:
    """Caught: the release outside ``finally`` (a failing stream would hold its count for good)."""
    behind.fail = True
    with pytest.raises(RuntimeError):
        await call(door, "GET", "/gradio_api/heartbeat/s1")
    assert guard.heartbeats == {}


# --- logins -----------------------------------------------------------------------------------------------------


class LoginPage(Behind):
    """gradio's ``/login``: 200 for the right password, 400 for a wrong one (``status_of`` can say otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self.wrong = 400

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.status = 200 if message.get("body") == b"password=right" else self.wrong
        await super().__call__(scope, _again(message, receive), send)


def _again(first: dict[str, Any], receive: Any) -> Any:
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return first
        message: dict[str, Any] = await receive()
        return message
    return again


async def test_five_wrong_passwords_lock_the_address_out_even_with_the_right_one(guard: Guard,
                                                                                 clock: Clock) -> None:
    """docs/security.md: 5 wrong passwords within a minute lock the address out for 30 s; the 429 says how long
    (``Retry-After`` too) and never reaches the login page; another address still logs in. Caught: the lockout
    not asked, 400 not counted as a failure, the wait's figure or its header changed."""
    login = LoginPage()
    door = Door(login, guard)
    for _ in range(5):
        assert (await call(door, "POST", "/login", body=b"password=wrong")).status == 400
    clock.now += 10.6
    reply = await call(door, "POST", "/login", body=b"password=right")
    assert reply.status == 429
    assert reply.detail == ("Too many failed logins from your address; wait 19 s and try again. Until then every "
                            "login from it is refused, even with the right password.")
    assert reply.header(b"retry-after") == b"19"
    assert len(login.reached) == 5
    assert (await call(door, "POST", "/login", body=b"password=right", client=THERE)).status == 200
    clock.now += 19.0  # 0.4 s left: "wait 1 s", never "0 s"
    reply = await call(door, "POST", "/login/", body=b"password=right")
    assert (reply.status, reply.header(b"retry-after")) == (429, b"1")
    assert "wait 1 s and" in reply.detail
    clock.now += 0.4
    assert (await call(door, "POST", "/login/", body=b"password=right")).status == 200


@pytest.mark.parametrize(("wrong", "counted"), [(401, True), (400, True), (500, False), (302, False)])
async def test_only_a_refused_password_counts_as_a_failed_login(guard: Guard, clock: Clock, wrong: int,
                                                                counted: bool) -> None:
    """400 and 401 are wrong passwords; a server error or a redirect is not the visitor's failure. Caught: the
    statuses counted changed, the status read from the wrong message."""
    login = LoginPage()
    login.wrong = wrong
    door = Door(login, guard)
    for _ in range(5):
        assert (await call(door, "POST", "/gradio_api/login", body=b"password=wrong")).status == wrong
    assert (await call(door, "POST", "/login", body=b"password=right")).status == (429 if counted else 200)


async def test_a_right_password_wipes_the_failures_before_it(guard: Guard, clock: Clock) -> None:
    """Caught: a 200 recorded as a failure (``ok=status == 200`` reversed), or not recorded at all; a GET
    counted."""
    door = Door(LoginPage(), guard)
    for attempt in [b"wrong"] * 4 + [b"right"] + [b"wrong"] * 4:
        await call(door, "POST", "/login", body=b"password=" + attempt)
    assert guard.logins.locked_for("10.0.0.1") == 0.0  # four failures since the right password
    await call(door, "POST", "/login", body=b"password=wrong")
    assert guard.logins.locked_for("10.0.0.1") == 30.0  # the fifth
    clock.now += 30.0
    await call(door, "POST", "/login", body=b"password=right")
    for _ in range(5):  # a GET of the login page is no attempt, whatever it answers
        assert (await call(door, "GET", "/login")).status == 400
    assert guard.logins.locked_for("10.0.0.1") == 0.0


# --- uploads ----------------------------------------------------------------------------------------------------


async def test_an_upload_of_81_mb_passes_and_one_byte_more_is_refused_unread(door: Door, behind: Behind) -> None:
    """docs/security.md: one upload request carries at most 81 MB (a turn's 8 files at 10 MB, 1 MB of form),
    refused from its ``Content-Length`` before a byte is read. Caught: ``>`` made ``>=``, the sentence's figures."""
    assert (await call(door, "POST", "/gradio_api/upload", body=b"form", length=UPLOAD_LIMIT)).status == 200
    refused = await call(door, "POST", "/gradio_api/upload/", body=b"form", length=UPLOAD_LIMIT + 1)
    assert refused.status == 413 and refused.receives == 0
    large = await call(door, "POST", "/gradio_api/upload", body=b"form", length=int(199.6 * MB))
    assert large.detail == ("The upload is 200 MB, larger than the 81 MB one upload may carry (a turn's 8 files of "
                            "up to 10 MB).")
    assert behind.bodies == [b"form"]
    for length in (None, "lots"):  # no length (a chunked body) or one that is no number: gradio reads it
        assert (await call(door, "POST", "/gradio_api/upload", body=b"form", length=length)).status == 200


async def test_gradio_s_413_for_a_file_over_25_mb_is_worded_as_the_bridge_words_it(
        door: Door, behind: Behind, caplog: pytest.LogCaptureFixture) -> None:
    """gradio refuses one file over ``max_file_size`` with its own 413; the visitor reads the app's sentence
    instead, as plain text with its own length, and gradio's body is never sent. Caught: the 413 not caught,
    its body leaked after the sentence, the headers kept twice, the figures or the log line changed."""
    behind.status, behind.answer = 413, b'{"detail": "Maximum file size exceeded"}'
    behind.headers = [(b"content-type", b"application/json"), (b"content-length", b"40"), (b"x-gradio", b"6")]
    with caplog.at_level(logging.WARNING, logger="mirror.door.middleware"):
        reply = await call(door, "POST", "/gradio_api/upload", body=b"form")
    sentence = ("That file is larger than 25 MB, the most this app accepts for one file (images at most 10 MB, "
                "audio at most 25 MB).")
    assert (reply.status, reply.body.decode()) == (413, sentence)
    assert reply.header(b"content-type") == b"text/plain; charset=utf-8"
    assert reply.header(b"content-length") == str(len(sentence)).encode()
    assert reply.header(b"x-gradio") == b"6"
    assert [r.getMessage() for r in caplog.records] == [
        "refused an upload from 10.0.0.1: a file over 26214400 bytes"]


async def test_gradio_s_413_without_headers_is_worded_too(door: Door, behind: Behind) -> None:
    """ASGI lets an app send no headers at all (caught: the headers read without their default)."""
    behind.status, behind.headers = 413, None
    reply = await call(door, "POST", "/gradio_api/upload", body=b"form")
    assert reply.status == 413 and reply.body.startswith(b"That file is larger than 25 MB")
    assert reply.header(b"content-type") == b"text/plain; charset=utf-8"


async def test_an_upload_gradio_takes_is_answered_as_gradio_answers(door: Door, behind: Behind) -> None:
    reply = await call(door, "POST", "/gradio_api/upload", body=b"form")
    assert (reply.status, reply.body, reply.header(b"content-type")) == (200, b"from the app", b"text/plain")


async def test_a_visitor_with_no_turn_left_uploads_nothing(door: Door, behind: Behind, guard: Guard) -> None:
    """docs/security.md: nothing is stored before the budget says yes (caught: the budget not asked, or asked
    after the size check, or for another visitor)."""
    guard.budget = Budget(Rule(1, 3600.0, "hour"))
    guard.budget.spend("addr:10.0.0.1")
    reply = await call(door, "POST", "/gradio_api/upload", body=b"form", length=UPLOAD_LIMIT + 1)
    assert reply.status == 429 and reply.detail.startswith("You have used your 1 turn per hour on this app;")
    assert behind.reached == []
    assert (await call(door, "POST", "/gradio_api/upload", body=b"form", client=THERE)).status == 200


# --- event bodies -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/gradio_api/queue/join", "/gradio_api/queue/join/", "/gradio_api/run/predict",
                                  "/gradio_api/call/chat", "/gradio_api/api/x", "/gradio_api/stream/x",
                                  "/gradio_api/reset", "/gradio_api/cancel", "/gradio_api/component_server"])
async def test_an_event_body_of_4_3_mb_by_its_length_passes_and_one_byte_more_is_refused_unread(
        door: Door, behind: Behind, path: str) -> None:
    """docs/security.md: every event's body at most 4.3 MB, refused from its ``Content-Length`` unread. Caught:
    ``>`` made ``>=``, a route of gradio's events left uncapped, the sentence's figures."""
    assert (await call(door, "POST", path, length=EVENT_LIMIT)).status == 200
    refused = await call(door, "POST", path, body=b"{}", length=EVENT_LIMIT + 1)
    assert (refused.status, refused.detail, refused.receives) == (413, f"The request is 4.3 MB; {WHY}", 0)
    refused = await call(door, "POST", path, length=int(50.06 * MB))
    assert refused.detail == f"The request is 50.1 MB; {WHY}"  # in MB of 1024 * 1024 bytes (1,000 * 1,024: 50.0)
    assert len(behind.reached) == 1


async def test_an_event_body_sent_without_its_length_is_cut_at_4_3_mb(door: Door, behind: Behind) -> None:
    """Without a ``Content-Length`` the door counts what arrives: exactly the limit reaches the app whole (the
    chunks joined, in order), one byte more is refused as soon as it arrives, nothing more read. Caught: ``>``
    made ``>=``, a chunk dropped or counted twice, the reading going on after the refusal."""
    size = EVENT_LIMIT // 3
    chunks = [b"a" * size, b"b" * size, b"c" * (EVENT_LIMIT - 2 * size)]
    assert (await call(door, "POST", "/gradio_api/run/other", chunks=chunks)).status == 200
    assert behind.bodies == [b"".join(chunks)]
    refused = await call(door, "POST", "/gradio_api/run/other", chunks=[*chunks[:2], chunks[2] + b"d", b"e"])
    assert (refused.status, refused.detail, refused.receives) == (413, f"The request is larger than 4.3 MB; {WHY}", 3)
    assert len(behind.reached) == 1


async def test_an_event_body_is_handed_on_whole_and_the_client_s_next_message_after_it(door: Door,
                                                                                       behind: Behind) -> None:
    """The door reads the body before the app does; the app must get it all the same, and then the client's own
    messages (its going away). Caught: the body replayed empty or twice, the original ``receive`` lost."""
    body = join(2)
    for path in ("/gradio_api/queue/join", "/gradio_api/run/other"):
        await call(door, "POST", path, chunks=[body[:10], body[10:]])
    assert behind.bodies == [body, body]
    assert behind.after_body == [{"type": "http.disconnect"}] * 2


async def test_a_message_without_a_body_is_an_empty_body(door: Door, behind: Behind) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await door({"type": "http", "method": "POST", "path": "/gradio_api/queue/join", "headers": [],
                "client": HERE}, receive, send)
    assert sent[0]["status"] == 200 and behind.bodies == [b""]


async def test_a_client_gone_before_its_body_is_complete_gets_nothing_and_reaches_nothing(
        door: Door, behind: Behind, caplog: pytest.LogCaptureFixture) -> None:
    """Caught: the disconnect read as the body's end (a half body handed to gradio), or as an error."""
    with caplog.at_level(logging.INFO, logger="mirror.door.middleware"):
        reply = await call(door, "POST", "/gradio_api/queue/join", chunks=[b'{"data": '], gone=True)
    assert (reply.status, reply.body) == (None, b"")
    assert behind.reached == []
    assert [r.getMessage() for r in caplog.records] == ["a request from 10.0.0.1 ended before its body was complete"]


async def test_each_refusal_is_one_log_line_naming_the_request_and_why(door: Door, guard: Guard, clock: Clock,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """docs/security.md: each refusal is one log line, never a traceback; the operator reads there which check
    refused what (caught: any refusal's reason dropped or changed)."""
    guard.heartbeats["10.0.0.3"] = 64
    guard.logins._locked["10.0.0.4"] = clock.now + 30.0
    guard.turns.joining["addr:10.0.0.5"] = 4
    guard.budget = Budget(Rule(1, 3600.0, "hour"))
    guard.budget.spend("addr:10.0.0.6")
    nine = {"data": [NINE_FILES]}
    with caplog.at_level(logging.WARNING, logger="mirror.door.middleware"):
        await call(door, "POST", "/gradio_api/queue/join", body=join(99))
        await call(door, "POST", "/gradio_api/run/predict", body=join(99))
        await call(door, "GET", "/gradio_api/info", query=b"session_hash=a.b", client=None)
        await call(door, "GET", "/gradio_api/heartbeat/a.b")
        await call(door, "GET", "/gradio_api/heartbeat/abc", client=("10.0.0.3", 1))
        await call(door, "POST", "/login", client=("10.0.0.4", 1))
        await call(door, "POST", "/gradio_api/upload", client=("10.0.0.6", 1))
        await call(door, "POST", "/gradio_api/upload", length=100 * MB)
        await call(door, "POST", "/gradio_api/run/x", length=EVENT_LIMIT + 1)
        await call(door, "POST", "/gradio_api/run/x", body=b"x" * (EVENT_LIMIT + 1))
        await call(door, "POST", "/gradio_api/queue/join", body=join(2, session="a.b"))
        await call(door, "POST", "/gradio_api/call/chat", body=json.dumps(nine).encode())
        await call(door, "POST", "/gradio_api/call/chat", body=json.dumps({"data": [HELLO]}).encode(),
                   client=("10.0.0.5", 1))
    over = "You have used your 1 turn per hour on this app;"
    lines = [r.getMessage() for r in caplog.records]
    assert lines[6].startswith(f"refused POST /gradio_api/upload from 10.0.0.6: upload over the turn budget ({over}")
    lines[6] = "(the budget's)"
    assert lines == [
        "refused POST /gradio_api/queue/join from 10.0.0.1: unknown fn_index (fn_index '99' is not an event of this "
        "app; read /config for the events it has.)",
        "refused POST /gradio_api/run/predict from 10.0.0.1: unknown fn_index (fn_index '99' is not an event of this "
        "app; read /config for the events it has.)",
        f"refused GET /gradio_api/info from unknown: session hash in the query ({BAD_SESSION})",
        f"refused GET /gradio_api/heartbeat/a.b from 10.0.0.1: session hash in the heartbeat path ({BAD_SESSION})",
        "refused GET /gradio_api/heartbeat/abc from 10.0.0.3: heartbeat cap (Too many open pages from your address; "
        "close some and reload.)",
        "refused POST /login from 10.0.0.4: login lockout (Too many failed logins from your address; wait 30 s and "
        "try again. Until then every login from it is refused, even with the right password.)",
        "(the budget's)",
        "refused POST /gradio_api/upload from 10.0.0.1: upload of 104,857,600 bytes (The upload is 100 MB, larger "
        "than the 81 MB one upload may carry (a turn's 8 files of up to 10 MB).)",
        f"refused POST /gradio_api/run/x from 10.0.0.1: body too large (The request is 4.3 MB; {WHY})",
        f"refused POST /gradio_api/run/x from 10.0.0.1: body too large (The request is larger than 4.3 MB; {WHY})",
        f"refused POST /gradio_api/queue/join from 10.0.0.1: session hash in the join ({BAD_SESSION})",
        "refused POST /gradio_api/call/chat from 10.0.0.1: chat message (9 files is more than the 8 a turn can "
        "carry.)",
        "refused POST /gradio_api/call/chat from 10.0.0.5: turns per client (You already have 4 turns waiting or "
        "running (from this login or address); wait for one to finish.)"]


# --- events this app does not have, session ids in a join, /chat messages ---------------------------------------------


@pytest.mark.parametrize(("fn_index", "shown"), [(99, "'99'"), (-1, "'-1'"), (True, "'True'"), ("0", "'0'"),
                                                 (None, "'None'"), ("x" * 30, repr("x" * 20))])
async def test_a_join_or_a_predict_naming_an_event_this_app_does_not_have_is_refused(
        door: Door, behind: Behind, fn_index: Any, shown: str) -> None:
    """docs/security.md: 404 with one sentence (gradio answered 500 and logged a traceback); ``True`` is no index
    though Python counts it 1, nor a string of digits; a long one is cut to 20 characters. Caught: the check
    dropped, ``bool`` or ``str`` let through, the cut or the sentence changed."""
    for path in ("/gradio_api/queue/join", "/gradio_api/run/predict/"):
        reply = await call(door, "POST", path, body=join(fn_index))
        assert (reply.status, reply.detail) == (
            404, f"fn_index {shown} is not an event of this app; read /config for the events it has.")
    assert behind.reached == []


async def test_an_event_of_the_app_or_a_body_the_door_cannot_judge_goes_to_gradio(door: Door, behind: Behind,
                                                                                   guard: Guard) -> None:
    """gradio answers malformed JSON and a body without ``fn_index`` itself; a ``/call/...`` names its event by
    path, not by a body's ``fn_index``. Caught: those refused by the door, the route test widened."""
    bodies = [(path, body) for path in ("/gradio_api/queue/join", "/gradio_api/run/predict")
              for body in (join(2), b'{"fn_index": 99', b'{"data": []}', b'[1, 2]', b"")]
    bodies.append(("/gradio_api/call/other", join(99)))
    for path, body in bodies:
        assert (await call(door, "POST", path, body=body)).status == 200
    assert behind.bodies == [body for _, body in bodies]
    guard.blocks = None  # before the page is attached the door knows no events
    assert (await call(door, "POST", "/gradio_api/queue/join", body=join(99))).status == 200


@pytest.mark.parametrize("session", ["a b", "", "a" * 65, 7])
async def test_a_join_with_a_bad_session_id_is_refused(door: Door, behind: Behind, session: Any) -> None:
    reply = await call(door, "POST", "/gradio_api/queue/join", body=join(2, session=session))
    assert (reply.status, reply.detail) == (400, BAD_SESSION)
    assert behind.reached == []


async def test_a_join_with_no_session_id_or_a_good_one_passes(door: Door, behind: Behind) -> None:
    """Caught: a ``null`` session id (gradio's ``/call`` joins send none) refused."""
    for session in (None, "a" * 64):
        assert (await call(door, "POST", "/gradio_api/queue/join", body=join(2, session=session))).status == 200
    body = json.dumps({"data": ["hi"], "fn_index": 2}).encode()
    assert (await call(door, "POST", "/gradio_api/queue/join", body=body)).status == 200


NINE_FILES = {"text": "hi", "files": [{"path": f"/tmp/f{i}.png"} for i in range(9)]}


@pytest.mark.parametrize(("path", "body"), [
    ("/gradio_api/queue/join", join(0, [NINE_FILES])),
    ("/gradio_api/call/chat", json.dumps({"data": [NINE_FILES]}).encode()),
    ("/gradio_api/call/v2/chat/", json.dumps({"data": [NINE_FILES]}).encode()),
    ("/gradio_api/run/chat", json.dumps({"data": [NINE_FILES, []]}).encode()),
    ("/gradio_api/api/chat", json.dumps({"data": [NINE_FILES]}).encode()),
])
async def test_a_chat_message_of_nine_files_is_refused_before_gradio_reads_any(door: Door, behind: Behind,
                                                                              path: str, body: bytes) -> None:
    """docs/security.md: a /chat message carries at most 8 files, 422 with the bridge's sentence, on the page's
    ``/chat`` event and on every ``/chat`` call. Caught: the message not checked, the wrong input checked, a
    route of ``/chat`` missed."""
    reply = await call(door, "POST", path, body=body)
    assert (reply.status, reply.detail) == (422, "9 files is more than the 8 a turn can carry.")
    assert behind.reached == []


@pytest.mark.parametrize(("path", "body"), [
    ("/gradio_api/queue/join", join(1, [NINE_FILES])),  # the page's own turn: its first input is no /chat message
    ("/gradio_api/queue/join", join(2, [NINE_FILES])),
    ("/gradio_api/queue/join", join(0, [{"text": "hi", "files": [{"path": "/tmp/a.png"}] * 8}])),
    ("/gradio_api/queue/join", join(0, [], session=None)),
    ("/gradio_api/call/chat", json.dumps({"data": {"text": "x" * 30_000}}).encode()),  # no list: gradio refuses it
    ("/gradio_api/call/v3/chat", json.dumps({"data": [NINE_FILES]}).encode()),
    ("/gradio_api/call/chat/x", json.dumps({"data": [NINE_FILES]}).encode()),
])
async def test_what_is_no_chat_message_or_within_its_limits_passes(door: Door, behind: Behind, path: str,
                                                                   body: bytes) -> None:
    """Caught: every join read as a chat message, an empty ``data`` read as a message, the ``/chat`` routes
    widened."""
    assert (await call(door, "POST", path, body=body)).status == 200
    assert behind.bodies == [body]


@pytest.mark.parametrize(("api", "chat"), [
    ("call/chat", True), ("call/chat/", True), ("call/v2/chat", True), ("run/chat", True), ("api/chat", True),
    ("chat", False), ("call/v3/chat", False), ("call/x/v2/chat", False), ("queue/chat", False),
    ("call/chatty", False), ("call/v2/chat/x", False), ("v2/chat", False), ("call/v2/x/chat", False),
])
def test_the_routes_of_chat(api: str, chat: bool) -> None:
    assert _chat_call(api) is chat


# --- turns per client -------------------------------------------------------------------------------------------


async def test_four_turns_held_on_their_way_to_the_queue_and_the_fifth_refused(door: Door, behind: Behind,
                                                                              guard: Guard) -> None:
    """docs/security.md: 4 turns per client (``--turns-per-client``); the joins the door has let through but
    gradio has not queued yet count, so concurrent joins cannot all slip through; each is given back when its
    request ends, even when the app behind fails. Caught: the cap off by one, the reservation not made or not
    released (in ``finally``), the sentence, a non-turn event counted."""
    behind.gate = asyncio.Event()
    held = [asyncio.create_task(call(door, "POST", "/gradio_api/queue/join", body=join(i % 2, session=f"s{i}")))
            for i in range(4)]
    await settle(lambda: behind.inside == 4)
    assert guard.turns.joining == {"addr:10.0.0.1": 4}
    reply = await quick(call(door, "POST", "/gradio_api/call/chat", body=json.dumps({"data": [HELLO]}).encode()))
    assert (reply.status, reply.detail) == (429, "You already have 4 turns waiting or running (from this login "
                                                 "or address); wait for one to finish.")
    assert len(behind.reached) == 4
    other = asyncio.create_task(call(door, "POST", "/gradio_api/queue/join", body=join(0), client=THERE))
    await settle(lambda: behind.inside == 5)
    behind.fail = True
    behind.gate.set()
    results = await asyncio.gather(*held, other, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert guard.turns.joining == {}
    behind.gate, behind.fail = None, False
    assert (await call(door, "POST", "/gradio_api/queue/join", body=join(0))).status == 200


async def test_turns_waiting_in_gradio_s_queue_count_against_their_client() -> None:
    """gradio's own app behind the door: four turns of one address wait in its real queue, the fifth is refused
    by the door; another address and an event that is no turn still join. Caught: gradio's queue not read, or
    read for another client."""
    demo = page()
    guard = Guard(parse_settings([]))
    guard.attach(demo, None)
    door: Any = Door(demo.app, guard)
    try:
        async def join_as(client: tuple[str, int], fn_index: int, session: str) -> httpx.Response:
            transport = httpx.ASGITransport(app=door, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://mirror") as http:
                return await http.post("/gradio_api/queue/join", content=join(fn_index, session=session),
                                       headers={"content-type": "application/json"})

        for i in range(4):
            assert (await join_as(HERE, i % 2, f"s{i}")).status_code == 200
        refused = await join_as(HERE, 0, "s4")
        assert refused.status_code == 429 and refused.json()["detail"].startswith("You already have 4 turns")
        assert (await join_as(THERE, 0, "t0")).status_code == 200
        assert (await join_as(HERE, 2, "s5")).status_code == 200
        assert guard.turns_of("addr:10.0.0.1") == 4 and guard.turns.joining == {}
    finally:
        if guard._sweeper is not None:
            guard._sweeper.cancel()


# --- event streams ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "query", "key"), [
    ("/gradio_api/queue/data", b"session_hash=abc", "abc"),
    ("/gradio_api/queue/data/", b"session_hash=abc", "abc"),
    ("/gradio_api/call/chat/ev123", b"", "ev123"),
    ("/gradio_api/call/v2/chat/ev123/", b"", "ev123"),
])
async def test_an_event_stream_counts_as_open_while_it_is_read(door: Door, behind: Behind, guard: Guard,
                                                               path: str, query: bytes, key: str) -> None:
    """A queued turn whose stream was never opened is dropped (``Guard.sweep``): the door must record the open
    stream under its session (``/queue/data``) or its event id (``/call/<api>/<event>``) while it runs, and its
    close. Caught: the stream not recorded, recorded under another key, never closed."""
    behind.gate = asyncio.Event()
    task = asyncio.create_task(call(door, "GET", path, query=query))
    await settle(lambda: behind.inside == 1)
    assert guard.streams.is_open(key)
    behind.gate.set()
    assert (await task).status == 200
    assert not guard.streams.is_open(key) and guard.streams.is_open(key, since=0.0)


@pytest.mark.parametrize(("path", "query"), [("/gradio_api/queue/data", b""), ("/gradio_api/call/chat", b""),
                                             ("/gradio_api/queue/data", b"session_hash=")])
async def test_what_names_no_stream_is_passed_on_unrecorded(door: Door, behind: Behind, guard: Guard, path: str,
                                                            query: bytes) -> None:
    """Caught: a stream recorded under an empty key or the api's name (``call/chat`` is the POST's route)."""
    assert (await call(door, "GET", path, query=query)).status == 200
    assert guard.streams._seen == {} and guard.streams._open == {}
    assert len(behind.reached) == 1
