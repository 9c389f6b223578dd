"""``python -m phi4_bridge serve`` (the API without the app) and the app's API behind a login, as real servers,
with the official ``openai`` package as the client; and the guarded image-URL fetch against real local servers."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import openai
import pytest
from aiohttp import web
from app_server import start_app
from openai import OpenAI

from phi4_bridge.openai_api.fetch import FetchRefused, fetch
from phi4_standin.launcher import configure, reset, set_fault
from phi4_standin.process import ServerProcess, free_port

KEY = "sk-serve-3b9f0d2c"
MODEL = "phi-4-multimodal"


@pytest.fixture(scope="module")
def server(standin: ServerProcess) -> Iterator[ServerProcess]:
    """The API alone, with short timeouts (a silent Space is reported after 1.5 s) and one turn per key."""
    port = free_port()
    env = {"PHI4_API_KEYS": KEY, "PHI4_TIMEOUT_FIRST_EVENT": "1.5", "PHI4_TIMEOUT_IDLE": "1.5"}
    proc = ServerProcess("serve", [sys.executable, "-m", "phi4_bridge", "serve", "--port", str(port), "--space-url",
                                   standin.url, "--hub-url", standin.hub_url, "--turns-per-client", "1"], port, env=env)
    with proc:
        proc.wait_ready("/v1/models")
        yield proc
    reset(standin.url)


@pytest.fixture
def client(server: ServerProcess, standin: ServerProcess) -> OpenAI:
    reset(standin.url)
    return OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)


def test_serve_answers_like_the_app(client: OpenAI) -> None:
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello there"}])
    assert answer.choices[0].message.content.startswith('You said: "hello there". Earlier turns: 0.')


def test_a_silent_space_is_504(client: OpenAI, standin: ServerProcess) -> None:
    configure(standin.url, slow_start_s=4)
    set_fault(standin.url, "slow_start", times=1)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "space_timeout"
    reset(standin.url)


def test_image_urls_are_refused_unless_turned_on(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert caught.value.body["code"] == "image_url_not_allowed"
    assert caught.value.body["param"] == "messages[0].content[0].image_url.url"


def test_a_key_has_its_turns_per_client(client: OpenAI, standin: ServerProcess) -> None:
    configure(standin.url, pace_ms=150, chunks=40)
    first = client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": "one"}])
    try:
        next(c for c in first if c.choices and c.choices[0].delta.content)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "two"}])
        assert caught.value.body["code"] == "too_many_turns"
        assert caught.value.response.headers["x-should-retry"] == "false"
    finally:
        first.close()
        reset(standin.url)


def test_behind_a_login_the_api_needs_a_key(standin: ServerProcess) -> None:
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback",
                   "--auth", "ann:pw-1234") as app:
        with pytest.raises(openai.AuthenticationError) as caught:
            OpenAI(base_url=f"{app.url}/v1", api_key="anything", max_retries=0).models.list()
        assert "--api-key" in caught.value.body["message"]


# --- the guarded fetch of an image URL ------------------------------------------------------------------------

@pytest.fixture
async def images() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (all interfaces: 127.0.0.2 reaches it too) with an image and redirects."""
    async def image(_: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\nfake", content_type="image/png")

    async def to_other(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{request.url.port}/img.png")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000, content_type="image/png")

    app = web.Application()
    app.add_routes([web.get("/img.png", image), web.get("/away", to_other), web.get("/big.png", big)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - loopback test server
    yield f"http://localhost:{port}"
    await runner.cleanup()


async def test_fetch_follows_only_checked_addresses(images: str) -> None:
    only_first = {"127.0.0.1"}.__contains__  # as if 127.0.0.1 were the public Internet and nothing else were
    body, mime = await fetch(f"{images}/img.png", 1000, allowed=lambda a: only_first(a) or a == "::1")
    assert (body, mime) == (b"\x89PNG\r\n\x1a\nfake", "image/png")
    with pytest.raises(FetchRefused, match="127.0.0.2 is not a public address"):
        await fetch(f"{images}/away", 1000, allowed=lambda a: only_first(a) or a == "::1")
    with pytest.raises(FetchRefused, match="larger than 1,000 bytes|5,000 bytes"):
        await fetch(f"{images}/big.png", 1000, allowed=lambda a: only_first(a) or a == "::1")
    with pytest.raises(FetchRefused, match="not a public address"):
        await fetch(f"{images}/img.png", 1000)  # the real rule: loopback is never fetched
