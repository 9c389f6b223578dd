"""The MCP server's pure parts: which paths the key gate guards, the config it prints, how a tool argument
becomes a file (the same function as ``/v1``'s ``image_url``, for audio too)."""

from __future__ import annotations

import base64
import json

import pytest

from mirror.apis.mcp_gate import is_mcp_path
from mirror.apis.mcp_tools import client_config
from mirror.settings import parse_settings
from phi4_bridge.openai_api.errors import ApiError
from phi4_bridge.openai_api.messages import url_attachment


@pytest.mark.parametrize(("path", "guarded"), [
    ("/gradio_api/mcp", True), ("/gradio_api/mcp/", True), ("/gradio_api/mcp/schema", True),
    ("/gradio_api/mcp/sse", True), ("/gradio_api/mcp/messages/", True), ("/root/gradio_api/mcp/", True),
    ("/gradio_api/mcpx", False), ("/gradio_api/queue/join", False), ("/v1/models", False), ("/", False),
    ("/mcp", False),
])
def test_the_gate_guards_every_mcp_path_and_nothing_else(path: str, guarded: bool) -> None:
    assert is_mcp_path(path) is guarded


def test_the_printed_config_has_a_placeholder_for_the_key_only_when_keys_are_set() -> None:
    url = "http://127.0.0.1:7860/gradio_api/mcp/"
    assert json.loads(client_config(url, True)) == {"mcpServers": {"phi4-mirror": {
        "url": url, "headers": {"Authorization": "Bearer <your API key>"}}}}
    assert json.loads(client_config(url, False)) == {"mcpServers": {"phi4-mirror": {"url": url}}}


def test_an_audio_data_url_is_decoded_and_named_by_its_type() -> None:
    clip = b"RIFF....WAVEfmt "
    found = url_attachment("data:audio/mpeg;base64," + base64.b64encode(clip).decode(), "audio", "audio", False,
                           kind="audio")
    assert (found.name, found.data, found.kind, found.url) == ("audio.mp3", clip, "audio", None)
    untyped = url_attachment("data:;base64," + base64.b64encode(clip).decode(), "audio", "audio", False, "audio")
    assert untyped.name == "audio.wav", "a data: URL without a type is taken as its kind's usual one"


def test_an_audio_url_is_refused_in_words_without_the_flag_and_kept_for_fetching_with_it() -> None:
    with pytest.raises(ApiError) as caught:
        url_attachment("https://example.com/a.wav", "audio", "audio", False, kind="audio")
    assert caught.value.message == ("audio: this server does not fetch audio URLs (its host can turn that on with "
                                    "--fetch-image-urls); send the audio as a data: URL.")
    kept = url_attachment("https://example.com/a.wav", "audio", "audio", True, kind="audio")
    assert (kept.url, kept.kind, kept.data) == ("https://example.com/a.wav", "audio", None)
    with pytest.raises(ApiError, match=r"^audio: audio must be a data: URL"):
        url_attachment("file:///etc/passwd", "audio", "audio", True, kind="audio")


@pytest.mark.parametrize(("env", "on"), [(None, False), ("1", True), ("true", True), ("0", False), ("", False)])
def test_phi4_mcp_in_the_environment_turns_the_flag_on(monkeypatch: pytest.MonkeyPatch, env: str | None,
                                                      on: bool) -> None:
    if env is None:
        monkeypatch.delenv("PHI4_MCP", raising=False)
    else:
        monkeypatch.setenv("PHI4_MCP", env)
    assert parse_settings([]).mcp is on
    assert parse_settings(["--mcp"]).mcp is True
