"""The OpenAI-compatible API (issue 12), driven with the official ``openai`` package (sync and async, streamed and
not) against the real app (a subprocess) with the real stand-in Space behind it, over loopback.

What each test names is the bug it would catch: a part that never reaches the Space, an earlier turn lost, a
setting ignored, an error with the wrong status (so the SDK raises the wrong class), a stream that never ends
in ``[DONE]``, a client that leaves while the Space keeps working, a key in the log.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from app_server import start_app
from media_factory import jpeg, png, wav
from openai import AsyncOpenAI, OpenAI

from phi4_standin.launcher import configure, reset, set_fault, stats
from phi4_standin.process import ServerProcess

KEY = "sk-test-8f2a1c9d4e7b"  # what the app is started with; searched for in its log at the end
ENV_KEY = "sk-env-5d1e0c7a"
MODEL = "phi-4-multimodal"


@pytest.fixture(scope="module")
def app(standin: ServerProcess) -> Iterator[ServerProcess]:
    reset(standin.url)
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback", "--api-key", KEY,
                   "--fetch-image-urls", env={"PHI4_API_KEYS": ENV_KEY}) as server:
        yield server
    reset(standin.url)


@pytest.fixture
def client(app: ServerProcess, standin: ServerProcess) -> OpenAI:
    reset(standin.url)
    return OpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture
def aclient(app: ServerProcess, standin: ServerProcess) -> AsyncOpenAI:
    reset(standin.url)
    return AsyncOpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0, timeout=60)


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def image_part(path: Path, mime: str = "image/png") -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(path, mime)}}


def eventually(check, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {within:.0f} s: {what}")
        time.sleep(0.05)


# --- what reaches the Space ------------------------------------------------------------------------------------

def test_models_lists_the_one_model(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve("microsoft/Phi-4-multimodal-instruct").id == MODEL


def test_streamed_image_data_url_reaches_the_space(client: OpenAI, tmp_path: Path) -> None:
    """The issue's 'done when': an image_url data URL streams a reply that describes the image."""
    stream = client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"}, image_part(png(tmp_path / "a.png"))]}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith('You said: "What is in this picture?". Image 1: PNG, 37x23. Earlier turns: 0.')
    assert len([c for c in chunks if c.choices[0].delta.content]) >= 2, "the reply streams in pieces"


async def test_audio_clip_reaches_the_space(aclient: AsyncOpenAI, tmp_path: Path) -> None:
    clip = base64.b64encode(wav(tmp_path / "v.wav", 1.5).read_bytes()).decode()
    answer = await aclient.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": clip, "format": "wav"}},
        {"type": "text", "text": "Transcribe this."}]}])
    assert answer.object == "chat.completion"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content.startswith('You said: "Transcribe this.". Audio 1: 1.5 s.')


async def test_multi_turn_with_system_message_and_earlier_image(aclient: AsyncOpenAI, tmp_path: Path) -> None:
    """Earlier turns (with their image) are replayed to the Space; the system text goes before the first user
    text."""
    stream = await aclient.chat.completions.create(model=MODEL, stream=True, messages=[
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image_part(png(tmp_path / "b.png"))]},
        {"role": "assistant", "content": "A red rectangle."},
        {"role": "user", "content": "And its size?"}])
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text.startswith('You said: "And its size?". Earlier turns: 1. Seen: turn 1 image PNG 37x23; turn 1 text '
                           '"Answer briefly. What"; turn 2 text "And its size?".')


def test_settings_map_onto_the_spaces_controls(client: OpenAI) -> None:
    answer = client.chat.completions.create(model=MODEL, temperature=0.2, top_p=0.5, max_tokens=100,
                                            messages=[{"role": "user", "content": "hi"}])
    assert "Settings: top_p=0.5, top_k=50, temperature=0.2, repetition_penalty=1.05, max_new_tokens=100." \
        in answer.choices[0].message.content


