"""Who a visitor is (mirror/visitors/identity.py): the keys the budget, the turn cap, the door and the Usage log
count by, and the session a conversation is kept under. Pure functions over the objects gradio and starlette hand
the app; the servers' tests check the same keys end to end (test_budget, test_openai_api, test_security_probe)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mirror.visitors.identity import api_request, client_of, client_of_event, ip_token_of, session_of


def page_request(path: str, session: str | None = "abc123", user: str | None = None,
                 host: str = "10.0.0.5", headers: dict[str, str] | None = None) -> SimpleNamespace:
    """The parts of a ``gr.Request`` the module reads."""
    return SimpleNamespace(username=user, client=SimpleNamespace(host=host), session_hash=session,
                           headers=headers or {}, request=SimpleNamespace(url=SimpleNamespace(path=path)))


def test_a_login_is_one_client_over_its_sessions_and_addresses() -> None:
    one = page_request("/gradio_api/queue/join", session="s1", user="alice", host="10.0.0.1")
    two = page_request("/gradio_api/queue/join", session="s2", user="alice", host="10.0.0.2")
    assert client_of(one) == client_of(two) == "user:alice"
    assert client_of(page_request("/gradio_api/queue/join", user=None, host="10.0.0.9")) == "addr:10.0.0.9"
    assert client_of(None) == "local"


def test_a_queued_event_counts_as_the_request_that_sent_it() -> None:
    """The door counts a client's queued turns by their events; the key must be the chat service's."""
    request = page_request("/gradio_api/queue/join", user=None, host="10.0.0.7")
    event = SimpleNamespace(username=None, request=request)
    assert client_of_event(event) == client_of(request) == "addr:10.0.0.7"
    logged = SimpleNamespace(username="bob", request=page_request("/gradio_api/queue/join", user="bob"))
    assert client_of_event(logged) == "user:bob"
    assert client_of_event(SimpleNamespace(username=None, request=None)) == "addr:unknown"


@pytest.mark.parametrize(("path", "kept"), [
    ("/gradio_api/queue/join", True),          # the page, a gradio_client Client: one conversation a session
    ("/gradio_api/run/chat", False),           # one-off calls: each its own conversation, for one turn
    ("/gradio_api/api/chat", False),
    ("/gradio_api/call/chat", False),
])
def test_only_a_page_or_client_session_keeps_a_conversation(path: str, kept: bool) -> None:
    assert session_of(page_request(path, session="abc123")) == ("abc123" if kept else None)


def test_an_api_caller_is_its_key_or_its_address_and_brings_its_own_ip_token() -> None:
    keyed = api_request("key:2", "10.1.1.1", "tok-1")
    assert client_of(keyed) == "user:key:2"
    assert session_of(keyed) is None
    assert ip_token_of(keyed) == "tok-1"
    anonymous = api_request("addr:10.1.1.1", "10.1.1.1", None)
    assert client_of(anonymous) == "addr:10.1.1.1"  # shares its address's budget with that address's browser turns
    assert ip_token_of(anonymous) is None
    assert ip_token_of(page_request("/gradio_api/queue/join", headers={"x-ip-token": "t"})) == "t"
