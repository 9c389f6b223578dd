"""Who a turn belongs to: the one place that reads a visitor's identity out of what gradio, starlette and the API
hand the app.

Why one module: the budget, the per-client turn cap, the door's queue count and the Usage log must all count the
same visitor under the same key, or one visitor gets several allowances (issue 26 found six readings of it). Two
keys, for two questions:

- ``client``: *who pays* (the budget, the turn cap, the usage log): ``user:NAME`` for a login (and for an API key,
  whose ``key:N`` the OpenAI API and MCP pass as the name), else ``addr:HOST``; ``local`` for an in-process call
  with no request at all. Every session and tab of one login counts as one client.
- ``session``: *which conversation* (its remote session, its upload memory, Stop): gradio's ``session_hash`` of a
  page or a ``gradio_client`` ``Client``; None for a one-off ``/run``, ``/api`` or ``/call`` request and for API
  calls, each its own conversation for one turn only.

The library's OpenAI server names its callers itself (``phi4_bridge.openai_api.server.caller_of``: the API key's
number or the address), since the library never imports the app; ``api_request`` turns such a caller into the
request the chat service reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

ONE_OFF_ROUTES = ("/gradio_api/run/", "/gradio_api/api/", "/gradio_api/call/")


def client_key(user: str | None, host: str | None) -> str:
    """The ``client`` key (see the module's docstring) of a login name, else of an address."""
    return f"user:{user}" if user else f"addr:{host or 'unknown'}"


def client_of(request: Any) -> str:
    """The ``client`` key of a ``gr.Request``, a starlette ``Request`` or ``api_request``'s; ``local`` for None."""
    if request is None:
        return "local"
    client = getattr(request, "client", None)
    host = getattr(client, "host", None) if client is not None else None
    return client_key(getattr(request, "username", None), host)


def client_of_event(event: Any) -> str:
    """The ``client`` key of an event in gradio's queue (its ``username``, its request's address)."""
    client = getattr(getattr(event, "request", None), "client", None)
    return client_key(getattr(event, "username", None), getattr(client, "host", None))


def route_of(request: Any) -> str:
    """The URL path a ``gr.Request`` came by ("" when it has none)."""
    inner = getattr(request, "request", None) if request is not None else None
    try:
        return str(inner.url.path) if inner is not None else ""
    except Exception:  # noqa: BLE001 - a request without a URL is not a queued one
        return ""


def session_of(request: Any) -> str | None:
    """The ``session`` key of a request (see the module's docstring)."""
    if request is None or any(route in route_of(request) for route in ONE_OFF_ROUTES):
        return None
    return getattr(request, "session_hash", None) or None


def ip_token_of(request: Any) -> str | None:
    """The visitor's own ZeroGPU ``x-ip-token`` header, which the bridge forwards alone."""
    headers = getattr(request, "headers", None)
    return (headers.get("x-ip-token") or None) if headers is not None else None


@dataclass
class ApiRequest:
    """What the chat service reads of a gradio request, for an API caller (``/v1``, MCP): no session (each request
    is its own conversation), the key as the login name, the address, and the ``x-ip-token`` header."""

    username: str | None
    client: Any
    headers: dict[str, str] = field(repr=False)
    session_hash: None = None
    request: None = None


def api_request(name: str, host: str, ip_token: str | None) -> ApiRequest:
    """The request of an API caller named ``name`` by the OpenAI server (``key:N`` counts as a login; an address
    as itself)."""
    return ApiRequest(name if name.startswith("key:") else None, SimpleNamespace(host=host),
                      {"x-ip-token": ip_token} if ip_token else {})
