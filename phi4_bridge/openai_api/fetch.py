"""Fetching an ``image_url`` that is an http(s) URL, only when the host turned it on (``--fetch-image-urls``).

Why so careful: the server fetches on behalf of whoever sends a request, from inside the host's network. So:

- only public addresses: every address a name resolves to must be global (no loopback, private, link-local,
  multicast, reserved or unspecified address, IPv4 or IPv6); the check is in the resolver the connection itself
  uses, so a name cannot resolve to one address for the check and another for the connection;
- redirects are followed by hand (at most ``MAX_REDIRECTS``), each new URL checked like the first;
- at most ``max_bytes`` are read and the whole fetch has ``timeout_s``; no cookies, no credentials are sent.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_REDIRECTS = 3
TIMEOUT_S = 10.0


class FetchRefused(Exception):
    """Why a URL was not fetched, in a sentence for the caller."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback
                                 or ip.is_private or ip.is_unspecified)


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, and refuses a name when any of its addresses is not allowed."""

    def __init__(self, allowed: Callable[[str], bool] = is_public) -> None:
        self._inner = DefaultResolver()
        self._allowed = allowed

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        bad = [r["host"] for r in found if not self._allowed(r["host"])]
        if bad:
            raise FetchRefused(f"{host} resolves to {bad[0]}, which is not a public address.")
        return found

    async def close(self) -> None:
        await self._inner.close()


async def fetch(url: str, max_bytes: int, *, timeout_s: float = TIMEOUT_S,
                allowed: Callable[[str], bool] = is_public) -> tuple[bytes, str]:
    """The body and content type at ``url`` (following checked redirects), or ``FetchRefused``."""
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(allowed), use_dns_cache=False, limit=4)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
                                     trust_env=False) as session:
        try:
            return await _follow(session, url, max_bytes)
        except FetchRefused:
            raise
        except TimeoutError:
            raise FetchRefused(f"the image did not arrive within {timeout_s:g} s.") from None
        except aiohttp.ClientError as exc:
            cause: Any = exc
            while cause is not None and not isinstance(cause, FetchRefused):
                cause = cause.__cause__ or cause.__context__
            if isinstance(cause, FetchRefused):
                raise cause from None
            raise FetchRefused(f"the image could not be fetched ({type(exc).__name__}).") from None


async def _follow(session: aiohttp.ClientSession, url: str, max_bytes: int) -> tuple[bytes, str]:
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused(f"only http(s) URLs are fetched, not {parts.scheme or 'this'}:.")
        if parts.username or parts.password:
            raise FetchRefused("a URL with a user name or password is not fetched.")
        host = parts.hostname
        try:  # a literal address is checked here: the resolver is not asked about those
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        resolver = session.connector._resolver if session.connector is not None else None  # type: ignore[attr-defined]
        if literal is not None and isinstance(resolver, PublicOnlyResolver) and not resolver._allowed(str(literal)):
            raise FetchRefused(f"{host} is not a public address.")
        async with session.get(url, allow_redirects=False, headers={"accept": "image/*"}) as resp:
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("location")
                if not location:
                    raise FetchRefused(f"the server answered HTTP {resp.status} without a location.")
                url = urljoin(url, location)
                continue
            if resp.status != 200:
                raise FetchRefused(f"the server answered HTTP {resp.status}.")
            length = resp.content_length
            if length is not None and length > max_bytes:
                raise FetchRefused(f"the image is {length:,} bytes; the most taken is {max_bytes:,}.")
            # read() gives what has arrived, up to n bytes, not n: read until the end, or one byte past the most
            body = bytearray()
            while len(body) <= max_bytes and (piece := await resp.content.read(max_bytes + 1 - len(body))):
                body += piece
            if len(body) > max_bytes:
                raise FetchRefused(f"the image is larger than {max_bytes:,} bytes, the most taken.")
            return bytes(body), resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects.")
