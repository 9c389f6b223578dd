"""Who a visitor is (mirror/visitors/identity.py): the keys the budget, the turn cap, the door and the Usage log
count by, and the session a conversation is kept under. A ``Visitor`` read from the objects gradio and starlette
hand the app; the servers' tests check the same keys end to end (test_budget, test_openai_api, test_security_probe)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mirror.visitors.identity import Visitor, client_of_event


def page_request(path: str, session: str | None = "abc123", user: str | None = None,
                 host: str = "10.0.0.5", headers: dict[str, str] | None = None) -> SimpleNamespace:
    """The parts of a ``gr.Request`` the module reads."""
    return SimpleNamespace(username=user, client=SimpleNamespace(host=host), session_hash=session,
                           headers=headers or {}, request=SimpleNamespace(url=SimpleNamespace(path=path)))


def test_a_login_is_one_client_over_its_sessions_and_addresses() -> None:
    one = page_request("/gradio_api/queue/join", session="s1", user="alice", host="10.0.0.1")
    two = page_request("/gradio_api/queue/join", session="s2", user="alice", host="10.0.0.2")
    assert Visitor.of(one).client == Visitor.of(two).client == "user:alice"
    assert Visitor.of(page_request("/gradio_api/queue/join", user=None, host="10.0.0.9")).client == "addr:10.0.0.9"
    assert Visitor.of(None).client == Visitor.local().client == "local"


def test_a_queued_event_counts_as_the_request_that_sent_it() -> None:
    """The door counts a client's queued turns by their events; the key must be the chat service's."""
    request = page_request("/gradio_api/queue/join", user=None, host="10.0.0.7")
    event = SimpleNamespace(username=None, request=request)
    assert client_of_event(event) == Visitor.of(request).client == "addr:10.0.0.7"
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
    visitor = Visitor.of(page_request(path, session="abc123"))
    assert visitor.session == ("abc123" if kept else None)
    assert visitor.session_hash == "abc123" and visitor.route == path  # the event stream and Stop go by the hash


def test_an_api_caller_is_its_key_or_its_address_and_brings_its_own_ip_token() -> None:
    keyed = Visitor.api("key:2", "10.1.1.1", "tok-1")
    assert keyed.client == "user:key:2"
    assert keyed.session is None
    assert keyed.ip_token == "tok-1"
    anonymous = Visitor.api("addr:10.1.1.1", "10.1.1.1", None)
    assert anonymous.client == "addr:10.1.1.1"  # shares its address's budget with that address's browser turns
    assert anonymous.ip_token is None
    assert Visitor.of(page_request("/gradio_api/queue/join", headers={"x-ip-token": "t"})).ip_token == "t"


def test_the_ip_token_is_never_printed() -> None:
    """A visitor's ZeroGPU token is a credential: a log line or a traceback that shows the visitor must not."""
    visitor = Visitor.of(page_request("/gradio_api/queue/join", user="alice", headers={"x-ip-token": "tok-secret"}))
    assert visitor.ip_token == "tok-secret"
    assert "tok-secret" not in repr(visitor) and "tok-secret" not in str(visitor)
    assert "tok-secret" not in repr(Visitor.api("key:1", "10.1.1.1", "tok-secret"))