def test_usage_is_answered_when_asked_and_is_an_estimate(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "hello there"}]))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    reply = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert last.usage.prompt_tokens == 3  # 11 characters, about four a token
    assert last.usage.completion_tokens == -(-len(reply) // 4)
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    no_usage = list(client.chat.completions.create(model=MODEL, stream=True,
                                                   messages=[{"role": "user", "content": "hello"}]))
    assert all(c.usage is None and c.choices for c in no_usage)


def test_gradio_load_chat_streams_through_the_api(app: ServerProcess, standin: ServerProcess, tmp_path: Path) -> None:
    """docs/openai-api.md's ``gr.load_chat``: gradio's own OpenAI client code, an image and a history in its shape."""
    import gradio as gr

    reset(standin.url)
    chat = gr.load_chat(f"{app.url}/v1/", model=MODEL, token=KEY, file_types=["image"])
    picture = str(png(tmp_path / "g.png"))
    first = list(chat.fn({"text": "What is this?", "files": [picture]}, []))
    assert first[-1].startswith('You said: "What is this?". Image 1: PNG, 37x23.')
    history = [{"role": "user", "content": [{"type": "file", "file": {"path": picture}}], "metadata": {},
                "options": []},
               {"role": "user", "content": [{"type": "text", "text": "What is this?"}], "metadata": {}, "options": []},
               {"role": "assistant", "content": [{"type": "text", "text": first[-1]}], "metadata": {}, "options": []}]
    second = list(chat.fn({"text": "And now?", "files": []}, history))
    assert len(second) >= 2, "streamed"
    assert second[-1].startswith('You said: "And now?". Earlier turns: 1. Seen: turn 1 image PNG 37x23; turn 1 text '
                                 '"What is this?"; turn 2 text "And now?".')


# --- refusals --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"n": 2}, "n"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
    ({"stop": ["\n"]}, "stop"),
    ({"seed": 0}, "seed"),
    ({"extra_body": {"num_ctx": 4096}}, "num_ctx"),
    ({"temperature": 3.5}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_what_the_space_cannot_honour_is_refused_by_name(client: OpenAI, standin: ServerProcess, extra: dict,
                                                       param: str) -> None:
    calls = stats(standin.url)["calls"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], **extra)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param
    assert param in caught.value.body["message"]
    assert stats(standin.url)["calls"] == calls, "nothing reaches the Space's GPU"


def test_a_bad_file_is_named_by_its_field(client: OpenAI, tmp_path: Path) -> None:
    """JPEG bytes in a data URL that says PNG: the bridge's sentence, naming the request field."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": "look"}, image_part(jpeg(tmp_path / "c.jpg"), "image/png")]}])
    body = caught.value.body
    assert body["param"] == "messages[0].content[1].image_url.url"
    assert body["message"] == ("messages[0].content[1].png: the name says PNG but the contents are JPEG; rename it "
                               "to match.")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not base64@@"}}]}])
    assert caught.value.body["param"] == "messages[0].content[0].image_url.url"


def test_the_spaces_own_refusal_is_a_400(client: OpenAI, tmp_path: Path) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": "two"}, image_part(png(tmp_path / "d.png")),
            image_part(png(tmp_path / "e.png", color="blue"))]}])
    assert caught.value.body["message"] == "The Space says: Please upload only one image file."
    assert caught.value.body["code"] == "space_refused"


def test_image_urls_to_private_addresses_are_not_fetched(client: OpenAI, app: ServerProcess) -> None:
    for url in (f"{app.url}/favicon.ico", "http://169.254.169.254/latest/meta-data/", "http://[::1]:1/x.png",
                "http://localhost:9/a.png"):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
                {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": url}}]}])
        assert caught.value.body["param"] == "messages[0].content[1].image_url.url", url
        assert "not a public address" in caught.value.body["message"], url


def test_last_message_must_be_the_users(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"},
                                                              {"role": "assistant", "content": "hello"}])
    assert caught.value.body["param"] == "messages"


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body == {"message": "The model 'gpt-4o' does not exist here; this server has "
                                            "'phi-4-multimodal'.", "type": "invalid_request_error",
                                 "param": "model", "code": "model_not_found"}


def test_keys(app: ServerProcess) -> None:
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{app.url}/v1", api_key="sk-wrong", max_retries=0).models.list()
    answer = httpx.get(f"{app.url}/v1/models")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
    assert [m.id for m in OpenAI(base_url=f"{app.url}/v1", api_key=ENV_KEY).models.list()] == [MODEL]


# --- the Space's failures --------------------------------------------------------------------------------------

def user_jwt(standin: ServerProcess) -> str:
    """A signed-in ZeroGPU token from the stand-in's Hub, so its quota message names a wait."""
    request = urllib.request.Request(f"{standin.url}/api/spaces/microsoft/phi-4-multimodal/jwt?expiration=x",
                                     headers={"authorization": "Bearer hf_testuser0001"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())["token"]


def test_quota_is_a_rate_limit_error_with_its_wait(app: ServerProcess, standin: ServerProcess) -> None:
    client = OpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0,
                    default_headers={"x-ip-token": user_jwt(standin)})
    set_fault(standin.url, "quota", times=1)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.headers["retry-after"] == "600"  # the stand-in's quota window: "retry in 0:10:00"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.body["code"] == "zerogpu_quota_exceeded"
    # a signed-in caller is told to wait or upgrade, with the Space's link; never to sign in
    assert caught.value.body["message"].startswith(
        "Your free ZeroGPU quota is used up. Try again in about 10 minutes, or upgrade to Hugging Face PRO for a "
        "larger quota (https://huggingface.co/subscribe/pro?from=ZeroGPU). (You have exceeded")
    assert "HF_TOKEN" not in caught.value.body["message"]

    configure(standin.url, quota_window=90)
    set_fault(standin.url, "quota", times=1)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.headers["retry-after"] == "90"
    assert "x-should-retry" not in caught.value.response.headers, "a short wait: the SDK may retry by itself"
    reset(standin.url)


def test_anonymous_quota_names_no_wait_and_says_do_not_retry(client: OpenAI, standin: ServerProcess) -> None:
    set_fault(standin.url, "quota", times=1)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "retry-after" not in caught.value.response.headers
    assert caught.value.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(("fault", "code"), [("no_gpu", "gpu_busy"), ("worker_error", "gpu_worker_error"),
                                             ("sleeping", "space_sleeping")])
def test_space_trouble_is_503(client: OpenAI, standin: ServerProcess, fault: str, code: str) -> None:
    set_fault(standin.url, fault)
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": "hi"}])
    finally:
        reset(standin.url)
    assert caught.value.status_code == 503
    assert caught.value.body["code"] == code


def test_a_failure_mid_stream_is_an_error_event_then_done(app: ServerProcess, standin: ServerProcess) -> None:
    configure(standin.url, pace_ms=60, chunks=12, drop_after=4)
    set_fault(standin.url, "drop_stream", times=1)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    lines = []
    with httpx.stream("POST", f"{app.url}/v1/chat/completions", json=body, timeout=60,
                      headers={"authorization": f"Bearer {KEY}"}) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
    reset(standin.url)
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][len("data: "):])["error"]
    assert error["message"] == "The Space closed the stream before the reply was complete; retry."
    assert error["type"] == "service_unavailable_error"
    assert any(json.loads(line[6:]).get("choices", [{}])[0].get("delta", {}).get("content") for line in lines[1:-2])


