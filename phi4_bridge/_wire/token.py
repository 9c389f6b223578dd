"""ZeroGPU token acquisition: who the Space thinks the caller is, and so whose GPU quota a turn spends.

Order of preference: an explicit token; the user's Hugging Face token (``HF_TOKEN`` or the saved login, found
by huggingface_hub) exchanged at the Hub's jwt endpoint; the anonymous token embedded in the Space's Hub page;
and last the literal ``[object Object]`` a browser sends when it has none (the Space treats it as anonymous).

The token is cached until shortly before its ``exp``; concurrent turns share one fetch. The token never
appears in a repr, a log line or an error text.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import aiohttp

from .. import config as _config
from ..config import BridgeConfig
from ..errors import AuthError, classify_status

log = logging.getLogger(__name__)

ANONYMOUS = "[object Object]"
REFRESH_MARGIN = 60.0  # seconds before ``exp`` at which a cached token counts as stale (at most)
ANONYMOUS_LIFETIME = 600.0  # used when a token carries no readable ``exp``


@dataclass(frozen=True)
class ZeroGpuToken:
    value: str = field(repr=False)
    uuid: str | None = field(default=None, repr=False)
    source: str = "none"  # explicit | hf_token | anonymous | none
    expires_at: float = float("inf")
    issued_at: float = field(default_factory=time.time)

    def fresh(self, now: float | None = None) -> bool:
        """Fresh until a margin before ``exp``: 60 s, or a tenth of the lifetime for short-lived tokens."""
        margin = min(REFRESH_MARGIN, (self.expires_at - self.issued_at) / 10)
        return (now or time.time()) < self.expires_at - margin

    def headers(self) -> dict[str, str]:
        out = {"x-zerogpu-token": self.value}
        if self.uuid:
            out["x-zerogpu-uuid"] = self.uuid
        return out


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (only the Space can verify it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def parse_hub_page(page: str) -> tuple[str | None, str | None]:
    """The anonymous token and session id that the Space's Hub page embeds as HTML-escaped JSON."""

    def after(marker: str) -> str | None:
        escaped = f"&quot;{marker}&quot;:&quot;"
        start = page.find(escaped)
        if start < 0:
            return None
        start += len(escaped)
        end = page.find("&", start)
        return html.unescape(page[start:end]) if end > start else None

    return after("token"), after("sessionUuid")


def _expiration_param(now: datetime | None = None) -> str:
    when = (now or datetime.now(UTC)) + timedelta(minutes=10)
    return quote(when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z")


class TokenProvider:
    """Hands out a valid token, fetching at most once at a time and only when the cached one is stale."""

    def __init__(self, config: BridgeConfig, session: aiohttp.ClientSession) -> None:
        self._config = config
        self._session = session
        self._lock = asyncio.Lock()
        self._token: ZeroGpuToken | None = None
        self._hf_token: str | None = config.hf_token
        self._hf_looked_up = config.hf_token is not None
        self.fetches = 0

    @property
    def source(self) -> str:
        return self._token.source if self._token else "none"

    async def get(self) -> ZeroGpuToken:
        token = self._token
        if token is not None and token.fresh():
            return token
        async with self._lock:
            if self._token is None or not self._token.fresh():
                self._token = await self._fetch()
            return self._token

    def invalidate(self, token: ZeroGpuToken) -> None:
        """The Space said ``token`` is bad: drop it, unless another turn has already replaced it."""
        if self._token is token:
            self._token = None

    async def signed_in(self) -> bool:
        return await self._find_hf_token() is not None or self._config.zerogpu_token is not None

    async def hf_token(self) -> str | None:
        """The user's HF token (looked up once); for the Hub, and for a private Space the Hub vouched for."""
        return await self._find_hf_token()

    async def _find_hf_token(self) -> str | None:
        if not self._hf_looked_up:
            self._hf_token = await asyncio.to_thread(_config.find_hf_token)
            self._hf_looked_up = True
        return self._hf_token

    async def _fetch(self) -> ZeroGpuToken:
        self.fetches += 1
        explicit = self._config.zerogpu_token
        if explicit:
            return ZeroGpuToken(explicit, None, "explicit", jwt_expiry(explicit) or float("inf"))
        hf_token = await self._find_hf_token()
        if hf_token:
            return await self._exchange(hf_token)
        try:
            return await self._anonymous()
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("Could not read an anonymous ZeroGPU token from the Hub page (%s); "
                        "calling the Space without one.", type(exc).__name__)
            return ZeroGpuToken(ANONYMOUS, None, "none", time.time() + ANONYMOUS_LIFETIME)

    async def _exchange(self, hf_token: str) -> ZeroGpuToken:
        cfg = self._config
        url = f"{cfg.hub_url}/api/spaces/{cfg.space}/jwt?expiration={_expiration_param()}&include_pro_status=true"
        async with self._session.get(url, headers={"Authorization": f"Bearer {hf_token}"}) as resp:
            body = await resp.text()
            if resp.status in (401, 403):
                raise AuthError("The Hub refused your Hugging Face token (HTTP "
                                f"{resp.status}). Check HF_TOKEN or run `huggingface-cli login` again.",
                                status=resp.status)
            if resp.status != 200:
                raise classify_status(resp.status, body, "The Hub's token service")
        try:
            value = json.loads(body)["token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError("The Hub's token service answered without a token.") from exc
        log.info("ZeroGPU token obtained with the user's HF token")
        return ZeroGpuToken(value, None, "hf_token", jwt_expiry(value) or time.time() + ANONYMOUS_LIFETIME)

    async def _anonymous(self) -> ZeroGpuToken:
        cfg = self._config
        async with self._session.get(f"{cfg.hub_url}/spaces/{cfg.space}") as resp:
            page = await resp.text()
            if resp.status != 200:
                raise classify_status(resp.status, page, "The Space's Hub page")
        value, uuid = parse_hub_page(page)
        if not value:
            log.warning("The Space's Hub page holds no ZeroGPU token; calling the Space anonymously.")
            return ZeroGpuToken(ANONYMOUS, uuid, "none", time.time() + ANONYMOUS_LIFETIME)
        log.info("Anonymous ZeroGPU token obtained from the Hub page")
        return ZeroGpuToken(value, uuid, "anonymous", jwt_expiry(value) or time.time() + ANONYMOUS_LIFETIME)
