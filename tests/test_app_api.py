"""gradio_client drives the real app (a subprocess) with the real stand-in Space behind it, over loopback."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import start_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from media_factory import png as png_file
from media_factory import wav as make_wav

from phi4_standin.launcher import configure, reset, set_fault, stats
from phi4_standin.process import ServerProcess, free_port


@pytest.fixture(scope="module")
def app(standin: ServerProcess) -> Iterator[ServerProcess]:
    reset(standin.url)
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback") as server:
        yield server
    reset(standin.url)


@pytest.fixture
def client(app: ServerProcess, standin: ServerProcess) -> Client:
    reset(standin.url)
    return Client(app.url, verbose=False)




def chat(client: Client, text: str, files: list[Path] = ()) -> str:
    return client.predict({"text": text, "files": [handle_file(str(f)) for f in files]}, api_name="/chat")


def test_text_reply_streams(client: Client, standin: ServerProcess) -> None:
    # 8 chunks 60 ms apart: a reply of about half a second, several of /chat's 50 ms frames (the session's
    # stand-in sends its 8 chunks within 40 ms, which a frame rate of 20 a second rightly shows in two updates)
    configure(standin.url, pace_ms=60)
    try:
        job = client.submit({"text": "hello there", "files": []}, api_name="/chat")
        reply = job.result(timeout=60)
    finally:
        reset(standin.url)
    assert 'You said: "hello there"' in reply
    outputs = job.outputs()
    assert len(outputs) > 2, "the reply should arrive in several streamed updates"
    assert all(reply.startswith(o) for o in outputs), "each update is the reply so far"


def test_image_and_audio(client: Client, tmp_path: Path) -> None:
    reply = chat(client, "what is this?", [png_file(tmp_path / "pic.png")])
    assert "PNG, 37x23" in reply
    reply = chat(client, "and this?", [make_wav(tmp_path / "voice.wav", 1.5)])
    assert "Audio 1: 1.5 s" in reply


def test_turns_accumulate_per_client_and_visitors_are_separate(client: Client, app: ServerProcess) -> None:
    assert "Earlier turns: 0" in chat(client, "one")
    assert "Earlier turns: 1" in chat(client, "two")
    assert "Earlier turns: 2" in chat(client, "three")
    other = Client(app.url, verbose=False)  # another visitor: its own conversation
    assert "Earlier turns: 0" in chat(other, "hello from elsewhere")


def seen_by_the_space(url: str) -> list[dict]:
    """What each session's last bot step on the stand-in received (``GET /standin/seen``, every session)."""
    with urllib.request.urlopen(url + "/standin/seen", timeout=10) as resp:  # noqa: S310 - loopback
        return list(json.load(resp).values())


def test_explicit_history_is_used_and_server_paths_are_refused(client: Client, standin: ServerProcess,
                                                               tmp_path: Path) -> None:
    """A file path in a caller's history that the app did not receive as an upload (here a file of the server
    machine) is never read nor sent: the Space gets no upload and no file in the history it sees."""
    secret = tmp_path / "server-only.png"
    png_file(secret)
    history = [
        {"role": "user", "content": [{"type": "text", "text": "earlier"},
                                     {"type": "file", "file": {"path": str(secret)}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "noted"}]},
    ]
    reply = client.predict({"text": "now", "files": []}, history, api_name="/chat")
    assert "Earlier turns: 1" in reply
    assert stats(standin.url)["uploads"] == 0, "the server's file was uploaded to the Space"
    [record] = seen_by_the_space(standin.url)
    assert record["earlier_turns"] == 1 and record["prompt"] == "now"
    assert [item for item in record["seen"] if item["kind"] != "text"] == [], record["seen"]
    assert record["files"] == [] and str(secret) not in json.dumps(record)
    assert "PNG" not in reply, "the Space described the server's file"
    # the same file sent as the caller's own upload does reach the Space: the counter and the record can tell
    reply = chat(client, "and now?", [secret])
    assert "PNG, 37x23" in reply and stats(standin.url)["uploads"] == 1


def test_stop_cancels_the_job_on_the_space(client: Client, standin: ServerProcess) -> None:
    configure(standin.url, pace_ms=250, chunks=40)
    try:
        before = stats(standin.url)["cancelled"]
        job = client.submit({"text": "a long answer please", "files": []}, api_name="/chat")
        deadline = time.monotonic() + 30
        while not job.outputs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.outputs(), "the reply should have started"
        job.cancel()
        deadline = time.monotonic() + 15
        while stats(standin.url)["cancelled"] <= before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stats(standin.url)["cancelled"] > before
        assert stats(standin.url)["active"] == 0
    finally:
        reset(standin.url)


def test_fault_is_a_clear_message_and_retry_works(client: Client, standin: ServerProcess, app: ServerProcess) -> None:
    assert "Earlier turns: 0" in chat(client, "first")
    logged = len(app.log_text())
    set_fault(standin.url, "quota", times=1)
    with pytest.raises(AppError) as info:
        chat(client, "second")
    message = str(info.value)
    # docs/failures.md's table: "Your ZeroGPU quota is used up. Try again in about N minutes (or: Wait a while) or sign
    # in with a Hugging Face token (HF_TOKEN) for a larger quota. (…)", in one line, without a token
    assert re.fullmatch(r"Your ZeroGPU quota is used up\. (Try again in about \d+ minutes?|Wait a while) or sign in "
                        r"with a Hugging Face token \(HF_TOKEN\) for a larger quota\. \(.+\)", message), message
    assert "eyJ" not in message and "hf_" not in message
    # the conversation is intact: the retry counts only the turn that was answered
    assert "Earlier turns: 1" in chat(client, "second")
    log = app.log_text()[logged:]  # logged for whoever runs the app (with a traceback), never with a token
    assert f"a turn failed: QuotaExceeded: {message}" in log and "eyJ" not in log


def test_unreachable_space_falls_back_to_the_standin_under_a_banner() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the "real" Space is unreachable
    with start_app("--space-url", dead, "--hub-url", dead, "--standin-pace-ms", "5", "--standin-chunks", "6",
                   timeout=120) as app:
        assert "starting the offline stand-in" in app.log_text()
        with urllib.request.urlopen(app.url + "/config", timeout=10) as resp:  # noqa: S310 - loopback
            config = resp.read().decode()
        assert "answers do NOT come from Phi-4" in config
        reply = Client(app.url, verbose=False).predict({"text": "are you real?", "files": []}, api_name="/chat")
        assert reply.startswith('You said: "are you real?"')


def test_without_mcp_there_is_no_mcp_address_and_no_tool_endpoint(app: ServerProcess) -> None:
    """``--mcp`` is off by default: gradio mounts no MCP server and the tools are no API endpoints either."""
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(app.url + "/gradio_api/mcp/schema", timeout=10)  # noqa: S310 - loopback
    assert caught.value.code == 404
    with urllib.request.urlopen(app.url + "/gradio_api/info", timeout=10) as resp:  # noqa: S310 - loopback
        endpoints = json.loads(resp.read())["named_endpoints"]
    assert "/chat" in endpoints and not {"/ask_phi4", "/describe_image", "/transcribe_audio"} & set(endpoints)