def test_the_sdk_raises_on_a_mid_stream_error(client: OpenAI, standin: ServerProcess) -> None:
    configure(standin.url, pace_ms=60, chunks=12, drop_after=4)
    set_fault(standin.url, "drop_stream", times=1)
    seen = ""
    with pytest.raises(openai.APIError, match="closed the stream"):
        for c in client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user",
                                                                                    "content": "hi"}]):
            seen += c.choices[0].delta.content or ""
    assert seen.startswith('You said: "hi"')
    reset(standin.url)


def test_a_turn_queued_on_the_space_streams_pings_until_its_text(app: ServerProcess, standin: ServerProcess) -> None:
    """The stand-in has two GPUs: with both busy, a third turn waits in the Space's queue past the 5 s the API
    holds back its answer, so the stream opens and carries ``: ping`` comments until the text comes."""
    configure(standin.url, pace_ms=150, chunks=60)
    client = OpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0)
    busy = [client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": f"b{n}"}])
            for n in range(2)]
    try:
        for stream in busy:
            next(c for c in stream if c.choices and c.choices[0].delta.content)
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "third"}]}
        with httpx.stream("POST", f"{app.url}/v1/chat/completions", json=body, timeout=60,
                          headers={"authorization": f"Bearer {KEY}"}) as resp:
            assert resp.status_code == 200
            lines = []
            for line in resp.iter_lines():
                lines.append(line)
                if line.startswith("data: ") and '"content": "You said' in line:
                    break
    finally:
        for stream in busy:
            stream.close()
        reset(standin.url)
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data: "))
    assert '"role": "assistant"' in lines[first_data]
    assert ": ping" in lines[first_data:], "pings while queued"


