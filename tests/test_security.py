"""The app behind ``--auth``: nothing answers without the login, no token ever leaves the app, no file outside
Gradio's own is served, and what one visitor uploaded is checked against another visitor.

Set-up: stand-in <- back proxy (records, to learn the ZeroGPU JWTs the stand-in issued) <- app (with a random
``hf_`` token as the host's HF token, via ``HF_TOKEN_PATH`` since ``tests/app_server.start_app`` drops
``HF_TOKEN`` on purpose) <- front proxy (records every byte the visitors get) <- gradio_client, aiohttp and one
headless Chromium. Every response byte, the browser's decoded bodies and the app's log are then searched for
the token values and for anything token-shaped.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from app_server import ROOT, start_app
from browser import chromium
from gradio_client import Client, handle_file
from media_factory import png
from tcp_proxy import TcpProxy

from phi4_standin.launcher import stats
from phi4_standin.process import ServerProcess

USERS = {"alice": "wonder-" + secrets.token_hex(4), "bob": "builder-" + secrets.token_hex(4)}
HF_TOKEN = "hf_" + secrets.token_hex(16)
JWT = re.compile(rb"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]+")
HEADERS = {"Accept-Encoding": "identity"}  # so the recorded bytes are searchable as they are


@pytest.fixture(scope="module")
def rig(standin: ServerProcess, tmp_path_factory) -> Iterator[tuple[ServerProcess, TcpProxy, TcpProxy, Path]]:
    folder = tmp_path_factory.mktemp("secrets")
    token_file = folder / "hf_token"
    token_file.write_text(HF_TOKEN)
    with TcpProxy(standin.port, capture=True) as back:
        args = ["--space-url", back.url, "--hub-url", back.url, "--no-fallback"]
        for user, password in USERS.items():
            args += ["--auth", f"{user}:{password}"]
        # a new interpreter: its /proc/<pid>/cmdline carries the logins, which the leak check must see (a forked
        # child's is the fork server's)
        with start_app(*args, env={"HF_TOKEN_PATH": str(token_file)}, new_interpreter=True) as app:
            app_port = app.port
            with TcpProxy(app_port, capture=True) as front:
                yield app, front, back, token_file


def issued_jwts(back: TcpProxy) -> set[bytes]:
    return {m.group(0) for direction, data in back.captured if direction == "response" for m in JWT.finditer(data)}


def browser_like() -> aiohttp.ClientSession:
    """A session that keeps cookies from 127.0.0.1 (aiohttp's default jar drops cookies of IP hosts)."""
    return aiohttp.ClientSession(headers=HEADERS, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(session: aiohttp.ClientSession, base: str, user: str) -> None:
    async with session.post(f"{base}/login", data={"username": user, "password": USERS[user]}) as resp:
        assert resp.status == 200, await resp.text()


def gradio_routes() -> list[tuple[str, str]]:
    """Every (method, path) a gradio Blocks app of this gradio version serves, path parameters filled in."""
    import gradio as gr
    from gradio.routes import App

    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button().click(lambda x: x, box, box, api_name="chat")
    out: list[tuple[str, str]] = []

    def walk(routes, prefix: str = "") -> None:
        for route in routes:
            if hasattr(route, "path"):
                for method in sorted(getattr(route, "methods", None) or ["GET"]):
                    out.append((method, prefix + route.path))
            elif hasattr(route, "original_router"):
                context = getattr(route, "include_context", None)
                sub = context.get("prefix", "") if isinstance(context, dict) else getattr(context, "prefix", "")
                walk(route.original_router.routes, prefix + (sub or ""))

    walk(App.create_app(demo).routes)
    fill = {"api_name": "chat", "event_id": "abc", "session_hash": "abc", "path_or_url": str(ROOT / "app.py"),
            "path": "x", "url_path": "http://127.0.0.1:1/x", "key": "x", "size": "48", "id": "1",
            "environment": "x", "type": "x", "file_name": "x", "run": "1", "component_id": "1", "segment_id": "1",
            "ext": "ts", "endpoint": "chat", "record_id": "1", "asset_id": "1"}
    filled = []
    for method, path in out:
        for name, value in fill.items():
            path = re.sub(r"\{" + name + r"(:path)?\}", value, path)
        if method != "HEAD" and "{" not in path:
            filled.append((method, path))
    return sorted(set(filled))


# Routes that answer without a login on any gradio app with auth: the login page shell, its static assets and
# the login/logout routes themselves. They must still carry nothing of the app or its secrets.
# Gradio 6.31 also answers these without a login (seen, not chosen by the app): /openapi.json (FastAPI's route
# list, no app data), /gradio_api/runs (the page shell), /gradio_api/startup-events ("false"), and
# /gradio_api/heartbeat/{session} (an endless "data: ALIVE" stream anyone can hold open).
PUBLIC = re.compile(r"^/(|login/?|logout|favicon\.ico|robots\.txt|manifest\.json|theme\.css|gradio_api/theme\.css|"
                    r"pwa_icon(/\d+)?|static/.*|assets/.*|svelte/.*|gradio_api/deep_link|gradio_api/login_check/?|"
                    r"gradio_api/app_id/?|gradio_api/user/?|gradio_api/token/?|openapi\.json|gradio_api/runs/?|"
                    r"gradio_api/startup-events|gradio_api/heartbeat/abc)$")


async def test_nothing_answers_without_the_login(rig):
    app, front, back, _ = rig
    routes = gradio_routes()
    assert ("POST", "/gradio_api/queue/join") in routes and ("GET", "/gradio_api/file=" + str(ROOT / "app.py")) \
        in routes, "the route list looks wrong"
    opened = []
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        for method, path in routes:
            kwargs = {"json": {"data": [], "fn_index": 0, "session_hash": "abc"}} if method == "POST" else {}
            async with session.request(method, app.url + path, allow_redirects=False, **kwargs) as resp:
                try:
                    body = await asyncio.wait_for(resp.content.read(65536), 2)
                except TimeoutError:
                    body = b"<still streaming>"
                if resp.status < 300 or resp.status in (307, 308):
                    opened.append((method, path, resp.status, body[:200]))
    leaks = [o for o in opened if not PUBLIC.match(o[1])]
    assert not leaks, f"answered without a login: {leaks}"
    for _method, path, _status, body in opened:
        assert b'"dependencies"' not in body and b'"api_name"' not in body, (path, body)
        assert HF_TOKEN.encode() not in body and not JWT.search(body), path
    async with aiohttp.ClientSession() as session, session.get(app.url + "/") as resp:
        page = await resp.text()
    assert '"dependencies":[]' in page and '"components":[]' in page, "the login page embeds the app's layout"


@pytest.mark.xfail(strict=True, reason=(
    "finding (gradio 6.31, not the app's code): the unauthenticated login page embeds window.gradio_api_info, "
    "the named endpoints of the app (/chat, /qa_run, ...) with their parameter schemas"))
async def test_login_page_does_not_describe_the_api(rig):
    app = rig[0]
    async with aiohttp.ClientSession() as session, session.get(app.url + "/") as resp:
        page = await resp.text()
    assert "named_endpoints" not in page and '"/chat"' not in page


async def test_a_session_leaks_no_token(rig, tmp_path):
    app, front, back, token_file = rig
    image = png(tmp_path / "cat.png")
    client = Client(front.url, auth=("alice", USERS["alice"]), verbose=False, headers=HEADERS)
    reply = client.predict({"text": "hello", "files": [handle_file(str(image))]}, api_name="/chat")
    assert 'You said: "hello"' in reply and "PNG, 37x23" in reply
    async with browser_like() as session:
        await login(session, front.url, "bob")
        for path in ("/", "/config", "/gradio_api/info", "/gradio_api/info?all_endpoints=true",
                     "/gradio_api/openapi.json", "/gradio_api/token", "/gradio_api/user", "/gradio_api/app_id",
                     "/gradio_api/queue/status", "/gradio_api/startup-events", "/monitoring"):
            async with session.get(front.url + path) as resp:
                await resp.read()
        async with session.post(front.url + "/gradio_api/call/chat",
                                json={"data": [{"text": "raw call", "files": []}, None]}) as resp:
            event_id = (await resp.json())["event_id"]
        async with session.get(f"{front.url}/gradio_api/call/chat/{event_id}") as resp:
            assert "raw call" in await resp.text()
    jwts = issued_jwts(back)
    assert jwts, "the stand-in issued no token the recorder saw (the rig is broken)"
    assert stats(app_standin_url(back))["jwt_fetches"] >= 1, "the app did not use the HF token"
    everything = b"".join(data for direction, data in front.captured if direction == "response")
    # a compressed body would hide a token from the search below (HEADERS asks for none)
    assert b"content-encoding: gzip" not in everything.lower(), "a response was compressed: the search is blind"
    assert HF_TOKEN.encode() not in everything, "the HF token reached a visitor"
    for jwt in jwts:
        assert jwt not in everything, "a ZeroGPU token reached a visitor"
    assert not JWT.search(everything), "something token-shaped reached a visitor"
    log = app.log_text()
    assert HF_TOKEN not in log and not any(j.decode() in log for j in jwts), "a token is in the app's log"
    assert not JWT.search(log.encode()) and "hf_" not in log


async def test_gradios_traffic_dashboard_is_off(rig):
    """gradio serves a monitoring dashboard and a summary of every endpoint's traffic by default (its key printed
    to the console by anyone's GET /monitoring); the app turns it off: the host's Usage tab says who used what."""
    front = rig[1]
    async with browser_like() as session:
        await login(session, front.url, "bob")
        async with session.get(front.url + "/monitoring/summary") as resp:
            assert resp.status == 403, (resp.status, (await resp.text())[:200])
            assert "not enabled" in (await resp.text())


def app_standin_url(back: TcpProxy) -> str:
    return f"http://{back.upstream[0]}:{back.upstream[1]}"


@pytest.mark.browser
def test_a_browser_session_sees_no_token(rig):
    app, front, back, _ = rig
    bodies: list[bytes] = []
    with chromium() as browser:
        try:
            page = browser.new_page()

            def keep(response) -> None:
                try:
                    bodies.append(response.url.encode() + b"\n" + json.dumps(response.headers).encode() + b"\n"
                                  + response.body())
                except Exception:  # noqa: BLE001 - streams and redirects have no body to read
                    bodies.append(response.url.encode() + b"\n" + json.dumps(response.headers).encode())

            page.on("response", keep)
            page.goto(app.url)
            page.wait_for_selector("input[type=password]", timeout=20_000)
            page.locator("input[type=text]").first.fill("alice")
            page.locator("input[type=password]").fill(USERS["alice"])
            page.locator("input[type=password]").press("Enter")
            page.wait_for_selector("#prompt textarea", timeout=20_000)
            page.locator("#prompt textarea").fill("browser hello")
            page.locator("#prompt textarea").press("Enter")
            page.wait_for_function("document.body.innerText.includes('You said: \"browser hello\"')",
                                   timeout=30_000)
            bodies.append(page.content().encode())
            cookies = json.dumps(page.context.cookies()).encode()
        finally:
            browser.close()
    everything = b"\n".join(bodies) + cookies
    assert len(bodies) > 5
    assert HF_TOKEN.encode() not in everything
    for jwt in issued_jwts(back):
        assert jwt not in everything
    assert not JWT.search(everything), "something token-shaped reached the browser"


async def test_no_file_outside_gradio_is_served(rig):
    app, front, back, token_file = rig
    targets = ["/etc/passwd", "../../../../etc/passwd", "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
               str(ROOT / "app.py"), "app.py", "./app.py", "mirror/settings.py", str(ROOT / "README.md"),
               str(ROOT / ".git" / "config"), str(token_file), "/proc/self/environ", "/proc/self/cmdline",
               "//etc/passwd", "/tmp/../etc/passwd"]
    async with browser_like() as session:
        await login(session, app.url, "alice")
        for target in targets:
            for route in ("/gradio_api/file=", "/gradio_api/file/", "/file=", "/static/", "/assets/",
                          "/svelte/", "/gradio_api/proxy="):
                async with session.get(app.url + route + target) as resp:
                    body = await resp.read()
                # whatever the status, no byte of a file outside gradio's: the marks below are in those files
                assert not server_file_in(body), f"{route}{target} answered {resp.status} with a server file"


def server_file_in(body: bytes) -> bool:
    """Whether ``body`` holds something of the files the test asks for: /etc/passwd, the app's sources, the git
    config, the token file, the process's environment and its command line (which carries the logins)."""
    marks = [b"root:", b"HF_TOKEN", HF_TOKEN.encode(), b"def main", b"[core]", b"import ",
             b"--auth\0", *(password.encode() for password in USERS.values())]
    return any(mark in body for mark in marks)


def test_the_leak_check_sees_the_apps_own_command_line_and_files(rig):
    """The check above is only as good as its marks: each file it asks for, as this app would serve it, is seen."""
    app = rig[0]
    for leaked in (Path(f"/proc/{app.proc.pid}/cmdline").read_bytes(), Path("/etc/passwd").read_bytes(),
                   (ROOT / "app.py").read_bytes(), (ROOT / "mirror" / "settings.py").read_bytes(),
                   (ROOT / "README.md").read_bytes(), rig[3].read_bytes()):
        assert server_file_in(leaked), leaked[:80]


async def upload_as_two_visitors(app: ServerProcess, tmp_path: Path) -> dict[str, object]:
    image = png(tmp_path / "private.png", 41, 19).read_bytes()
    seen: dict[str, object] = {"image": image}
    async with browser_like() as alice, browser_like() as bob, browser_like() as anon:
        await login(alice, app.url, "alice")
        await login(bob, app.url, "bob")
        for name, session in (("alice", alice), ("bob", bob)):
            form = aiohttp.FormData()
            form.add_field("files", image, filename="private.png", content_type="image/png")
            async with session.post(f"{app.url}/gradio_api/upload?upload_id={name}1", data=form) as resp:
                assert resp.status == 200
                [seen[name]] = await resp.json()
        url = f"{app.url}/gradio_api/file={seen['alice']}"
        for name, session in (("alice", alice), ("bob", bob), ("anon", anon)):
            async with session.get(url) as resp:
                seen[name + "_status"], seen[name + "_body"] = resp.status, await resp.read()
    return seen


async def test_uploads_are_served_only_with_a_login(rig, tmp_path):
    seen = await upload_as_two_visitors(rig[0], tmp_path)
    assert seen["alice_status"] == 200 and seen["alice_body"] == seen["image"]
    assert seen["anon_status"] in (401, 403), "an upload is served without a login"


@pytest.mark.xfail(strict=True, reason=(
    "finding (gradio 6.31): uploads live in one shared cache and /gradio_api/file= serves any of them to any "
    "logged-in session that knows the path; there is no per-session ownership check"))
async def test_another_visitor_cannot_fetch_an_upload(rig, tmp_path):
    seen = await upload_as_two_visitors(rig[0], tmp_path)
    assert seen["bob_status"] in (401, 403, 404), "bob fetched alice's upload by its path"


@pytest.mark.xfail(strict=True, reason=(
    "finding (gradio 6.31): an upload's path is <cache>/<64-hex hash of the bytes>/<name>, so anyone who has the "
    "same file can compute where another visitor's copy is (and, with the previous finding, fetch it)"))
async def test_upload_paths_are_not_derived_from_the_content(rig, tmp_path):
    seen = await upload_as_two_visitors(rig[0], tmp_path)
    assert seen["alice"] != seen["bob"]


async def test_the_api_refuses_server_paths_in_files(rig):
    """A visitor must not make the app read and send its own files to the Space through /chat. Sent raw, as a
    hostile caller would: gradio_client would upload a local path itself first, so the app would never see it."""
    app, front, back, _ = rig
    before = stats(app_standin_url(back))["uploads"]
    async with browser_like() as session:
        await login(session, app.url, "alice")
        for path in ("/etc/passwd", str(ROOT / "mirror" / "examples"), str(ROOT / "app.py")):
            files = [{"path": path, "meta": {"_type": "gradio.FileData"}}]
            async with session.post(app.url + "/gradio_api/call/chat",
                                    json={"data": [{"text": "read this", "files": files}, None]}) as resp:
                assert resp.status == 200, await resp.text()
                event_id = (await resp.json())["event_id"]
            async with session.get(f"{app.url}/gradio_api/call/chat/{event_id}") as resp:
                stream = await resp.text()
            assert stream.startswith("event: error"), f"{path}: {stream[:300]}"
            assert "root:" not in stream and "import " not in stream and "You said" not in stream, stream[:300]
    assert stats(app_standin_url(back))["uploads"] == before
