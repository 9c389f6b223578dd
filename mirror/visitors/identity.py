"""Who a turn belongs to: the one place that reads a visitor's identity out of what gradio, starlette and the API
hand the app, as a ``Visitor`` read once at the edge.

Why one module: the budget, the per-client turn cap, the door's queue count and the Usage log must all count the
same visitor under the same key, or one visitor gets several allowances (issue 26 found six readings of it). Two
keys, for two questions:

- ``client``: *who pays* (the budget, the turn cap, the usage log): ``user:NAME`` for a login (and for an API key,
  whose ``key:N`` the OpenAI API and MCP pass as the name), else ``addr:HOST``; ``local`` for an in-process call
  with no request at all. Every session and tab of one login counts as one client.
- ``session``: *which conversation* (its remote session, its upload memory): gradio's ``session_hash`` of a page or
  a ``gradio_client`` ``Client``; None for a one-off ``/run``, ``/api`` or ``/call`` request and for API calls, each
  its own conversation for one turn only.

Why read once: the handler gradio hands a ``gr.Request`` (the edge: a function of ``app.py``, the QA tab's, the
chat service's ``chat_api``, ``stopped`` and ``forget``) makes it a ``Visitor`` with ``Visitor.of(request)`` and
passes that inward; the chat service, the QA service, the budget and the usage log never see a request. An API
caller (``/v1``, MCP) is ``Visitor.api``: the library's OpenAI server names its callers itself
(``phi4_bridge.openai_api.server.caller_of``: the API key's number or the address), since the library never imports
the app. The door, which sees raw ASGI requests and gradio's queued events rather than a ``gr.Request``, keys them
with ``client_key`` and ``client_of_event``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ONE_OFF_ROUTES = ("/gradio_api/run/", "/gradio_api/api/", "/gradio_api/call/")


def client_key(user: str | None, host: str | None) -> str:
    """The ``client`` key (see the module's docstring) of a login name, else of an address."""
    return f"user:{user}" if user else f"addr:{host or 'unknown'}"


def client_of_event(event: Any) -> str:
    """The ``client`` key of an event in gradio's queue (its ``username``, its request's address)."""
    client = getattr(getattr(event, "request", None), "client", None)
    return client_key(getattr(event, "username", None), getattr(client, "host", None))


def _route_of(request: Any) -> str:
    """The URL path a ``gr.Request`` came by ("" when it has none)."""
    inner = getattr(request, "request", None)
    try:
        return str(inner.url.path) if inner is not None else ""
    except Exception:  # noqa: BLE001 - a request without a URL is not a queued one
        return ""


@dataclass(frozen=True)
class Visitor:
    """Who sent a turn (see the module's docstring): built by ``of`` (a gradio request), ``api`` (an API caller)
    or ``local`` (no request at all), never from anything else."""

    client: str  # who pays: ``user:NAME``, ``addr:HOST`` or ``local``
    session_hash: str | None = None  # gradio's own hash, whatever the route (its event stream and Stop are keyed by it)
    ip_token: str | None = field(default=None, repr=False)  # the visitor's ZeroGPU ``x-ip-token``, forwarded alone
    route: str = ""  # the URL path the request came by ("" for an API caller or none)
    login: str | None = None  # the login name (``--auth``; ``key:N`` for an API key), else None

    @property
    def session(self) -> str | None:
        """The ``session`` key: the conversation's, None for a one-off call (see the module's docstring)."""
        if any(route in self.route for route in ONE_OFF_ROUTES):
            return None
        return self.session_hash

    @classmethod
    def of(cls, request: Any) -> Visitor:
        """The visitor behind a ``gr.Request`` (or a starlette ``Request``); ``local`` for None."""
        if request is None:
            return cls.local()
        client = getattr(request, "client", None)
        login = getattr(request, "username", None) or None
        headers = getattr(request, "headers", None)
        return cls(client_key(login, getattr(client, "host", None) if client is not None else None),
                   session_hash=getattr(request, "session_hash", None) or None,
                   ip_token=(headers.get("x-ip-token") or None) if headers is not None else None,
                   route=_route_of(request), login=login)

    @classmethod
    def api(cls, name: str, host: str, ip_token: str | None) -> Visitor:
        """An API caller named ``name`` by the OpenAI server: ``key:N`` counts as a login (``user:key:N``), an
        address as itself; no session (each request carries its whole conversation)."""
        login = name if name.startswith("key:") else None
        return cls(client_key(login, host), ip_token=ip_token, login=login)

    @classmethod
    def local(cls) -> Visitor:
        """An in-process call with no request at all."""
        return cls("local")