# --- leaving early, and secrets ---------------------------------------------------------------------------------

def test_a_client_that_leaves_mid_stream_cancels_the_space_job(app: ServerProcess, standin: ServerProcess) -> None:
    configure(standin.url, pace_ms=150, chunks=60)  # a 9 s reply: long enough to leave in the middle
    before = stats(standin.url)["cancelled"]
    stream = OpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0).chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "a long story"}])
    for c in stream:
        if c.choices[0].delta.content:
            break
    stream.close()
    eventually(lambda: stats(standin.url)["cancelled"] == before + 1, "the Space job is cancelled")
    eventually(lambda: stats(standin.url)["active"] == 0, "nothing runs on the Space")
    reset(standin.url)


def test_a_client_that_gives_up_on_a_whole_answer_cancels_the_space_job(app: ServerProcess,
                                                                         standin: ServerProcess) -> None:
    configure(standin.url, pace_ms=150, chunks=60)
    before = stats(standin.url)["cancelled"]
    # openai 3.x uses httpx2: a number, not an httpx.Timeout
    client = OpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0, timeout=2.0)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a long story"}])
    eventually(lambda: stats(standin.url)["cancelled"] == before + 1, "the Space job is cancelled")
    reset(standin.url)


def test_no_key_in_the_log_or_any_answer(app: ServerProcess, client: OpenAI, standin: ServerProcess) -> None:
    """Stands alone: its own turns, with each key and a signed-in ZeroGPU token, one of them failing, then the log
    (the whole of it, so anything an earlier test logged is searched too)."""
    logged = len(app.log_text())
    wrong = "sk-wrong-1234567890abcdef"
    with pytest.raises(openai.AuthenticationError) as caught:
        OpenAI(base_url=f"{app.url}/v1", api_key=wrong, max_retries=0).models.list()
    assert wrong not in json.dumps(caught.value.body)
    signed_in = OpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0,
                       default_headers={"x-ip-token": user_jwt(standin)})
    set_fault(standin.url, "quota", times=1)
    with pytest.raises(openai.RateLimitError):
        signed_in.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    env_client = OpenAI(base_url=f"{app.url}/v1", api_key=ENV_KEY, max_retries=0, timeout=60)
    assert env_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "ok"}]).choices
    log = app.log_text()
    assert "API turn of key:1 failed: RateLimit" in log[logged:], "the failure was logged, by key number"
    for secret in (KEY, ENV_KEY, wrong, "hf_testuser0001"):
        assert secret not in log
