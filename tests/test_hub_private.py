"""A private Space (a private duplicate of the user's own) works with the user's HF token, sent to it as
``Authorization: Bearer`` ONLY when the Hub says the Space is private and the token can see it, and only to the origin
the Hub gives for it; a public Space never receives the header. Real servers: the Hub stand-in and a second stand-in
serving ``DUPLICATE``, whose own routes refuse callers without the allowed Bearer token when it is private
(``set_own(private=True, allow=[...])``); ``space_authorization`` in its ``/standin/stats`` counts the requests that
carried an Authorization header (never the value).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import urllib.request

import pytest
from forkserver import environment_without, run_command
from hub_world import DUPLICATE, OFFICIAL, World

from phi4_bridge import Phi4Bridge, SpaceUnavailable, spaces
from phi4_bridge.config import BridgeConfig
from phi4_standin.launcher import stats

MINE = "hf_mineAllowed0000000001"
STRANGER = "hf_notAllowed00000000002"
PRIVATE_401 = (f"The Space answered HTTP 401: {DUPLICATE} is private or does not exist (the Hub answered HTTP 401 to "
               "a request without a token). If it is your own private Space, set HF_TOKEN (or run "
               "`huggingface-cli login`).")
PRIVATE_404 = (f"The Space answered HTTP 401: {DUPLICATE} was not found on the Hub (HTTP 404). Check the Space's id; "
               "a private Space is found only with a token of an account that can see it (HF_TOKEN).")



@pytest.fixture
def private(clean: World) -> World:
    """DUPLICATE is private on the Hub and at its own origin; only MINE may see and call it."""
    clean.set_space(id=DUPLICATE, private=True, allow=[MINE])
    clean.set_own(private=True, allow=[MINE])
    return clean


def config(world: World, **overrides) -> BridgeConfig:
    return BridgeConfig.from_env(hub_url=world.hub.url, **overrides)


def authorized(url: str) -> int:
    return stats(url)["space_authorization"]


async def chat(cfg: BridgeConfig, prompt: str) -> str:
    async with Phi4Bridge(cfg) as bridge:
        return await bridge.chat(prompt)


def test_a_private_space_chats_with_the_allowed_token(private, caplog):
    caplog.set_level(logging.DEBUG)
    before = authorized(private.other.url)
    done = asyncio.run(spaces.resolve(config(private, space=DUPLICATE, hf_token=MINE)))
    assert done.config.space_url == private.other.url and done.config.private_origin == private.other.url
    assert done.note == ""
    reply = asyncio.run(chat(done.config, "hello private"))
    assert reply.startswith('You said: "hello private".')
    assert authorized(private.other.url) > before, "the private Space received the token"
    assert MINE not in caplog.text and MINE not in repr(done) and MINE not in repr(done.config)


def test_without_a_token_the_private_space_says_so(private):
    with pytest.raises(SpaceUnavailable) as hub_said:
        asyncio.run(spaces.resolve(config(private, space=DUPLICATE)))
    assert hub_said.value.state == "private"
    assert str(hub_said.value) == PRIVATE_401.removeprefix("The Space answered HTTP 401: ")
    # the chat path (an origin given, so the bridge tries it): the Space's own 401, said in the Hub's words
    with pytest.raises(SpaceUnavailable) as info:
        asyncio.run(chat(config(private, space=DUPLICATE, space_url=private.other.url), "hello"))
    assert info.value.state == "private" and str(info.value) == PRIVATE_401


def test_a_token_that_cannot_see_it_is_never_sent_and_says_not_found(private):
    before = authorized(private.other.url)
    with pytest.raises(SpaceUnavailable) as info:
        asyncio.run(chat(config(private, space=DUPLICATE, space_url=private.other.url, hf_token=STRANGER), "hello"))
    assert info.value.state == "not_found" and str(info.value) == PRIVATE_404
    assert STRANGER not in str(info.value) and STRANGER not in repr(info.value)
    assert authorized(private.other.url) == before, "the Space never saw a token the Hub does not show it to"


def test_the_bridge_finds_out_by_itself_when_the_config_did_not_say_private(private):
    # no resolve(): private_origin unknown; the Space's 401 makes the bridge ask the Hub, which vouches for it
    cfg = config(private, space=DUPLICATE, space_url=private.other.url, hf_token=MINE)
    assert cfg.private_origin is None
    assert asyncio.run(chat(cfg, "found out")).startswith('You said: "found out".')


def test_a_public_space_never_receives_the_token(clean):
    clean.set_space(id=OFFICIAL, stage="RUNNING", host=clean.hub.url)
    for space, url in ((DUPLICATE, clean.other.url), (OFFICIAL, clean.hub.url)):
        before = authorized(url)
        done = asyncio.run(spaces.resolve(config(clean, space=space, hf_token=MINE)))
        assert done.config.space_url == url and done.config.private_origin is None
        assert asyncio.run(chat(done.config, "public")).startswith('You said: "public".')
        assert authorized(url) == before, f"{space} received an Authorization header"


def test_the_token_goes_only_to_the_origin_the_hub_gives(private):
    # a private Space asked at another origin (--space-url): the Hub vouches for other.url, so hub.url gets nothing
    before = authorized(private.hub.url)
    done = asyncio.run(spaces.resolve(config(private, space=DUPLICATE, space_url=private.hub.url, hf_token=MINE)))
    assert done.config.private_origin == private.other.url and done.config.space_url == private.hub.url
    assert asyncio.run(chat(done.config, "elsewhere")).startswith('You said: "elsewhere".')
    assert authorized(private.hub.url) == before


def test_auto_picks_a_private_duplicate_the_token_can_see(private):
    done = asyncio.run(spaces.resolve(config(private, space="auto", hf_token=MINE)))
    assert done.config.space == DUPLICATE and done.config.private_origin == private.other.url
    assert asyncio.run(chat(done.config, "auto private")).startswith('You said: "auto private".')
    nothing = config(private, space="auto")
    with pytest.raises(SpaceUnavailable, match="No Phi-4-multimodal Space on the Hub is running and usable"):
        asyncio.run(spaces.resolve(nothing))


def cli(*args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = environment_without("PHI4_SPACE", "PHI4_SPACE_URL")
    env["HF_HOME"] = "/tmp/phi4-test-no-hf-login"
    if token:
        env["HF_TOKEN"] = token
    return run_command([sys.executable, "-m", "phi4_bridge", *args], timeout=120,
                       env=env)


def test_cli_chat_with_a_private_space(private):
    done = cli("chat", "cli private", "--space", DUPLICATE, "--hub-url", private.hub.url, "-v", token=MINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('You said: "cli private".') and MINE not in done.stderr + done.stdout
    refused = cli("chat", "cli private", "--space", DUPLICATE, "--hub-url", private.hub.url, token=None)
    assert refused.returncode == 3
    assert refused.stderr.strip() == "error: " + PRIVATE_401.removeprefix("The Space answered HTTP 401: ")


def app_env(token: str | None) -> dict[str, str]:
    return {"HF_HOME": "/tmp/phi4-test-no-hf-login", **({"HF_TOKEN": token} if token else {})}


@pytest.mark.browser  # last in the module: async tests cannot run once its browser has started
def test_the_app_chats_with_a_private_space_and_shows_no_token(private, browser):
    from app_server import start_app
    from browser import open_page, wait_for
    from gradio_client import Client

    with start_app("--space", DUPLICATE, "--hub-url", private.hub.url, "--no-fallback", timeout=120,
                   env=app_env(MINE)) as app:
        assert (f"* Using {DUPLICATE} (NOT the official {OFFICIAL}: another Phi-4-multimodal Space) at "
                f"{private.other.url}.") in app.log_text()
        client = Client(app.url, verbose=False)
        assert client.predict({"text": "app private", "files": []}, api_name="/chat").startswith(
            'You said: "app private".')
        page = urllib.request.urlopen(app.url + "/config", timeout=10).read().decode()  # noqa: S310 - loopback
        assert MINE not in page and MINE not in app.log_text()
        with open_page(browser, app.url) as tab:  # the badge says the Space is private and the token goes to it
            badge = wait_for(tab, "🔒 private", where="#space-badge")
            assert badge.startswith(f"🛰️ Space {DUPLICATE} (not the official {OFFICIAL}) at {private.other.url} · "
                                    "🔒 private (the host's HF token is sent to it) · 🟢 reachable"), badge
            assert MINE not in tab.content()
    with start_app("--space", DUPLICATE, "--hub-url", private.hub.url, "--no-fallback", timeout=120,
                   env=app_env(None)) as app:
        assert (f"* {DUPLICATE} is private or does not exist (the Hub answered HTTP 401 to a request without a "
                "token). If it is your own private Space, set HF_TOKEN (or run `huggingface-cli login`) "
                "(--no-fallback): serving anyway") in app.log_text()
