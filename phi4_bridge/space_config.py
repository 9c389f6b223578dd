"""A Space's ``GET /config``: the one place that asks for it, and the reading of it that several callers share.

``/config`` is what a gradio page loads first: its components, its events (``dependencies``), its gradio
``version``, ``api_prefix`` and queue ``protocol``. The bridge reads its chat chain from it (``protocol.discover``),
a turn asks it again to tell a missing Space from a missing route (``Job``), the candidates' check reads whether a
Space can be driven (``spaces``), ``doctor`` shows what it holds, and the app probes it at start and reads the
Space's own controls from it (``mirror.space``).

- ``fetch_config(session, space_url, headers)``: async, on the caller's aiohttp session (its timeouts, its
  middlewares).
- ``fetch_config_sync(space_url, timeout, headers)``: for start-up code that has no event loop (urllib), given up
  ``timeout`` seconds after it was asked, body included (a last socket read may overrun it by as much).

Both answer the same way: the JSON as parsed; None when the Space answered 200 with something that is not JSON; a
status other than 200 raises the ``Phi4Error`` it means (``errors.classify_status``: 404 ``SpaceUnavailable``
``not_found``, 401/403 ``AuthError``, 503 sleeping or paused...). A network failure raises the transport's own
error in the async one (``Phi4Bridge.guard`` says it in words) and ``SpaceUnavailable`` (``unreachable``) in the
sync one, whose callers have no guard.

``chat_chain(raw)`` is the chat chain of a ``/config`` (``chain.find_chain``), None when it has none or is no
gradio configuration at all.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import aiohttp

from .chain import Chain, find_chain
from .errors import SpaceUnavailable, classify_status

WHAT = "The Space"  # how an error of /config names who answered


def _parsed(status: int, body: str | bytes) -> Any:
    if status != 200:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise classify_status(status, text, WHAT)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError), or nested past reading
        return None


async def fetch_config(session: aiohttp.ClientSession, space_url: str,
                       headers: Mapping[str, str] | None = None) -> Any:
    """``GET {space_url}/config`` on ``session``: the JSON, or None when it is not JSON; any other status than 200
    raises the ``Phi4Error`` it means, a network failure aiohttp's own error."""
    async with session.get(f"{space_url}/config", headers=dict(headers or {})) as resp:
        status, body = resp.status, await resp.text()
    return _parsed(status, body)


def fetch_config_sync(space_url: str, timeout: float, headers: Mapping[str, str] | None = None) -> Any:
    """``GET {space_url}/config`` without an event loop, given up ``timeout`` seconds after it was asked (one socket
    read may overrun that by its own ``timeout``, so twice at the very worst): the JSON, or None when it is not JSON;
    any other status than 200 raises the ``Phi4Error`` it means, a network failure (or no answer in time)
    ``SpaceUnavailable``."""
    request = urllib.request.Request(f"{space_url}/config", headers=dict(headers or {}))
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - the Space's own origin
            status, body = resp.status, _read(resp, deadline)
    except urllib.error.HTTPError as exc:  # a status of 400 or more, with its body
        status, body = exc.code, _error_body(exc)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, timed out, garbled, a bad URL
        raise SpaceUnavailable(f"Cannot reach the Space at {space_url} ({type(exc).__name__}); check the network "
                               "or the URL.") from exc
    return _parsed(status, body)


def _read(resp: http.client.HTTPResponse, deadline: float) -> bytes:
    """The whole body, or TimeoutError once ``deadline`` is past (each read waits the socket's timeout at most)."""
    chunks = []
    while chunk := resp.read1(65536):
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError("the Space sent its /config too slowly")
    return b"".join(chunks)


def _error_body(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except (OSError, http.client.HTTPException):
        return b""


def chat_chain(raw: Any) -> Chain | None:
    """The chat chain of ``raw`` (a parsed ``/config``), or None: not a gradio configuration, no chat, or one the
    chain reader trips on."""
    if not isinstance(raw, Mapping):
        return None
    try:
        return find_chain(raw)
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
